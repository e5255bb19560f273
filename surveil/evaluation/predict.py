"""Run a torchvision-style detector over images and return metric-ready predictions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from surveil.detection.input_size import MAX_TO_MIN_RATIO, set_input_size
from surveil.evaluation.metrics import Prediction

__all__ = ["MAX_TO_MIN_RATIO", "bgr_to_tensor", "predict", "read_image", "set_input_size"]


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
