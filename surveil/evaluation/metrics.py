"""Detection metrics: COCO mAP (pycocotools) and per-class P/R/F1 at operating thresholds.

Two views of the same predictions:

- COCO mAP@[.5:.95] and AP50 from pycocotools, built in memory (101-point interpolated AP,
  at most 100 detections per image, as in every COCO report).
- Per-class precision, recall and F1 at an operating score threshold, plus the best F1 over
  all thresholds and the threshold that reaches it. Predictions are matched greedily, highest
  score first, each to the unmatched ground-truth box of its class with the highest IoU >= 0.5.
  Because matching runs in score order, one pass gives the matches for every threshold.

Ground-truth boxes flagged ``ignore`` (don't-care regions, e.g. MOT rows with flag 0) are
neither hits nor misses: a prediction that lies mostly inside one (intersection over the
prediction's area >= 0.5, COCO's crowd rule) and matches nothing else is dropped, not counted
as a false positive. pycocotools sees them as ``iscrowd`` boxes, which gives the same rule.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from surveil.geometry import box_area, box_intersection, box_iou

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5
DEFAULT_SCORE_THRESHOLD = 0.5
BACKGROUND = "__background__"


def _as_boxes(boxes: Any) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class Prediction:
    """Detections for one image: xyxy pixel boxes, scores and 1-based class labels."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _as_boxes(self.boxes))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64).reshape(-1))
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError(
                f"Prediction lengths differ: {len(self.boxes)} boxes, {len(self.scores)} scores, {len(self.labels)} labels"
            )


@dataclass(frozen=True)
class Target:
    """Ground truth for one image; ``ignore`` (optional, bool per box) marks don't-care boxes."""

    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _as_boxes(self.boxes))
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64).reshape(-1))
        ignore = np.zeros(len(self.labels), bool) if self.ignore is None else np.asarray(self.ignore, bool).reshape(-1)
        object.__setattr__(self, "ignore", ignore)
        if not len(self.boxes) == len(self.labels) == len(ignore):
            raise ValueError(
                f"Target lengths differ: {len(self.boxes)} boxes, {len(self.labels)} labels, {len(ignore)} ignore flags"
            )

    @property
    def ignored(self) -> np.ndarray:
        """The ``ignore`` flags as an array (``__post_init__`` always sets one)."""
        return cast(np.ndarray, self.ignore)


@dataclass(frozen=True)
class ClassMetrics:
    """One class's figures; ``None`` where a figure is undefined (no ground truth, no hit)."""

    name: str
    support: int
    threshold: float
    tp: int
    fp: int
    precision: float
    recall: float
    f1: float
    best_f1: float
    best_threshold: float | None
    ap: float | None
    ap50: float | None


@dataclass(frozen=True)
class EvalReport:
    classes: tuple[ClassMetrics, ...]
    map: float | None
    ap50: float | None
    num_images: int
    averages: dict[str, dict[str, float]] = field(default_factory=dict)

    def by_name(self, name: str) -> ClassMetrics:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)

    def best_thresholds(self) -> dict[str, float]:
        """The F1-optimal score threshold per class (classes without any hit are left out)."""
        return {c.name: c.best_threshold for c in self.classes if c.best_threshold is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "ap50": self.ap50,
            "num_images": self.num_images,
            "iou_threshold": IOU_THRESHOLD,
            "classes": {c.name: {k: v for k, v in vars(c).items() if k != "name"} for c in self.classes},
            "averages": self.averages,
        }

    def format_table(self, digits: int = 3) -> str:
        return _format_table(self, digits)


# ---------------------------------------------------------------------------- matching


