"""What every detector is to the rest of the daemon, and the post-processing every backend shares.

``Detector`` is the interface the pipeline depends on: a list of BGR frames in, one ``Detections``
per frame out, in each frame's own pixel coordinates. :class:`surveil.detection.torch_detector.TorchDetector`
and :class:`surveil.detection.runtimes.OnnxDetector` implement it; tests may put a scripted detector
behind the same interface. :class:`DetectionFilter` is the backends' common post-processing.
Nothing here imports torch: the ONNX Runtime / OpenVINO path runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from surveil.config import DetectorConfig
from surveil.types import Detections

__all__ = ["DetectionFilter", "Detector", "ModelLoadError", "keep_mask", "resolve_thresholds"]


class ModelLoadError(Exception):
    """Weights that cannot be loaded; the message says what to do about it.

    Defined here, beside the interface, so that the runtime path (ONNX Runtime / OpenVINO) can raise
    and catch it without importing torch; :mod:`surveil.detection.checkpoints` re-exports it.
    """


class Detector(Protocol):
    """Frames in, one ``Detections`` per frame out, down to a low score floor.

    ``operating_thresholds`` (optional attribute, per class id) says which detections are
    confident enough for rules; detectors without it count every detection as confident.
    ``implausible_boxes`` (optional attribute, a count that only grows) is how many boxes the
    detector's runtime returned that its graph cannot have made and the detector dropped (a runtime
    fault: the daemon exports it as ``surveil_detector_implausible_boxes_total``).
    """

    class_names: list[str]  # index = class id; 0 = background

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


def implausible_boxes(detector: Detector) -> int:
    """The detector's running count of implausible boxes dropped (0 for a detector that keeps none)."""
    return int(getattr(detector, "implausible_boxes", 0))


def resolve_thresholds(
    config: DetectorConfig, class_names: Sequence[str], checkpoint_thresholds: dict[str, float]
) -> np.ndarray:
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
            raise ModelLoadError(
                f"detector.classes names classes the model does not know: {unknown}; it knows {[n for n in class_names[1:] if n != 'N/A']}"
            )
        keep = np.array([name in config.classes for name in class_names])
    return keep


class DetectionFilter:
    """Every backend's post-processing: class filter, score floor, per-class operating thresholds, and no
    box with a non-finite coordinate.

    ``operating_thresholds`` (per class id) is what rules count as confident; ``thresholds`` (the
    lower of that and ``low_score_floor``) is what reaches the tracker.
    """

    def __init__(self, config: DetectorConfig, class_names: list[str], checkpoint_thresholds: dict[str, float]):
        self.class_names = class_names
        self.operating_thresholds = resolve_thresholds(config, class_names, checkpoint_thresholds)
        self.thresholds = np.minimum(self.operating_thresholds, config.low_score_floor)
        self.keep = keep_mask(config, class_names)

    def __call__(
        self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, embedding: np.ndarray | None = None
    ) -> Detections:
        """The kept detections; ``embedding`` (N, D), when given, stays row-aligned with its boxes."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        labels_in_range = np.clip(labels, 0, len(self.thresholds) - 1)
        mask = (
            self.keep[labels_in_range] & (scores >= self.thresholds[labels_in_range]) & (labels < len(self.thresholds))
        )
        mask &= np.isfinite(boxes).all(axis=1)  # a NaN box (a reduced-precision fault) would poison the tracker's costs
        kept = None
        if embedding is not None:
            rows = np.asarray(embedding, np.float32)
            kept = rows.reshape(len(boxes), rows.shape[-1] if rows.ndim else 0)[mask]
        return Detections.from_arrays(boxes[mask], scores[mask], labels[mask], kept)
