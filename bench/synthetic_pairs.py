"""Synthetic side-by-side pairs for a retrain experiment (issue 17): does the detector separate adjacent people better?

    .venv/bin/python -m bench.synthetic_pairs [--out runs/pairs]
    OMP_NUM_THREADS=1 .venv/bin/python -m surveil.training.train -c runs/pairs/train.yaml
    .venv/bin/python -m bench.rules_misses --weights runs/pairs/model.pt
    .venv/bin/python -m bench.track_mot --pets-shipped --weights runs/pairs/model.pt --pets-min-size 360 --rounds 1

Most of what the rules still miss at 2 fps happens while the detector gives a person standing or walking
beside another no confident box of their own (bench/rules_misses.py). The shipped model's training set has
few such pairs, and no crowded-scene dataset can be downloaded here. So this builds some, by copy and paste
(Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method", CVPR 2021, with boxes instead of
masks): into each PETS09-S3-MF1 training frame (1-91; frames 92-107 are the training's validation tail and
are never used) it pastes up to ``--per-image`` people cut from other frames of the sequence, each beside a
person already there (the same height, feet level within 3 %, shifted sideways by 0.45-0.85 of that person's
width, so the two boxes overlap), blended through a soft ellipse so that no rectangular seam marks the paste.
Each frame is used ``--copies`` times with different pastes. The result is a MOT sequence (so the training
splits it by its tail, as the real sequences, and Penn-Fudan's seeded validation split stays as it was) and a
training config: configs/train-pedestrian-s8.yaml plus this sequence, writing only under ``--out``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
import yaml

from bench.images import read_bgr
from surveil.geometry import box_iou

REPO = Path(__file__).resolve().parents[1]
SOURCE = "MOT15/PETS09-S3-MF1"
TRAINING_FRAMES = range(1, 92)  # the training's validation tail (the last 15 %, frames 92-107) stays out
MIN_HEIGHT = 40  # px: people cut for pasting (at 768x576)


def soft_ellipse(height: int, width: int) -> np.ndarray:
    """(H, W, 1) alpha: 1 inside the ellipse inscribed in the box, falling to 0 over its outer quarter."""
    yy, xx = np.mgrid[0:height, 0:width]
    radius = np.hypot((xx + 0.5 - width / 2) / (width / 2), (yy + 0.5 - height / 2) / (height / 2))
    return np.clip((1.0 - radius) / 0.25, 0.0, 1.0)[..., None]


def paste_beside(
    image: np.ndarray, boxes: np.ndarray, person: int, cut: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Paste ``cut`` (an image of one person) beside ``boxes[person]`` in ``image`` (changed in place); return
    the pasted box, or None where it would leave the picture or overlap anybody else at IoU > 0.1."""
    x1, y1, x2, y2 = boxes[person]
    height = round(y2 - y1)
    width = max(4, round(cut.shape[1] * height / cut.shape[0]))
    shift = rng.choice([-1, 1]) * rng.uniform(0.45, 0.85) * (x2 - x1)
    left, top = round(x1 + shift), round(y2 - height + rng.uniform(-0.03, 0.03) * (y2 - y1))
    if left < 0 or top < 0 or left + width > image.shape[1] or top + height > image.shape[0] or height < 8:
        return None
    box = np.array([left, top, left + width, top + height], np.float32)
    others = np.delete(boxes, person, axis=0)
    if len(others) and box_iou(box[None], others).max() > 0.1:
        return None
    patch = cv2.resize(cut, (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    alpha = soft_ellipse(height, width)
    region = image[top : top + height, left : left + width].astype(np.float32)
    image[top : top + height, left : left + width] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
    return box


def composites(shared: Path, copies: int, per_image: int, seed: int):
    """Yield (image, boxes) for every training frame ``copies`` times, with up to ``per_image`` people pasted."""
    folder = shared / SOURCE
    gt = np.loadtxt(folder / "gt/gt.txt", delimiter=",", ndmin=2)
    images = {f: read_bgr(folder / f"img/frame_{f:04d}.jpg") for f in TRAINING_FRAMES}
    boxes_of = {f: _xyxy(gt[gt[:, 0] == f]) for f in TRAINING_FRAMES}
    height, width = next(iter(images.values())).shape[:2]
    cuts = [
        (f, b)
        for f in TRAINING_FRAMES
        for b in boxes_of[f]
        if b[3] - b[1] >= MIN_HEIGHT and b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height
    ]
    rng = np.random.default_rng(seed)
    for frame in TRAINING_FRAMES:
        for _ in range(copies):
            image, boxes = images[frame].copy(), boxes_of[frame]
            real = len(boxes)
            for _attempt in range(10 * per_image):
                if len(boxes) - real == per_image or real == 0:
                    break
                person = int(rng.integers(real))
                tall = boxes[person, 3] - boxes[person, 1]
                alike = [(f, b) for f, b in cuts if f != frame and abs((b[3] - b[1]) - tall) <= 0.15 * tall]
                if not alike:
                    continue
                f, b = alike[int(rng.integers(len(alike)))]
                cut = images[f][int(b[1]) : int(b[3]), int(b[0]) : int(b[2])]
                pasted = paste_beside(image, boxes, person, cut, rng)
                if pasted is not None:
                    boxes = np.vstack([boxes, pasted])
            yield image, boxes


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]].astype(np.float32).reshape(-1, 4)


