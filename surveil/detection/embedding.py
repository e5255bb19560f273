"""Appearance embeddings of detections, from what a Faster R-CNN already computes.

The RoI head pools the FPN features inside each box (``box_roi_pool``, C x 7 x 7). Pooling again
over the *final* boxes costs one RoIAlign over at most ``detections_per_img`` boxes. Kinds, compared
on PETS09-S2L1 ground truth by ``bench/embedding_separation.py`` (docs/benchmarks.md, issue 17):

- ``pooled+colour`` (default): ``pooled`` and ``colour``, each unit-normalised, side by side
  (D = C + 9); it separates identities better than either alone;
- ``crop`` (MobileNetV2 backbones, as in every shipped model; others get ``pooled+colour``): each box
  of the network input resampled to ``CROP_SIZE`` (64 x 32) and run through the detector's own first
  backbone blocks (``features[:11]``, 64 channels at stride 16 of the crop), averaged over the upper,
  middle and lower third, each third unit-normalised (D = 192). The frame-level features of a 12-20
  px wide person are 2-3 cells across; the crop gives the same blocks 4 x 2 cells per third. It tells
  people apart clearly better (AUC 0.85 against 0.76 on PETS09-S2L1), but it costs 9-37 % of a
  frame (the default: 0-5 %), and at 2 fps the tracker does not turn it into fewer switches without
  more false loitering, so it is opt-in (docs/benchmarks.md, "Issue 17, sixth round");
- ``pooled``: the 7 x 7 pooled FPN features averaged over space (D = the FPN's channel count, 96-128);
- ``colour``: the network input (the resized, normalised RGB image) averaged over the box's upper,
  middle and lower part (D = 9): clothing colour;
- ``head``: the box head's representation (``representation_size``, 256): trained to tell people
  from background, it tells people apart worst.

No parameter is fitted: nothing can leak from an evaluation sequence. Rows are L2-normalised; a row
that is all zero becomes the uniform unit vector, so every row has unit norm.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.ops import roi_align

__all__ = ["DEFAULT_KIND", "EMBEDDING_KINDS", "box_embeddings", "crop_trunk", "kind_for", "unit_rows"]

EMBEDDING_KINDS = ("crop", "pooled+colour", "pooled", "colour", "head")
DEFAULT_KIND = "pooled+colour"
FALLBACK_KIND = "pooled+colour"  # what ``crop`` becomes on a backbone without a crop trunk
COLOUR_GRID = (8, 4)  # RoIAlign of the input image, rows x columns
STRIPES = ((0, 3), (3, 5), (5, 8))  # grid rows averaged into upper, middle and lower body
CROP_SIZE = (64, 32)  # rows x columns each box is resampled to for the ``crop`` kind
CROP_BLOCKS = 11  # MobileNetV2 features[:11]: stride 16, 64 channels
CROP_THIRDS = 3  # the crop trunk's output rows averaged into this many horizontal parts


def crop_trunk(model: Any) -> nn.Module | None:
    """MobileNetV2 ``features[:CROP_BLOCKS]`` of the detector ``model`` (its own weights), or None when its
    backbone is not one of the MobileNetV2 necks of :mod:`surveil.detection.architectures`."""
    stem = getattr(getattr(model, "backbone", None), "stem", None)
    if isinstance(stem, nn.Sequential) and len(stem) >= CROP_BLOCKS:  # MobileNetV2FPN: features[:14]
        return stem[:CROP_BLOCKS]
    s8, s16 = getattr(stem, "s8", None), getattr(stem, "s16", None)
    if isinstance(s8, nn.Sequential) and isinstance(s16, nn.Sequential):  # MobileNetV2FPNS8: [:7], [7:14]
        return nn.Sequential(*s8, *s16[: CROP_BLOCKS - len(s8)])
    return None


def kind_for(model: Any, kind: str) -> str:
    """``kind`` where ``model`` can compute it; ``crop`` on a backbone without a crop trunk is ``FALLBACK_KIND``."""
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"embedding kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    return FALLBACK_KIND if kind == "crop" and crop_trunk(model) is None else kind


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


def crop_thirds(trunk: nn.Module, images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """(sum N_i, 3 * C): each box's crop through ``trunk``, averaged over its upper, middle and lower
    third, each third unit-normalised."""
    crops = roi_align(images, [b.to(images.dtype) for b in boxes], CROP_SIZE, spatial_scale=1.0, sampling_ratio=2)
    maps = trunk(crops)
    rows = maps.shape[2]
    edges = [rows * i // CROP_THIRDS for i in range(CROP_THIRDS + 1)]
    return torch.cat([unit_rows(spatial_mean(maps[:, :, a:b])) for a, b in itertools.pairwise(edges)], dim=1)


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
    if kind == "crop":
        trunk = crop_trunk(model)
        if trunk is None:
            raise ValueError("the crop embedding needs a MobileNetV2 backbone (use kind_for)")
        parts.append(unit_rows(crop_thirds(trunk, images, boxes)))
    elif kind != "colour":
        pooled = model.roi_heads.box_roi_pool(features, [b.to(images.dtype) for b in boxes], list(image_sizes))
        parts.append(unit_rows(model.roi_heads.box_head(pooled) if kind == "head" else spatial_mean(pooled)))
    if "colour" in kind:
        parts.append(unit_rows(colour_stripes(images, boxes)))
    rows = unit_rows(torch.cat(parts, dim=1)) if len(parts) > 1 else parts[0]
    if len(boxes) == 1:  # no split: a traced split would fix the box count into an exported graph
        return [rows]
    return list(rows.split([len(b) for b in boxes]))