def match_image(
    pred_boxes: np.ndarray, pred_scores: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image and class, highest score first.

    Returns (scores, is_tp) of the predictions that count (those falling in an ignore box and
    matching no real box are dropped).
    """
    order = np.argsort(-pred_scores, kind="stable")
    boxes, scores = pred_boxes[order], pred_scores[order]
    real = gt_boxes[~gt_ignore]
    iou = box_iou(boxes, real) if len(real) else np.zeros((len(boxes), 0))
    taken = np.zeros(len(real), bool)
    is_tp = np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        candidates = np.where(taken, -1.0, iou[i])
        if len(candidates) and candidates.max() >= IOU_THRESHOLD:
            j = int(candidates.argmax())
            taken[j] = True
            is_tp[i] = True
    keep = is_tp | ~_inside_ignored(boxes, gt_boxes[gt_ignore])
    return scores[keep], is_tp[keep]


def _inside_ignored(boxes: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    if not len(ignored) or not len(boxes):
        return np.zeros(len(boxes), bool)
    ioa = box_intersection(boxes, ignored) / np.maximum(box_area(boxes), 1e-12)[:, None]
    return ioa.max(axis=1) >= IOU_THRESHOLD


# ------------------------------------------------------------------------ P/R/F1 per class


@dataclass(frozen=True)
class _Curve:
    scores: np.ndarray  # descending
    is_tp: np.ndarray
    support: int


def _class_curve(predictions: list[Prediction], targets: list[Target], label: int) -> _Curve:
    all_scores, all_tp, support = [], [], 0
    for pred, tgt in zip(predictions, targets):
        p = pred.labels == label
        g = tgt.labels == label
        support += int((g & ~tgt.ignored).sum())
        scores, is_tp = match_image(pred.boxes[p], pred.scores[p], tgt.boxes[g], tgt.ignored[g])
        all_scores.append(scores)
        all_tp.append(is_tp)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
    is_tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    return _Curve(scores[order], is_tp[order], support)


def _prf(tp: int, fp: int, support: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _at_threshold(curve: _Curve, threshold: float) -> tuple[int, int]:
    kept = curve.scores >= threshold
    tp = int(curve.is_tp[kept].sum())
    return tp, int(kept.sum()) - tp


def _best_f1(curve: _Curve) -> tuple[float, float | None]:
    """Best F1 over thresholds set at each distinct score; ties go to the highest threshold."""
    if not curve.is_tp.any() or curve.support == 0:
        return 0.0, None
    tp = np.cumsum(curve.is_tp)
    n = np.arange(1, len(tp) + 1)
    # only cut after the last of a run of equal scores: a threshold keeps all of them
    cut = np.r_[curve.scores[1:] != curve.scores[:-1], True]
    f1 = np.where(cut, 2 * tp / (n + curve.support), -1.0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(curve.scores[i])


# ------------------------------------------------------------------------------ COCO mAP


def _coco_gt(targets: list[Target], num_classes: int) -> dict[str, Any]:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, tgt in enumerate(targets):
        images.append({"id": image_id})
        for box, label, ignore in zip(tgt.boxes, tgt.labels, tgt.ignored):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": int(ignore),
            })  # fmt: skip
    categories = [{"id": k} for k in range(1, num_classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco_dt(predictions: list[Prediction]) -> np.ndarray:
    rows = []
    for image_id, pred in enumerate(predictions):
        if not len(pred.boxes):
            continue
        xywh = np.c_[pred.boxes[:, :2], pred.boxes[:, 2:] - pred.boxes[:, :2]]
        rows.append(np.c_[np.full(len(xywh), image_id), xywh, pred.scores, pred.labels].astype(np.float64))
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def coco_precision(predictions: list[Prediction], targets: list[Target], num_classes: int) -> np.ndarray | None:
    """pycocotools' precision array [T, R, K] (area 'all', 100 detections); None without detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dt_rows = _coco_dt(predictions)
    if not len(dt_rows):
        return None
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        gt = COCO()
        gt.dataset = _coco_gt(targets, num_classes)
        gt.createIndex()
        dt = gt.loadRes(dt_rows)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
    log.debug("pycocotools: %s", captured.getvalue().strip())
    max_dets = ev.params.maxDets.index(100)
    return ev.eval["precision"][:, :, :, 0, max_dets]


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


# ------------------------------------------------------------------------------- evaluate


def _thresholds_for(class_names: list[str], score_thresholds: dict[str, float] | float) -> list[float]:
    if isinstance(score_thresholds, (int, float)):
        return [float(score_thresholds)] * len(class_names)
    unknown = set(score_thresholds) - set(class_names)
    if unknown:
        log.warning("score thresholds for unknown classes ignored: %s", sorted(unknown))
    return [float(score_thresholds.get(name, DEFAULT_SCORE_THRESHOLD)) for name in class_names]


def _check_labels(items: list[Prediction] | list[Target], num_classes: int, what: str) -> None:
    for item in items:
        if len(item.labels) and (item.labels.min() < 1 or item.labels.max() > num_classes):
            raise ValueError(f"{what} labels must be in 1..{num_classes}, got {np.unique(item.labels).tolist()}")


def evaluate(
    predictions: list[Prediction],
    targets: list[Target],
    class_names: list[str],
    score_thresholds: dict[str, float] | float = DEFAULT_SCORE_THRESHOLD,
) -> EvalReport:
    """Score ``predictions`` against ``targets`` (same order, one per image).

    ``class_names[0]`` is '__background__'; labels are 1..K. ``score_thresholds`` is one
    operating threshold for all classes or one per class name (missing ones: 0.5).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if not class_names or class_names[0] != BACKGROUND:
        raise ValueError(f"class_names[0] must be {BACKGROUND!r}")
    names = list(class_names[1:])
    _check_labels(predictions, len(names), "prediction")
    _check_labels(targets, len(names), "target")
    precision = coco_precision(predictions, targets, len(names))
    classes = tuple(
        _class_metrics(predictions, targets, k + 1, name, thr, precision)
        for k, (name, thr) in enumerate(zip(names, _thresholds_for(names, score_thresholds)))
    )
    has_gt = any(c.support for c in classes)
    coco_map = _mean_valid(precision) if precision is not None else (0.0 if has_gt else None)
    coco_ap50 = _mean_valid(precision[0]) if precision is not None else (0.0 if has_gt else None)
    return EvalReport(classes, coco_map, coco_ap50, len(targets), _averages(classes))


def _class_metrics(
    predictions: list[Prediction],
    targets: list[Target],
    label: int,
    name: str,
    threshold: float,
    precision: np.ndarray | None,
) -> ClassMetrics:
    curve = _class_curve(predictions, targets, label)
    tp, fp = _at_threshold(curve, threshold)
    p, r, f1 = _prf(tp, fp, curve.support)
    best_f1, best_thr = _best_f1(curve)
    if precision is None:
        ap = ap50 = 0.0 if curve.support else None
    else:
        ap, ap50 = _mean_valid(precision[:, :, label - 1]), _mean_valid(precision[0, :, label - 1])
    return ClassMetrics(name, curve.support, threshold, tp, fp, p, r, f1, best_f1, best_thr, ap, ap50)


def _averages(classes: tuple[ClassMetrics, ...]) -> dict[str, dict[str, float]]:
    """sklearn's micro, macro and support-weighted averages of P/R/F1 at the operating thresholds."""
    scored = [c for c in classes if c.support]
    if not scored:
        return {}
    support = sum(c.support for c in scored)
    weights = np.array([c.support for c in scored], float)
    prf = np.array([[c.precision, c.recall, c.f1] for c in scored])
    micro = _prf(sum(c.tp for c in scored), sum(c.fp for c in scored), support)
    out = {}
    for key, vals in (("micro avg", micro), ("macro avg", prf.mean(axis=0)), ("weighted avg", weights @ prf / support)):
        out[key] = {"precision": float(vals[0]), "recall": float(vals[1]), "f1": float(vals[2]), "support": support}
    return out


# --------------------------------------------------------------------------------- table


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _format_table(report: EvalReport, digits: int) -> str:
    headers = ["precision", "recall", "f1-score", "support", "thresh", "best-f1", "best-thr", "AP50", "AP"]
    width = max([len("weighted avg"), *(len(c.name) for c in report.classes)])
    lines = [f"{'':>{width}} " + " ".join(f"{h:>9}" for h in headers), ""]
    for c in report.classes:
        cells = [c.precision, c.recall, c.f1]
        row = [_fmt(v, digits) for v in cells] + [str(c.support), _fmt(c.threshold, 2)]
        row += [_fmt(c.best_f1, digits), _fmt(c.best_threshold, 2), _fmt(c.ap50, digits), _fmt(c.ap, digits)]
        lines.append(f"{c.name:>{width}} " + " ".join(f"{v:>9}" for v in row))
    if report.averages:
        lines.append("")
    for key, avg in report.averages.items():
        row = [_fmt(avg[k], digits) for k in ("precision", "recall", "f1")] + [str(avg["support"])]
        lines.append(f"{key:>{width}} " + " ".join(f"{v:>9}" for v in row))
    lines += ["", f"mAP@[.50:.95] {_fmt(report.map, digits)}", f"AP50          {_fmt(report.ap50, digits)}"]
    lines.append(f"images        {report.num_images}")
    return "\n".join(lines)
