"""Every CPU inference backend of the shipped detector side by side, in one run, on the same PETS frames.

    .venv/bin/python -m bench.detector_backends [--every 5] [--threads 2] [--min-size 800]

Rows: torch eager (the model as trained: today's baseline), torch with BatchNorm folded and
channels_last (the `torch` backend), ONNX Runtime, OpenVINO fp32 and OpenVINO bf16. For each:
median ms per frame (batch 1; every frame goes through every runtime in turn, so load changes
on a shared machine hit all alike), speed-up over eager, AP50 against the PETS09-S2L1 ground truth
(frames 1, 1+every, ...; needs ../shared/data, else the shipped clip's frames without AP), and the
share of confident detections that agree with eager (IoU >= 0.9, score within 0.02; and at the
looser IoU >= 0.7 / 0.1 the bf16 test uses).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from surveil.config import DetectorConfig
from surveil.detection.factory import OnnxDetector, detection_agreement
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation.metrics import Prediction, evaluate
from surveil.evaluation.surveillance import CLASS_NAMES, load_pets_s2l1
from surveil.types import Detections

REPO = Path(__file__).resolve().parents[1]


def frames_and_targets(shared: Path, every: int):
    try:
        return load_pets_s2l1(shared, every=every)
    except FileNotFoundError as exc:
        print(f"({exc}: timing the shipped clip without AP50)")
        from surveil.tools.bench import read_frames

        frames = read_frames(str(REPO / "configs/media/pets2009-s2l1.mp4"), 800)
        return frames[::every], None


def variants(config: DetectorConfig, cache: Path):
    yield "torch eager (as trained)", lambda: TorchDetector(config, optimize=False)
    yield "torch, BN folded + channels_last", lambda: TorchDetector(config)
    for backend, precision in (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")):
        if importlib.util.find_spec(backend) is None:
            print(f"({backend} not installed: skipped)")
            continue
        cfg = config.model_copy(update={"backend": backend, "openvino_precision": precision})
        yield f"{backend} {precision}", lambda cfg=cfg, backend=backend: OnnxDetector(cfg, backend, cache)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"))
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    frames, targets = frames_and_targets(args.shared, args.every)
    config = DetectorConfig(
        weights=args.weights, device="cpu", min_size=args.min_size, batch_size=1, threads=args.threads
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{args.weights}, input {args.min_size}, {args.threads} threads, {len(frames)} frames (every {args.every})")
    print("| runtime | ms/frame (median) | × eager | AP50 | agree with eager (0.9 / 0.02) | (0.7 / 0.1) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        detectors = [(name, make()) for name, make in variants(config, Path(cache))]
        for _, detector in detectors:
            detector.detect(frames[:1])  # warm-up
        # interleaved: every frame through every runtime in turn, so a shared machine's load changes
        # slow all of them alike and the ratios stay fair
        times: dict[str, list[float]] = {name: [] for name, _ in detectors}
        dets: dict[str, list[Detections]] = {name: [] for name, _ in detectors}
        for frame in frames:
            for name, detector in detectors:
                started = time.perf_counter()
                dets[name].append(detector.detect([frame])[0])
                times[name].append(time.perf_counter() - started)
    reference_name = detectors[0][0]
    eager_ms = 1000 * float(np.median(times[reference_name]))
    for name, detector in detectors:
        ms = 1000 * float(np.median(times[name]))
        thresholds = detector.operating_thresholds
        ap = "-"
        if targets is not None:
            predictions = [Prediction(d.xyxy, d.confidence, d.class_id) for d in dets[name]]
            ap = f"{evaluate(predictions, targets, list(CLASS_NAMES)).classes[0].ap50:.3f}"
        exact = detection_agreement(dets[reference_name], dets[name], thresholds, 0.9, 0.02)
        loose = detection_agreement(dets[reference_name], dets[name], thresholds, 0.7, 0.1)
        print(
            f"| {name} | {ms:.0f} | {eager_ms / ms:.1f} | {ap} | {100 * exact[0] / max(exact[1], 1):.0f} % of {exact[1]} "
            f"| {100 * loose[0] / max(loose[1], 1):.0f} % |",
            flush=True,
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
