"""Run a torchvision-style detector over images and return metric-ready predictions."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from surveil.evaluation.metrics import Prediction

log = logging.getLogger(__name__)

# torchvision's default max/min ratio (1333 / 800): a larger min_size widens max_size with it
MAX_TO_MIN_RATIO = 1333 / 800


def predict(
    model: nn.Module, images: list[torch.Tensor], batch_size: int = 1, device: str | torch.device = "cpu"
) -> list[Prediction]:
    """Detections for each image (CHW float 0-1 RGB), boxes in that image's own pixel coordinates."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval().to(device)
    out: list[Prediction] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = [img.to(device) for img in images[start : start + batch_size]]
            out.extend(_to_prediction(d) for d in model(batch))
    return out


def _to_prediction(det: dict[str, torch.Tensor]) -> Prediction:
    return Prediction(
        boxes=det["boxes"].detach().cpu().numpy(),
        scores=det["scores"].detach().cpu().numpy(),
        labels=det["labels"].detach().cpu().numpy(),
    )


def bgr_to_tensor(image: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 BGR image (OpenCV's order) as a CHW float 0-1 RGB tensor."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


def read_image(path: str | Path) -> torch.Tensor:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return bgr_to_tensor(image)


def set_input_size(model: nn.Module, min_size: int, max_size: int | None = None) -> None:
    """Make a torchvision detector resize its inputs to ``min_size`` (shorter side).

    Without ``max_size`` the longer-side cap grows with ``min_size`` (torchvision's 1333/800
    ratio) but never shrinks below the model's own.
    """
    transform = getattr(model, "transform", None)
    if transform is None or not hasattr(transform, "min_size"):
        raise ValueError(f"{type(model).__name__} has no GeneralizedRCNNTransform to resize with")
    if max_size is None:
        max_size = max(int(transform.max_size), math.ceil(min_size * MAX_TO_MIN_RATIO))
    transform.min_size = (int(min_size),)
    transform.max_size = int(max_size)
    log.debug("detector input size: min %d, max %d", min_size, max_size)
