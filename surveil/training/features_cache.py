"""Cache the frozen stem's features so training on a CPU touches only the trainable part.

When a backbone's early part (the "stem", e.g. MobileNetV2 ``features[:14]``) is frozen, its
output for a given augmented image never changes. Each training image is therefore passed
through the model's own transform (normalise, resize) and the stem once per *view* — every
shorter-side scale in ``scales``, with and without a horizontal flip, some views with a
photometric jitter — and the stride-16 maps are kept in fp16. An epoch then draws one random
view per image and, optionally, a random crop of it in feature space (whole 16-pixel cells,
boxes shifted and clipped), and trains the tail, neck, RPN and RoI head on it.

Validation uses the same path with one un-augmented view per image at the evaluation size,
which gives the same detections as running the full model (the stem is deterministic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.transforms import v2

from surveil.datasets import Sample, read_rgb
from surveil.detection.checkpoints import save_whole
from surveil.training.transforms import crop_boxes, hflip_boxes

log = logging.getLogger(__name__)

STRIDE = 16
CACHE_VERSION = 1


@dataclass
class CachedView:
    stem: torch.Tensor  # (C, h, w) fp16, stride 16, of the resized (padded) image
    image_size: tuple[int, int]  # resized image (H, W) before padding
    original_size: tuple[int, int]  # the image file's (H, W)
    boxes: torch.Tensor  # (M, 4) float32, resized coordinates
    labels: torch.Tensor  # (M,) int64

    def to_dict(self) -> dict[str, Any]:
        return {
            "stem": self.stem,
            "image_size": list(self.image_size),
            "original_size": list(self.original_size),
            "boxes": self.boxes,
            "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CachedView:
        return cls(d["stem"], tuple(d["image_size"]), tuple(d["original_size"]), d["boxes"], d["labels"])


def _photometric() -> v2.Transform:
    return v2.Compose(
        [v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02), v2.RandomGrayscale(p=0.1)]
    )


@torch.no_grad()
def stem_view(model: FasterRCNN, image: torch.Tensor, sample: Sample, scale: int, flip: bool) -> CachedView:
    """One view: ``image`` (CHW float 0-1, already jittered if wanted) flipped and resized by the
    model's transform to shorter side ``scale``, through the stem."""
    h, w = image.shape[-2:]
    boxes = hflip_boxes(sample.boxes, w) if flip else sample.boxes
    if flip:
        image = image.flip(-1)
    transform = model.transform
    saved = transform.min_size
    transform.min_size = (int(scale),)
    try:
        target = {
            "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(sample.labels),
        }
        images, targets = transform([image], [target])
    finally:
        transform.min_size = saved
    stem = model.backbone.stem(images.tensors)[0].to(torch.float16)
    return CachedView(
        stem, tuple(images.image_sizes[0]), (int(h), int(w)), targets[0]["boxes"], targets[0]["labels"].long()
    )


def sample_seed(sample: Sample, seed: int) -> int:
    """A seed per (image, run seed): a sample's views do not depend on the other samples."""
    return int(hashlib.sha256(f"{seed}:{sample.image_path}".encode()).hexdigest()[:8], 16)


def sample_views(
    model: nn.Module, sample: Sample, scales: Sequence[int], flips: bool, photometric: float, seed: int
) -> list[CachedView]:
    """One sample's views (its scales x (2 if flips else 1)); ``photometric`` is the share of
    views whose image gets a colour jitter first."""
    model.eval()
    rng = random.Random(sample_seed(sample, seed))
    torch.manual_seed(sample_seed(sample, seed))
    jitter = _photometric()
    image = torch.from_numpy(read_rgb(sample.image_path)).permute(2, 0, 1).float().div_(255.0)
    views = []
    for scale in scales:
        for flip in (False, True) if flips else (False,):
            source = jitter(image) if photometric > 0 and rng.random() < photometric else image
            views.append(stem_view(model, source, sample, int(scale), flip))
    return views


