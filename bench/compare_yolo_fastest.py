"""Our pedestrian checkpoint against COCO-pretrained Yolo-Fastest-1.1-xl, same metric, same timer.

Test sets: every 5th frame of the PETS09-S2L1 surveillance video (159 frames, 480x360) and the
Penn-Fudan test folder (34 street photos). Both detectors are scored by
``surveil.evaluation.evaluate`` (AP50 from pycocotools, best F1 from the greedy IoU >= 0.5
PR curve) with the person class only, and timed per frame end to end (pre-processing, forward,
decoding, NMS) with 2 threads. Both keep detections down to a score of 0.01 so that AP sees the
whole precision-recall curve.

    .venv/bin/python -m bench.compare_yolo_fastest --weights models/pedestrian-mnv2.pt --out bench/yolo-fastest.md
    .venv/bin/python -m bench.compare_yolo_fastest            # Yolo-Fastest only
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.images import read_bgr
from surveil.evaluation import Prediction, Target, evaluate
from surveil.evaluation.cli import align_labels, remap_prediction
from surveil.evaluation.predict import bgr_to_tensor, predict, set_input_size
from surveil.evaluation.surveillance import CLASS_NAMES, load_pets_s2l1

log = logging.getLogger("bench.compare_yolo_fastest")

MIN_SCORE = 0.01
YOLO_NMS_IOU = 0.45  # darknet's default
YOLO_DIR = Path("weights/yolo-fastest")
YOLO_CFG, YOLO_WEIGHTS = "yolo-fastest-1.1-xl.cfg", "yolo-fastest-1.1-xl.weights"
COCO_PERSON = 0  # first line of coco.names

Detector = Callable[[np.ndarray], Prediction]


@dataclass(frozen=True)
class TestSet:
    name: str
    frames: list[np.ndarray]  # BGR
    targets: list[Target]


@dataclass(frozen=True)
class Row:
    model: str
    input_size: str
    dataset: str
    ap50: float
    best_f1: float
    best_threshold: float | None
    ms_median: float


# ----------------------------------------------------------------------------- data


def load_test_sets(shared: Path, every: int) -> list[TestSet]:
    frames, targets = load_pets_s2l1(shared, every=every)
    return [TestSet(f"PETS09-S2L1 (every {every}th)", frames, targets), load_pennfudan_test(shared)]


def load_pennfudan_test(shared: Path) -> TestSet:
    from surveil.datasets import load_dataset

    index = load_dataset(shared / "PennFudanPed", fmt="yolo", split="test")
    frames = [read_bgr(s.image_path) for s in index.samples]
    # one class in the file (pedestrian): label 1, our 'person'
    targets = [Target(s.boxes, np.ones(len(s.labels), np.int64)) for s in index.samples]
    return TestSet("Penn-Fudan test", frames, targets)


# ----------------------------------------------------------------------- detectors


def yolo_fastest(shared: Path, size: int) -> Detector:
    """Yolo-Fastest-1.1-xl through OpenCV's Darknet reader, person class only.

    The cfg has no letter_box: darknet resizes plainly to size x size, RGB, 0-1. OpenCV's
    yolo layer zeroes class scores below the layer's ``thresh`` (0.2 unless the cfg says
    otherwise), so the cfg is read with ``thresh`` lowered to see the low-score detections.
    """
    if not hasattr(cv2.dnn, "readNetFromDarknet"):
        raise SystemExit(
            f"OpenCV {cv2.__version__} has no Darknet reader (5.x dropped it); install 'opencv-python-headless<5' "
            "(and 'opencv-python<5' where another package pulls it in, as the `bench` extra does)"
        )
    folder = shared / YOLO_DIR
    cfg = (folder / YOLO_CFG).read_text().replace("[yolo]", f"[yolo]\nthresh={MIN_SCORE / 2}")
    weights = np.fromfile(folder / YOLO_WEIGHTS, dtype=np.uint8)
    # OpenCV 5's stubs have no Darknet reader, 4's do: the ignore is used under one and not the other
    net = cv2.dnn.readNetFromDarknet(  # type: ignore[attr-defined, unused-ignore]
        np.frombuffer(cfg.encode(), np.uint8), weights
    )
    outputs = net.getUnconnectedOutLayersNames()

    def detect(frame: np.ndarray) -> Prediction:
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (size, size), swapRB=True, crop=False)
        net.setInput(blob)
        rows = np.concatenate(net.forward(outputs))
        return decode_yolo(rows, frame.shape[1], frame.shape[0])

    return detect


def decode_yolo(rows: np.ndarray, width: int, height: int) -> Prediction:
    """Rows of (cx, cy, w, h, objectness, class scores...) relative to the input -> person boxes."""
    scores = rows[:, 5 + COCO_PERSON]
    rows, scores = rows[scores >= MIN_SCORE], scores[scores >= MIN_SCORE]
    xywh = np.c_[rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 2], rows[:, 3]]
    xywh *= np.array([width, height, width, height], np.float32)
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), MIN_SCORE, YOLO_NMS_IOU), np.int64).reshape(-1)
    boxes = np.c_[xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]]
    return Prediction(boxes, scores[keep], np.ones(len(keep), np.int64))


def torch_detector(weights: Path, min_size: int) -> Detector:
    """Our checkpoint at input size ``min_size`` (shorter side), its person class as label 1."""
    from surveil.detection.checkpoints import load_checkpoint_model

    model, payload = load_checkpoint_model(weights)
    set_input_size(model, min_size)
    heads: Any = model.roi_heads
    heads.score_thresh = min(float(heads.score_thresh), MIN_SCORE)
    mapping = align_labels(payload["labels"], list(CLASS_NAMES))
    if not mapping:
        raise SystemExit(f"{weights} has no person/pedestrian class: labels {payload['labels']}")

    def detect(frame: np.ndarray) -> Prediction:
        return remap_prediction(predict(model, [bgr_to_tensor(frame)])[0], mapping)

    return detect


# ---------------------------------------------------------------------------- bench


def run(detect: Detector, test: TestSet) -> tuple[list[Prediction], float]:
    """Predictions for every frame and the median ms/frame (after one warm-up call)."""
    detect(test.frames[0])
    predictions, times = [], []
    for frame in test.frames:
        started = time.perf_counter()
        predictions.append(detect(frame))
        times.append(time.perf_counter() - started)
    return predictions, 1000 * statistics.median(times)


def score(model: str, size: str, detect: Detector, test: TestSet) -> Row:
    predictions, ms = run(detect, test)
    person = evaluate(predictions, test.targets, list(CLASS_NAMES)).classes[0]
    row = Row(model, size, test.name, person.ap50 or 0.0, person.best_f1, person.best_threshold, ms)
    log.info("%s", row)
    return row


def markdown(rows: list[Row]) -> str:
    lines = ["| model | input size | dataset | AP50 | best F1 (at score) | ms/frame |", "|---|---|---|---|---|---|"]
    for r in rows:
        thr = "-" if r.best_threshold is None else f"{r.best_threshold:.2f}"
        lines.append(
            f"| {r.model} | {r.input_size} | {r.dataset} | {r.ap50:.3f} | {r.best_f1:.3f} ({thr}) | {r.ms_median:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None, help="our checkpoint; without it only Yolo-Fastest runs")
    p.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    p.add_argument("--yolo-sizes", type=int, nargs="+", default=[320, 416, 640])
    p.add_argument(
        "--min-sizes", type=int, nargs="+", default=[360, 544, 720], help="our model's input sizes (shorter side)"
    )
    p.add_argument("--every", type=int, default=5, help="PETS: every Nth frame")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    tests = load_test_sets(args.shared_data, args.every)
    rows: list[Row] = []
    for size in args.yolo_sizes:
        detect = yolo_fastest(args.shared_data, size)
        rows += [score("Yolo-Fastest-1.1-xl (COCO)", f"{size}x{size}", detect, t) for t in tests]
    if args.weights is not None:
        for min_size in args.min_sizes:
            detect = torch_detector(args.weights, min_size)
            rows += [score(args.weights.name, f"shorter side {min_size}", detect, t) for t in tests]
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
