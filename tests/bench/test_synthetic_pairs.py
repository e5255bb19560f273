"""bench/synthetic_pairs.py: a pasted person stands beside the chosen one, and the training config it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.synthetic_pairs import REPO, SOURCE, paste_beside, soft_ellipse, training_config
from surveil.geometry import box_iou

PERSON = np.array([[100.0, 50.0, 120.0, 110.0]], np.float32)  # 20 px wide, 60 px tall, feet at y 110


def cut_of(height: int = 30, width: int = 10) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


@pytest.mark.parametrize("seed", range(20))
def test_the_pasted_person_stands_beside_the_chosen_one(seed: int) -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    box = paste_beside(image, PERSON, 0, cut_of(), np.random.default_rng(seed))
    assert box is not None
    height = box[3] - box[1]
    assert height == pytest.approx(60, abs=1)  # the chosen person's height
    assert box[2] - box[0] == pytest.approx(20, abs=1)  # the cut's aspect kept: 10 x 30 -> 20 x 60
    assert abs(box[3] - 110) <= 0.03 * 60 + 1  # feet level
    assert 0.45 * 20 - 1 <= abs(box[0] - 100) <= 0.85 * 20 + 1  # shifted sideways, overlapping
    assert 0 < box_iou(box[None], PERSON)[0, 0] < 0.6
    x1, y1, x2, y2 = box.astype(int)
    assert image[y1:y2, x1:x2].max() == 255 and image[: y1 - 1].max() == 0  # drawn there, nowhere else


def test_no_paste_off_the_picture_or_over_somebody_else() -> None:
    rng = np.random.default_rng(0)
    at_the_edge = np.array([[0.0, 50.0, 20.0, 110.0], [280.0, 50.0, 300.0, 110.0]], np.float32)
    image = np.zeros((200, 300, 3), np.uint8)
    results = [paste_beside(image, at_the_edge, 0, cut_of(), rng) for _ in range(20)]
    assert any(r is None for r in results) and all(r is None or r[0] >= 0 for r in results)
    crowded = np.array([[100.0, 50.0, 120.0, 110.0], [80.0, 50.0, 100.0, 110.0], [120.0, 50.0, 140.0, 110.0]])
    assert all(paste_beside(image, crowded.astype(np.float32), 0, cut_of(), rng) is None for _ in range(20))


def test_the_blend_is_opaque_at_the_centre_and_clear_at_the_corners() -> None:
    alpha = soft_ellipse(40, 20)
    assert alpha.shape == (40, 20, 1)
    assert alpha[20, 10, 0] == 1.0 and alpha[0, 0, 0] == 0.0 and alpha.min() >= 0.0


def test_the_training_config_is_the_shipped_one_plus_the_pairs(tmp_path: Path) -> None:
    base = REPO / "configs/train-pedestrian-s8.yaml"
    out = tmp_path / "pairs"
    out.mkdir()
    written = yaml.safe_load(training_config(base, out / "S3-MF1-pairs", out).read_text())
    original = yaml.safe_load(base.read_text())
    resolved = [(out / e["path"]).resolve() for e in written["train_data"]]
    assert resolved[:-1] == [(base.parent / e["path"]).resolve() for e in original["train_data"]]
    assert resolved[-1] == (out / "S3-MF1-pairs").resolve()
    assert written["train_data"][-1]["sizes"] == next(e["sizes"] for e in original["train_data"] if SOURCE in e["path"])
    assert (out / written["backbone_weights"]).resolve() == (base.parent / original["backbone_weights"]).resolve()
    assert {k: written[k] for k in ("cache_dir", "output_dir", "output")} == {
        "cache_dir": "cache",
        "output_dir": "run",
        "output": "model.pt",
    }  # relative to the config: nothing is written outside --out, models/ least of all
    unchanged = {k: v for k, v in original.items() if k not in {"train_data", "test_data", "backbone_weights"}}
    assert {k: written[k] for k in unchanged if k not in {"cache_dir", "output_dir", "output"}} == {
        k: v for k, v in unchanged.items() if k not in {"cache_dir", "output_dir", "output"}
    }
