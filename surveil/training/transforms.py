"""Training augmentations that move boxes with the image (torchvision.transforms.v2).

Each pipeline ends with :class:`DropInvalidBoxes`, which removes boxes left without area (or
outside the image) by a crop or a flip and records how many it dropped in the target
(``target["num_dropped"]``), so the training loop can count them instead of crashing on them.

The geometric helpers (:func:`hflip_boxes`, :func:`scale_boxes`) are also used by the feature
cache, which applies flip and scale before the frozen stem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from surveil.datasets import make_target

__all__ = [
    "DropInvalidBoxes",
    "crop_boxes",
    "eval_transforms",
    "hflip_boxes",
    "make_target",
    "scale_boxes",
    "train_transforms",
]


class DropInvalidBoxes(v2.Transform):
    """Drop boxes narrower or shorter than ``min_size`` pixels after clamping; count them."""

    def __init__(self, min_size: float = 1.0) -> None:
        super().__init__()
        self.min_size = min_size

    def forward(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) == 2 else inputs[0]
        boxes: tv_tensors.BoundingBoxes = target["boxes"]
        h, w = boxes.canvas_size
        clamped = boxes.as_subclass(torch.Tensor).clone()
        clamped[:, 0::2] = clamped[:, 0::2].clamp(0, w)
        clamped[:, 1::2] = clamped[:, 1::2].clamp(0, h)
        keep = ((clamped[:, 2] - clamped[:, 0]) >= self.min_size) & ((clamped[:, 3] - clamped[:, 1]) >= self.min_size)
        out = dict(target)
        out["boxes"] = tv_tensors.wrap(clamped[keep], like=boxes)
        out["labels"] = target["labels"][keep]
        out["num_dropped"] = int(target.get("num_dropped", 0)) + int((~keep).sum())
        return image, out


def train_transforms(
    min_sizes: Sequence[int],
    max_size: int,
    hflip: float = 0.5,
    crop: bool = True,
    photometric: bool = True,
) -> v2.Compose:
    """Photometric distortion, IoU crop (boxes clipped), horizontal flip, scale jitter
    (shorter side picked from ``min_sizes``), then invalid boxes dropped and counted."""
    steps: list[v2.Transform] = [v2.ToImage()]
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if crop:
        steps.append(v2.RandomApply([v2.RandomIoUCrop(min_scale=0.5, trials=20)], p=0.5))
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    steps += [
        v2.RandomShortestSize(min_size=list(min_sizes), max_size=max_size),
        v2.ToDtype(torch.float32, scale=True),
        DropInvalidBoxes(),
    ]
    return v2.Compose(steps)


def eval_transforms() -> v2.Compose:
    """No augmentation: the model's own transform resizes at inference."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), DropInvalidBoxes()])


# ---------------------------------------------------------------- plain geometry (numpy)


def hflip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Mirror xyxy boxes in an image ``width`` pixels wide; its own inverse."""
    out = np.asarray(boxes, dtype=np.float32).copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Scale xyxy boxes; the inverse is ``scale_boxes(b, 1 / sx, 1 / sy)``."""
    return (np.asarray(boxes, dtype=np.float32) * np.array([sx, sy, sx, sy], dtype=np.float32)).astype(np.float32)


def crop_boxes(
    boxes: np.ndarray, labels: np.ndarray, x0: float, y0: float, w: float, h: float, min_visible: float = 0.4
) -> tuple[np.ndarray, np.ndarray, int]:
    """Boxes in the window (x0, y0, w, h), clipped to it; boxes with less than ``min_visible`` of
    their area inside are dropped. Returns (boxes, labels, number dropped)."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    shifted = b - np.array([x0, y0, x0, y0], dtype=np.float32)
    clipped = shifted.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= min_visible * np.maximum(area, 1e-6)) & (visible > 0)
    return clipped[keep], np.asarray(labels)[keep], int((~keep).sum())
