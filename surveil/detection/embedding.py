"""Appearance embeddings of detections, from what a Faster R-CNN already computes.

The RoI head pools the FPN features inside each box (``box_roi_pool``, C x 7 x 7) and turns them
into its box representation (``box_head``). Pooling again over the *final* boxes costs one
RoIAlign and, for ``head``, one pass of the two-layer head over at most ``detections_per_img``
boxes. Two kinds, compared on PETS09-S2L1 ground truth by ``bench/embedding_separation.py``:

- ``head``: the box head's representation (``representation_size``, 256 on the shipped models);
- ``pooled``: the 7 x 7 pooled features averaged over space (the FPN's channel count, 96-128).

Rows are L2-normalised; a row that is all zero (possible after the head's ReLU) becomes the
uniform unit vector, so every row has unit norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["DEFAULT_KIND", "EMBEDDING_KINDS", "box_embeddings", "unit_rows"]

EMBEDDING_KINDS = ("head", "pooled")
DEFAULT_KIND = "pooled"  # separates identities better (bench/embedding_separation.py)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm; an all-zero row becomes the uniform unit vector."""
    x = x.float().flatten(1)
    norm = x.norm(dim=1, keepdim=True)
    uniform = torch.full_like(x, float(x.shape[1]) ** -0.5)
    return torch.where(norm > 0, x / norm.clamp_min(1e-12), uniform)


def box_embeddings(
    model: Any,
    features: dict[str, torch.Tensor],
    boxes: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    kind: str = DEFAULT_KIND,
) -> list[torch.Tensor]:
    """One (N_i, D) unit-row tensor per image for ``boxes`` (xyxy in the network input's pixels).

    ``model`` is a torchvision GeneralizedRCNN (untyped); ``features`` its backbone's output.
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"embedding kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    boxes = [b.to(next(iter(features.values())).dtype) for b in boxes]
    pooled = model.roi_heads.box_roi_pool(features, boxes, list(image_sizes))
    rows = model.roi_heads.box_head(pooled) if kind == "head" else pooled.mean(dim=(2, 3))
    return list(unit_rows(rows).split([len(b) for b in boxes]))
