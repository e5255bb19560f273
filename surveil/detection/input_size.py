"""The network input size of a torchvision detector (its ``GeneralizedRCNNTransform``).

Shared by the exporter (runtime) and the evaluation tools, so the daemon never imports
``surveil.evaluation``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from torch import nn

log = logging.getLogger(__name__)

# torchvision's default max/min ratio (1333 / 800): a larger min_size widens max_size with it
MAX_TO_MIN_RATIO = 1333 / 800


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


def input_size(model: nn.Module) -> tuple[int, int]:
    """(shorter side, cap on the longer side) a torchvision detector resizes its inputs to."""
    transform: Any = model.transform  # a GeneralizedRCNNTransform (torchvision ships no type information)
    return int(transform.min_size[-1]), int(transform.max_size)
