"""Small real checkpoints for tests: the real model-loading and inference path, offline."""

from __future__ import annotations

from pathlib import Path

import torch

from surveil.detection.checkpoints import build_model, save_checkpoint

TINY_ARCHITECTURE = "fasterrcnn_mobilenet_v3_large_320_fpn"


def random_checkpoint(path: Path, labels: list[str], **extra) -> Path:
    """A seeded random-weight Faster R-CNN with ``labels`` (background first) saved at ``path``;
    ``extra`` goes to ``save_checkpoint`` (e.g. ``score_thresholds``)."""
    torch.manual_seed(0)
    model = build_model(TINY_ARCHITECTURE, num_classes=len(labels))
    return save_checkpoint(path, model, TINY_ARCHITECTURE, labels, **extra)