def write_sequence(out: Path, frames) -> tuple[int, int]:
    """The composites as a MOT sequence (img1/, gt/gt.txt, seqinfo.ini) under ``out``; (images, boxes)."""
    (out / "img1").mkdir(parents=True, exist_ok=True)
    (out / "gt").mkdir(exist_ok=True)
    rows, number, size = [], 0, (0, 0)
    for number, (image, boxes) in enumerate(frames, start=1):
        cv2.imwrite(str(out / f"img1/{number:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        rows += [
            f"{number},{k},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1"
            for k, (x1, y1, x2, y2) in enumerate(boxes, 1)
        ]
        size = image.shape[:2]
    (out / "gt/gt.txt").write_text("\n".join(rows) + "\n")
    (out / "seqinfo.ini").write_text(
        f"[Sequence]\nname={out.name}\nimDir=img1\nframeRate=7\nseqLength={number}\n"
        f"imWidth={size[1]}\nimHeight={size[0]}\nimExt=.jpg\n"
    )
    return number, len(rows)


def training_config(base: Path, sequence: Path, out: Path) -> Path:
    """``base`` plus ``sequence`` (beside PETS09-S3-MF1, at its sizes), every path rewritten relative to ``out``,
    outputs under ``out``: ``out``/train.yaml."""
    config = yaml.safe_load(base.read_text())

    def moved(path: str) -> str:
        return os.path.relpath((base.parent / path).resolve(), out.resolve())

    for key in ("train_data", "test_data"):
        config[key] = [{**entry, "path": moved(entry["path"])} for entry in config[key]]
    s3 = next(e for e in config["train_data"] if e["path"].endswith(SOURCE))
    config["train_data"].append({"format": "mot", "path": os.path.relpath(sequence, out), "sizes": s3["sizes"]})
    config["backbone_weights"] = moved(config["backbone_weights"])
    config |= {"cache_dir": "cache", "output_dir": "run", "output": "model.pt"}
    path = out / "train.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=REPO / "runs/pairs")
    parser.add_argument("--copies", type=int, default=2, help="composites per training frame")
    parser.add_argument("--per-image", type=int, default=3, help="people pasted per composite, at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.shared_data / SOURCE / "gt/gt.txt").is_file():
        parser.exit(2, f"synthetic_pairs: {args.shared_data / SOURCE} not found (--shared-data)\n")
    sequence = args.out / "S3-MF1-pairs"
    images, boxes = write_sequence(sequence, composites(args.shared_data, args.copies, args.per_image, args.seed))
    config = training_config(REPO / "configs/train-pedestrian-s8.yaml", sequence, args.out)
    print(f"{images} images, {boxes} boxes in {sequence}")
    print(f"train: OMP_NUM_THREADS=1 .venv/bin/python -m surveil.training.train -c {config}")


if __name__ == "__main__":
    main()