def build_views(
    model: nn.Module,
    samples: Sequence[Sample],
    scales: Sequence[int] | Sequence[Sequence[int]],
    flips: bool = True,
    photometric: float = 0.0,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> list[list[CachedView]]:
    """Every sample's views; ``scales`` is one list for all samples or one list per sample.
    With ``cache_dir``, each sample's views are kept in a file of their own and reused by any
    later run with the same stem, transform, scales and augmentation settings."""
    per_sample = per_sample_scales(scales, len(samples))
    folder = Path(cache_dir) / stem_fingerprint(model) if cache_dir is not None else None
    out, start, hits = [], time.monotonic(), 0
    shown = start
    log.info(
        "feature cache: %d images x %d views each%s",
        len(samples),
        _views_per_sample(per_sample, flips),
        "" if folder is None else f" ({folder})",
    )
    for n, (sample, sample_scales) in enumerate(zip(samples, per_sample)):
        file = folder / f"{view_key(sample, sample_scales, flips, photometric, seed)}.pt" if folder else None
        if file is not None and file.is_file():
            views = [CachedView.from_dict(v) for v in torch.load(file, map_location="cpu", weights_only=True)]
            hits += 1
        else:
            views = sample_views(model, sample, sample_scales, flips, photometric, seed)
            if file is not None:
                save_whole([v.to_dict() for v in views], file)
        out.append(views)
        now = time.monotonic()
        if now - shown >= PROGRESS_EVERY_S or n + 1 == len(samples):  # by time: a slow CPU still hears from it
            shown = now
            left = (now - start) / (n + 1) * (len(samples) - n - 1)
            log.info(
                "feature cache: %d/%d images (%d from disk), %.0f s, about %.0f s left",
                n + 1,
                len(samples),
                hits,
                now - start,
                left,
            )
    return out


PROGRESS_EVERY_S = 10.0


def _views_per_sample(per_sample: Sequence[Sequence[int]], flips: bool) -> int:
    return max((len(scales) for scales in per_sample), default=0) * (2 if flips else 1)


def per_sample_scales(scales: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[list[int]]:
    if scales and not isinstance(scales[0], (int, float)):
        if len(scales) != n:
            raise ValueError(f"{len(scales)} scale lists for {n} samples")
        nested = cast("Sequence[Sequence[int]]", scales)  # checked on the first element above
        return [[int(s) for s in ss] for ss in nested]
    flat = cast("Sequence[int]", scales)
    return [[int(s) for s in flat]] * n


def view_key(sample: Sample, scales: Sequence[int], flips: bool, photometric: float, seed: int) -> str:
    spec = {
        "v": CACHE_VERSION,
        "image": str(sample.image_path),
        "boxes": sample.boxes.round(2).tolist(),
        "labels": sample.labels.tolist(),
        "scales": [int(s) for s in scales],
        "flips": flips,
        "photometric": photometric,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def stem_fingerprint(model: FasterRCNN) -> str:
    """Identifies the stem's weights and the transform's settings (a cache is valid for them only)."""
    digest = hashlib.sha256()
    for key, value in model.backbone.stem.state_dict().items():
        digest.update(key.encode())
        digest.update(value.float().sum().item().hex().encode())
    t = model.transform
    digest.update(f"{CACHE_VERSION}|{t.max_size}|{t.image_mean}|{t.image_std}|{t.size_divisible}".encode())
    return digest.hexdigest()[:16]


def cache_bytes(views: list[list[CachedView]]) -> int:
    return sum(v.stem.numel() * v.stem.element_size() for vs in views for v in vs)


# ---------------------------------------------------------------- batches


def crop_view(view: CachedView, max_cells: int, rng: random.Random, min_visible: float = 0.4) -> tuple[CachedView, int]:
    """A random window of at most ``max_cells`` x ``max_cells`` stem cells (an even number, so
    the stride-32 level stays aligned); boxes shifted and clipped. Returns (view, boxes dropped)."""
    _c, h, w = view.stem.shape
    ch, cw = min(h, max_cells), min(w, max_cells)
    ch, cw = ch - ch % 2, cw - cw % 2
    if (ch, cw) == (h, w):
        return view, 0
    y0, x0 = rng.randint(0, (h - ch) // 2) * 2, rng.randint(0, (w - cw) // 2) * 2
    ih = min(ch * STRIDE, view.image_size[0] - y0 * STRIDE)
    iw = min(cw * STRIDE, view.image_size[1] - x0 * STRIDE)
    boxes, labels, dropped = crop_boxes(
        view.boxes.numpy(), view.labels.numpy(), x0 * STRIDE, y0 * STRIDE, iw, ih, min_visible
    )
    stem = view.stem[:, y0 : y0 + ch, x0 : x0 + cw]
    cropped = CachedView(
        stem, (int(ih), int(iw)), view.original_size, torch.from_numpy(boxes), torch.from_numpy(labels)
    )
    return cropped, dropped


def collate_views(
    views: Sequence[CachedView],
) -> tuple[torch.Tensor, list[tuple[int, int]], list[dict[str, torch.Tensor]]]:
    """Stems zero-padded to one (even) size as float32, the valid image sizes, and the targets."""
    c = views[0].stem.shape[0]
    h = max(v.stem.shape[1] for v in views)
    w = max(v.stem.shape[2] for v in views)
    h, w = h + h % 2, w + w % 2
    stems = torch.zeros(len(views), c, h, w)
    for i, v in enumerate(views):
        stems[i, :, : v.stem.shape[1], : v.stem.shape[2]] = v.stem.float()
    targets = [{"boxes": v.boxes.float(), "labels": v.labels.long()} for v in views]
    return stems, [(v.image_size[0], v.image_size[1]) for v in views], targets


def image_list(stems: torch.Tensor, image_sizes: list[tuple[int, int]]) -> ImageList:
    """An ImageList whose tensor only has the padded image's shape (the anchor generator reads
    the shape, never the pixels): a zero-stride view costs no memory."""
    b, _, h, w = stems.shape
    dummy = stems.new_zeros(1).expand(b, 3, h * STRIDE, w * STRIDE)
    return ImageList(dummy, [tuple(s) for s in image_sizes])


class StemDetector(nn.Module):
    """Training forward of a Faster R-CNN from cached stem features (the loss dict); wrap this,
    not the detector, in DistributedDataParallel when training from the cache."""

    def __init__(self, detector: FasterRCNN) -> None:
        super().__init__()
        self.detector = detector

    def forward(
        self, stems: torch.Tensor, image_sizes: list[tuple[int, int]], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        images = image_list(stems, image_sizes)
        features = self.detector.backbone.forward_from_stem(stems)
        proposals, rpn_losses = self.detector.rpn(images, features, targets)
        _, det_losses = self.detector.roi_heads(features, proposals, images.image_sizes, targets)
        return {**rpn_losses, **det_losses}


@torch.inference_mode()
def predict_views(detector: FasterRCNN, views: Sequence[CachedView]) -> list[dict[str, torch.Tensor]]:
    """Detections (in each original image's pixels) from cached, un-augmented views, one at a
    time — the same numbers the full model gives on the image at that view's scale."""
    detector.eval()
    out = []
    for view in views:
        stems = view.stem.float()[None]
        images = image_list(stems, [view.image_size])
        features = detector.backbone.forward_from_stem(stems)
        proposals, _ = detector.rpn(images, features)
        detections, _ = detector.roi_heads(features, proposals, images.image_sizes)
        out += detector.transform.postprocess(detections, images.image_sizes, [view.original_size])
    return out


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Every ``world_size``-th item starting at ``rank`` (a fixed shard per process)."""
    return list(items[rank::world_size])


def epoch_batches(
    views: list[list[CachedView]], batch_size: int, crop_cells: int, rng: random.Random
) -> tuple[list[list[CachedView]], int]:
    """One epoch: images shuffled, one random view each (cropped if ``crop_cells``), in batches.
    Returns (batches, boxes dropped by crops)."""
    order = list(range(len(views)))
    rng.shuffle(order)
    chosen, dropped = [], 0
    for i in order:
        view = rng.choice(views[i])
        if crop_cells:
            view, bad = crop_view(view, crop_cells, rng)
            dropped += bad
        chosen.append(view)
    return [chosen[i : i + batch_size] for i in range(0, len(chosen), batch_size)], dropped


def boxes_per_view(views: list[list[CachedView]]) -> np.ndarray:
    return np.array([len(v.boxes) for vs in views for v in vs])
