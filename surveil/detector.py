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


class TorchDetector:
    def __init__(self, config: DetectorConfig):
        self.config = config
        self.device = select_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            self.model, self.class_names, checkpoint_thresholds = self._load(config)
            self.model.eval().to(self.device)
        except ModelLoadError:
            raise
        except (RuntimeError, OSError, ValueError, EOFError) as exc:  # e.g. a damaged file in the torch hub cache, a missing GPU
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ModelLoadError(f"detector weights {config.weights} cannot be loaded on {self.device} ({type(exc).__name__}: {first})") from None
        self.operating_thresholds = resolve_thresholds(config, self.class_names, checkpoint_thresholds)
        self.thresholds = np.minimum(self.operating_thresholds, config.low_score_floor)  # what reaches the tracker
        self.keep = keep_mask(config, self.class_names)
        self._autocast = self.device.type == "cuda" and config.half
        log.info("detector ready: %s on %s, %d classes", config.weights, self.device, len(self.class_names) - 1)

    @staticmethod
    def _load(config: DetectorConfig) -> tuple[torch.nn.Module, list[str], dict[str, float]]:
        sizes = {"min_size": config.min_size, "max_size": config.max_size}
        if config.weights == "coco":
            model, labels = load_coco_model(config.architecture, **{k: v for k, v in sizes.items() if v is not None})
            return model, labels, {}
        model, checkpoint = load_checkpoint_model(config.weights, **sizes)
        return model, list(checkpoint["labels"]), dict(checkpoint.get("score_thresholds", {}))

    def _to_tensors(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """BGR uint8 HWC frames -> RGB float CHW tensors in [0, 1] on the device.

        Frames of one size (the usual case for a camera fleet) are stacked once and moved in
        one (pinned, asynchronous) copy; the conversion to float happens on the device.
        """
        if len({image.shape for image in images}) == 1:
            batch = [torch.from_numpy(np.stack(images))]
        else:
            batch = [torch.from_numpy(np.ascontiguousarray(image))[None] for image in images]
        tensors = []
        for chunk in batch:
            if self.device.type == "cuda":
                chunk = chunk.pin_memory().to(self.device, non_blocking=True)
            tensors.extend(chunk.flip(-1).permute(0, 3, 1, 2).float().div_(255.0).unbind(0))
        return tensors

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        autocast = torch.autocast("cuda", dtype=torch.float16) if self._autocast else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            outputs = self.model(self._to_tensors(images))
        return [self._to_detections(output) for output in outputs]

    def _to_detections(self, output: dict[str, torch.Tensor]) -> Detections:
        boxes = output["boxes"].float().cpu().numpy()
        scores = output["scores"].float().cpu().numpy()
        labels = output["labels"].cpu().numpy().astype(np.int64)
        labels_in_range = np.clip(labels, 0, len(self.thresholds) - 1)
        mask = self.keep[labels_in_range] & (scores >= self.thresholds[labels_in_range]) & (labels < len(self.thresholds))
        return Detections.from_arrays(boxes[mask], scores[mask], labels[mask])
