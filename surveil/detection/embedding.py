"""Appearance embeddings of detections, from what a Faster R-CNN already computes.

The RoI head pools the FPN features inside each box (``box_roi_pool``, C x 7 x 7). Pooling again
over the *final* boxes costs one RoIAlign over at most ``detections_per_img`` boxes. Kinds, compared
on PETS09-S2L1 ground truth by ``bench/embedding_separation.py`` (docs/benchmarks.md, issue 17):

- ``pooled+colour`` (default): ``pooled`` and ``colour``, each unit-normalised, side by side
  (D = C + 9); it separates identities better than either alone;
- ``pooled``: the 7 x 7 pooled FPN features averaged over space (D = the FPN's channel count, 96-128);
- ``colour``: the network input (the resized, normalised RGB image) averaged over the box's upper,
  middle and lower part (D = 9): clothing colour;
- ``head``: the box head's representation (``representation_size``, 256): trained to tell people
  from background, it tells people apart worst.

No parameter is fitted: nothing can leak from an evaluation sequence. Rows are L2-normalised; a row
that is all zero becomes the uniform unit vector, so every row has unit norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.ops import roi_align

__all__ = ["DEFAULT_KIND", "EMBEDDING_KINDS", "box_embeddings", "unit_rows"]

EMBEDDING_KINDS = ("pooled+colour", "pooled", "colour", "head")
DEFAULT_KIND = "pooled+colour"
COLOUR_GRID = (8, 4)  # RoIAlign of the input image, rows x columns
STRIPES = ((0, 3), (3, 5), (5, 8))  # grid rows averaged into upper, middle and lower body


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm; an all-zero row becomes the uniform unit vector."""
    x = x.float().flatten(1)
    norm = x.norm(dim=1, keepdim=True)
    uniform = torch.full_like(x, float(x.shape[1]) ** -0.5)
    return torch.where(norm > 0, x / norm.clamp_min(1e-12), uniform)


def spatial_mean(pooled: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C), the mean over space written as a MatMul: OpenVINO runs a ReduceMean
    tail to an output in f32, which left the RoI head's own RoIAlign 10x slower in bf16 (+22 ms a
    frame, docs/benchmarks.md); a MatMul keeps the branch in bf16."""
    cells = pooled.shape[2] * pooled.shape[3]
    weights = torch.full((cells, 1), 1.0 / cells, dtype=pooled.dtype, device=pooled.device)
    return (pooled.flatten(2) @ weights).flatten(1)


def colour_stripes(images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """(sum N_i, 3 * 3): the mean input colour of each box's upper, middle and lower part."""
    grid = roi_align(images.float(), [b.float() for b in boxes], COLOUR_GRID, spatial_scale=1.0, sampling_ratio=2)
    return torch.cat([grid[:, :, top:bottom].mean(dim=(2, 3)) for top, bottom in STRIPES], dim=1)


def box_embeddings(
    model: Any,
    features: dict[str, torch.Tensor],
    images: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    kind: str = DEFAULT_KIND,
) -> list[torch.Tensor]:
    """One (N_i, D) unit-row tensor per image for ``boxes`` (xyxy in the network input's pixels).

    ``model`` is a torchvision GeneralizedRCNN (untyped); ``features`` its backbone's output for the
    padded network input ``images`` (B, 3, H, W).
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"embedding kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    parts = []
    if kind != "colour":
        pooled = model.roi_heads.box_roi_pool(features, [b.to(images.dtype) for b in boxes], list(image_sizes))
        parts.append(unit_rows(model.roi_heads.box_head(pooled) if kind == "head" else spatial_mean(pooled)))
    if "colour" in kind:
        parts.append(unit_rows(colour_stripes(images, boxes)))
    rows = unit_rows(torch.cat(parts, dim=1)) if len(parts) > 1 else parts[0]
    if len(boxes) == 1:  # no split: a traced split would fix the box count into an exported graph
        return [rows]
    return list(rows.split([len(b) for b in boxes]))
