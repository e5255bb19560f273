"""Small datasets for the training tests: a few Penn-Fudan images when the shared data is there,
generated images otherwise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_DATA

WEIGHTS = SHARED_DATA / "weights" / "mobilenet_v2-b0353104.pth"


def write_yolo_dataset(
    root: Path, images: list[tuple[np.ndarray, np.ndarray]], names: list[str], split: str = "train"
) -> Path:
    """``images``: (BGR image, rows of class cx cy w h normalised)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    (root / "data.names").write_text("\n".join(names) + "\n")
    for i, (image, rows) in enumerate(images):
        cv2.imwrite(str(root / "images" / split / f"im{i:03d}.png"), image)
        lines = [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}" for r in rows]
        (root / "labels" / split / f"im{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return root


def synthetic_people(n: int, seed: int = 0, size: tuple[int, int] = (240, 320)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy backgrounds with 1-3 tall bright blobs ("people") each."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(n):
        image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        rows = []
        for _ in range(rng.integers(1, 4)):
            bh, bw = rng.integers(60, 140), rng.integers(20, 50)
            y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
            image[y : y + bh, x : x + bw] = rng.integers(150, 255, 3)
            rows.append([0, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h])
        out.append((image, np.array(rows)))
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLO dataset of 8 images: Penn-Fudan's first 8 training images, else generated ones."""
    root = tmp_path_factory.mktemp("tiny")
    pf = SHARED_DATA / "PennFudanPed"
    if not pf.is_dir():
        return write_yolo_dataset(root, synthetic_people(8), ["pedestrian"])
    images = []
    for path in sorted((pf / "images" / "train_PNGImages").glob("*.png"))[:8]:
        label = pf / "labels" / "train_PNGImages" / f"{path.stem}.txt"
        rows = np.loadtxt(label, ndmin=2)
        images.append((cv2.imread(str(path)), rows))
    return write_yolo_dataset(root, images, ["pedestrian"])


@pytest.fixture(scope="session")
def backbone_weights() -> str:
    """The ImageNet MobileNetV2 file when present (offline), else random weights."""
    return str(WEIGHTS) if WEIGHTS.is_file() else "none"
