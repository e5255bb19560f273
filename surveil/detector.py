"""Batched object detection with a torchvision Faster R-CNN.

``Detector`` is the interface the pipeline depends on: a list of BGR frames in, one
``Detections`` per frame out, in each frame's own pixel coordinates. ``TorchDetector`` is the
real implementation; tests may put a scripted detector behind the same interface.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.config import DetectorConfig
from surveil.models import ModelLoadError, load_checkpoint_model, load_coco_model
from surveil.types import Detections

log = logging.getLogger(__name__)


class Detector(Protocol):
    """Frames in, one ``Detections`` per frame out, down to a low score floor.

    ``operating_thresholds`` (optional attribute, per class id) says which detections are
    confident enough for rules; detectors without it count every detection as confident.
    """

    class_names: list[str]  # index = class id; 0 = background

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


def select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"detector.device is {spec!r} but CUDA is not available on this machine (use `auto` or `cpu`)")
    return torch.device(spec)


def resolve_thresholds(config: DetectorConfig, class_names: Sequence[str], checkpoint_thresholds: dict[str, float]) -> np.ndarray:
    """Per-class score thresholds: config per-class > config default (when set) > checkpoint operating point > default."""
    unknown = sorted(set(config.class_score_thresholds) - set(class_names))
    if unknown:
        raise ModelLoadError(f"detector.class_score_thresholds names classes the model does not know: {unknown}")
    explicit_default = "score_threshold" in config.model_fields_set
    thresholds = np.full(len(class_names), config.score_threshold, np.float32)
    for index, name in enumerate(class_names):
        if name in config.class_score_thresholds:
            thresholds[index] = config.class_score_thresholds[name]
        elif not explicit_default and name in checkpoint_thresholds:
            thresholds[index] = checkpoint_thresholds[name]
    return thresholds


def keep_mask(config: DetectorConfig, class_names: Sequence[str]) -> np.ndarray:
    """Which class ids to keep (background never)."""
    keep = np.ones(len(class_names), bool)
    keep[0] = False
    if config.classes:
        unknown = sorted(set(config.classes) - set(class_names))
        if unknown:
            raise ModelLoadError(f"detector.classes names classes the model does not know: {unknown}; it knows {[n for n in class_names[1:] if n != 'N/A']}")
        keep = np.array([name in config.classes for name in class_names])
    return keep


def frames_to_tensors(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """BGR uint8 HWC frames -> RGB float CHW tensors in [0, 1] on ``device`` (every backend's preprocessing).

    Frames of one size (the usual case for a camera fleet) are stacked once and moved in
    one (pinned, asynchronous) copy; the conversion to float happens on the device.
    """
    if len({image.shape for image in images}) == 1:
        batch = [torch.from_numpy(np.stack(images))]
    else:
        batch = [torch.from_numpy(np.ascontiguousarray(image))[None] for image in images]
    tensors = []
    for chunk in batch:
        if device.type == "cuda":
            chunk = chunk.pin_memory().to(device, non_blocking=True)
        tensors.extend(chunk.flip(-1).permute(0, 3, 1, 2).float().div_(255.0).unbind(0))
    return tensors


class DetectionFilter:
    """Every backend's post-processing: class filter, score floor, per-class operating thresholds.

    ``operating_thresholds`` (per class id) is what rules count as confident; ``thresholds`` (the
    lower of that and ``low_score_floor``) is what reaches the tracker.
    """

    def __init__(self, config: DetectorConfig, class_names: list[str], checkpoint_thresholds: dict[str, float]):
        self.class_names = class_names
        self.operating_thresholds = resolve_thresholds(config, class_names, checkpoint_thresholds)
        self.thresholds = np.minimum(self.operating_thresholds, config.low_score_floor)
        self.keep = keep_mask(config, class_names)

    def __call__(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Detections:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        labels_in_range = np.clip(labels, 0, len(self.thresholds) - 1)
        mask = self.keep[labels_in_range] & (scores >= self.thresholds[labels_in_range]) & (labels < len(self.thresholds))
        return Detections.from_arrays(boxes[mask], scores[mask], labels[mask])


def fold_batchnorm(model: torch.nn.Module) -> int:
    """Fold every (Frozen)BatchNorm2d that directly follows a Conv2d in a Sequential into the conv.

    Exact up to float rounding (inference only: BatchNorm in eval mode); the folded norm becomes
    an Identity. Returns how many were folded. On the shipped model this removes the elementwise
    ``x * scale + bias`` that is 30 % of its CPU time (docs/benchmarks.md).
    """
    folded = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (norm_name, norm) in zip(children, children[1:]):
            if isinstance(conv, torch.nn.Conv2d) and _is_inference_norm(norm) and norm.weight.shape[0] == conv.out_channels:
                _fold_into(conv, norm)
                setattr(module, norm_name, torch.nn.Identity())
                folded += 1
    return folded


def _is_inference_norm(norm: torch.nn.Module) -> bool:
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, torch.nn.BatchNorm2d) and not norm.training and norm.running_var is not None


def _fold_into(conv: torch.nn.Conv2d, norm: torch.nn.Module) -> None:
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        else:
            conv.bias.mul_(scale).add_(bias)


class TorchDetector:
    """The model in PyTorch. ``optimize`` (default): BatchNorm folded into the convolutions, and
    channels_last memory on the CPU — the same boxes within float rounding (tests/test_detector_backends.py);
    ``optimize=False`` is the model as trained (eager), the reference the other backends are tested against."""

    def __init__(self, config: DetectorConfig, optimize: bool = True):
        self.config = config
        self.device = select_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            self.model, self.class_names, checkpoint_thresholds = self._load(config)
            self.model.eval().to(self.device)
            if optimize:
                self._optimize()
        except ModelLoadError:
            raise
        except (RuntimeError, OSError, ValueError, EOFError) as exc:  # e.g. a damaged file in the torch hub cache, a missing GPU
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ModelLoadError(f"detector weights {config.weights} cannot be loaded on {self.device} ({type(exc).__name__}: {first})") from None
        self.filter = DetectionFilter(config, self.class_names, checkpoint_thresholds)
        self.operating_thresholds = self.filter.operating_thresholds
        self._autocast = self.device.type == "cuda" and config.half
        log.info("detector ready: %s on %s, %d classes", config.weights, self.device, len(self.class_names) - 1)

    def _optimize(self) -> None:
        folded = fold_batchnorm(self.model)
        if self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
        log.debug("detector: %d BatchNorm layers folded%s", folded, ", channels_last" if self.device.type == "cpu" else "")

    @staticmethod
    def _load(config: DetectorConfig) -> tuple[torch.nn.Module, list[str], dict[str, float]]:
        sizes = {"min_size": config.min_size, "max_size": config.max_size}
        if config.weights == "coco":
            model, labels = load_coco_model(config.architecture, **{k: v for k, v in sizes.items() if v is not None})
            return model, labels, {}
        model, checkpoint = load_checkpoint_model(config.weights, **sizes)
        return model, list(checkpoint["labels"]), dict(checkpoint.get("score_thresholds", {}))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        autocast = torch.autocast("cuda", dtype=torch.float16) if self._autocast else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            outputs = self.model(frames_to_tensors(images, self.device))
        return [self._to_detections(output) for output in outputs]

    def _to_detections(self, output: dict[str, torch.Tensor]) -> Detections:
        return self.filter(output["boxes"].float().cpu().numpy(), output["scores"].float().cpu().numpy(), output["labels"].cpu().numpy())
