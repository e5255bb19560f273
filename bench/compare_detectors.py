"""Today's baseline, the demo's default detector and Yolo-Fastest side by side, in one run.

    .venv/bin/python -m bench.compare_detectors [--config configs/demo.yaml] [--closeup-size 720] [--threads 2] [--isa avx2]

Successor of bench/compare_yolo_fastest.py for issue 10's first target. Rows:

- baseline: the shipped checkpoint under torch eager, as trained, at the demo's input (800) — what
  the daemon ran before the inference backends;
- default: the detector the demo config builds on this machine (``detector.backend: auto`` and
  ``openvino_precision: auto``: OpenVINO, bf16 on CPUs with native bf16), same checkpoint and input;
- Yolo-Fastest-1.1-xl (COCO, OpenCV's Darknet reader) at 416 and 640.
- the previous default model (``--previous``, ``models/pedestrian-mnv2.pt`` at 800, on the same runtime;
  Penn-Fudan at its own card's close-up input, ``--previous-closeup``), so old and new stand in one run.

PETS09-S2L1: all 795 frames, scored as five every-5th-frame phases (frames 1, 6, 11, ...; 2, 7, ...);
AP50 is given as the mean over the phases with its range. Every frame goes through every detector
in turn, so load on a shared machine slows all of them alike; speed is the median ms per frame
end to end (pre-processing, inference, post-processing) and its ratio to the baseline.
Penn-Fudan test (34 close-up street photos): our two rows at each ``--closeup-sizes`` (the inputs the
model card recommends for close-up cameras: 640-720), Yolo-Fastest at its own sizes.
Every detector keeps detections down to score 0.01 so AP sees the whole precision-recall curve.
The header gives the CPU's features, the kernels OpenVINO's convolutions run (``--isa avx2`` limits
OpenVINO and PyTorch to AVX2 to measure a typical camera host on a newer CPU; the command re-executes
itself with the limit set, see surveil.detection.isa) and the checkpoint's GFLOPs per frame at the PETS
input (surveil.detection.cost), also a column of the table beside ms/frame.
The last line is machine-readable:
    detectors baseline_ap50=... default_ap50=... delta=... speedup=... pennfudan_default=...
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.compare_yolo_fastest import MIN_SCORE, load_pennfudan_test, yolo_fastest
from surveil.config import DetectorConfig, load_config
from surveil.detection import isa
from surveil.detection.cost import detector_cost
from surveil.detection.factory import create_detector, resolve_backend
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation import Prediction, evaluate
from surveil.evaluation.surveillance import CLASS_NAMES, load_pets_s2l1

REPO = Path(__file__).resolve().parents[1]
PHASES = 5
Detect = Callable[[np.ndarray], Prediction]


def ours(detector) -> Detect:
    def detect(frame: np.ndarray) -> Prediction:
        found = detector.detect([frame])[0]
        return Prediction(found.xyxy, found.confidence, found.class_id)

    return detect


def detector_config(config_path: Path, min_size: int | None, threads: int) -> DetectorConfig:
    base = load_config(config_path).detector
    update: dict[str, object] = {
        "low_score_floor": MIN_SCORE,
        "score_threshold": MIN_SCORE,
        "threads": threads,
        "batch_size": 1,
    }
    if min_size is not None:
        update["min_size"] = min_size
    if not isa.bf16_allowed():  # an ISA limit below AVX512_CORE_BF16: fp32, as on such a host
        update["openvino_precision"] = "fp32"
    return base.model_copy(update=update)


def our_detectors(config: DetectorConfig, cache: Path, built: list | None = None) -> dict[str, Detect]:
    """The baseline and the demo default; the default's detector object is appended to ``built`` when given."""
    default = create_detector(config, cache)
    if built is not None:
        built.append(default)
    runtime = resolve_backend(config) + (f" {default.precision}" if hasattr(default, "precision") else "")
    return {
        f"{Path(config.weights).name}, torch eager (baseline)": ours(TorchDetector(config, optimize=False)),
        f"{Path(config.weights).name}, {runtime} (demo default)": ours(default),
    }


def isa_report(config: DetectorConfig, default) -> str:
    """'ISA: requested X, OpenVINO convolutions ran ...' for the demo default's detector."""
    requested = isa.requested_isa()
    if resolve_backend(config) != "openvino":
        return isa.isa_line(requested, None, f"{resolve_backend(config)}: kernels not read (OpenVINO only)")
    compiled = getattr(default, "compiled_model", None)
    if compiled is not None:
        return isa.isa_line(requested, isa.openvino_kernels(compiled))
    return isa.isa_line(requested, isa.openvino_graph_kernels(default.onnx_path, default.precision))


def interleaved(
    detectors: dict[str, Detect], frames: list[np.ndarray]
) -> tuple[dict[str, list[Prediction]], dict[str, float]]:
    """Every frame through every detector in turn: predictions and median ms per frame."""
    for detect in detectors.values():
        detect(frames[0])  # warm-up
    predictions: dict[str, list[Prediction]] = {name: [] for name in detectors}
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for number, frame in enumerate(frames, 1):
        for name, detect in detectors.items():
            started = time.perf_counter()
            predictions[name].append(detect(frame))
            times[name].append(time.perf_counter() - started)
        if number % 100 == 0:
            print(f"  {number}/{len(frames)} frames", file=sys.stderr, flush=True)
    return predictions, {name: 1000 * statistics.median(t) for name, t in times.items()}


def ap50(predictions: list[Prediction], targets) -> float:
    return float(evaluate(predictions, targets, list(CLASS_NAMES)).classes[0].ap50 or 0.0)


def phase_ap50(predictions: list[Prediction], targets) -> list[float]:
    return [ap50(predictions[p::PHASES], targets[p::PHASES]) for p in range(PHASES)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs/demo.yaml")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--closeup-sizes",
        type=int,
        nargs="+",
        default=[640, 720],
        help="our inputs for Penn-Fudan (model card: 640-720)",
    )
    parser.add_argument("--yolo-sizes", type=int, nargs="*", default=[416, 640])
    parser.add_argument(
        "--previous",
        type=Path,
        default=REPO / "models/pedestrian-mnv2.pt",
        help="also this checkpoint (the previous default model), with the config's runtime; none to leave it out",
    )
    parser.add_argument("--previous-size", type=int, default=800, help="its PETS input (shorter side)")
    parser.add_argument("--previous-closeup", type=int, default=640, help="its Penn-Fudan input (its model card's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="only the first N PETS frames (a quick smoke run)")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache" / "models", help="the ONNX export cache")
    parser.add_argument(
        "--isa",
        choices=isa.ISA_CHOICES,
        default="native",
        help="limit OpenVINO and PyTorch to this instruction set (e.g. avx2); re-executes with the variables set",
    )
    args = parser.parse_args()
    isa.apply_isa_limit(args.isa)  # torch is imported already: this re-executes the command with the limit set
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    frames, targets = load_pets_s2l1(args.shared_data, every=1)
    frames, targets = frames[: args.frames], targets[: args.frames]
    pennfudan = load_pennfudan_test(args.shared_data)
    config = detector_config(args.config, None, args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__}, {args.threads} threads"
    )
    print(f"PETS09-S2L1: {len(frames)} frames in {PHASES} phases; Penn-Fudan test: {len(pennfudan.frames)} images")
    flags = isa.cpu_flags()
    print(f"CPU features: {isa.flags_summary(flags)} (highest ISA {isa.highest_isa(flags)})")
    built: list = []
    detectors = our_detectors(config, args.cache, built)
    print(isa_report(config, built[0]))
    cost = detector_cost(config, frames[0])
    gflops = "-" if isinstance(cost, str) else f"{cost.gflops:.1f}"
    print(
        cost
        if isinstance(cost, str)
        else f"compute: {cost.describe()} (torch FlopCounterMode, eager, first PETS frame)"
    )
    previous: dict[str, tuple[int, str, float]] = {}  # row name -> (PETS input, GFLOPs, Penn-Fudan AP50)
    if str(args.previous) != "none":
        previous_config = detector_config(args.config, args.previous_size, args.threads).model_copy(
            update={"weights": str(args.previous)}
        )
        found = create_detector(previous_config, args.cache)
        runtime = resolve_backend(previous_config) + (f" {found.precision}" if hasattr(found, "precision") else "")
        name = f"{args.previous.name}, {runtime} (previous default)"
        detectors[name] = ours(found)
        previous_cost = detector_cost(previous_config, frames[0])
        closeup = create_detector(previous_config.model_copy(update={"min_size": args.previous_closeup}), args.cache)
        closeup_predictions = interleaved({name: ours(closeup)}, pennfudan.frames)[0][name]
        previous[name] = (
            args.previous_size,
            "-" if isinstance(previous_cost, str) else f"{previous_cost.gflops:.1f}",
            ap50(closeup_predictions, pennfudan.targets),
        )
    for size in args.yolo_sizes:
        detectors[f"Yolo-Fastest-1.1-xl (COCO) {size}x{size}"] = yolo_fastest(args.shared_data, size)
    pets, ms = interleaved(detectors, frames)
    yolo = {name: detect for name, detect in detectors.items() if name.startswith("Yolo")}
    penn = {
        size: interleaved(
            {**our_detectors(detector_config(args.config, size, args.threads), args.cache), **yolo}, pennfudan.frames
        )[0]
        for size in args.closeup_sizes
    }

    names = list(detectors)
    baseline, default = names[0], names[1]
    closeup_header = " | ".join(f"Penn-Fudan test AP50 at {size}" for size in args.closeup_sizes)
    print(
        f"\n| detector | PETS input | PETS09-S2L1 AP50, mean (range) of {PHASES} phases | GFLOPs/frame | ms/frame "
        f"| × baseline | {closeup_header} |"
    )
    print("|---|---|---|---|---|---|" + "---|" * len(args.closeup_sizes))
    summary = {}
    penn_rows = [name for name in names if name not in previous]  # the rows the Penn-Fudan runs hold, in order
    for name in names:
        per_phase = phase_ap50(pets[name], targets)
        if name in previous:
            prev_size, row_gflops, prev_close = previous[name]
            close = [prev_close] * len(args.closeup_sizes)
            size, note, flops = f"shorter side {prev_size}", f" (at {args.previous_closeup})", row_gflops
        else:
            row = penn_rows.index(name)
            close = [ap50(list(penn[size].values())[row], pennfudan.targets) for size in args.closeup_sizes]
            yolo_row = name.startswith("Yolo")
            size = "as named" if yolo_row else f"shorter side {config.min_size}"
            note, flops = (" (own input)", "-") if yolo_row else ("", gflops)
        summary[name] = (statistics.mean(per_phase), close)
        cells = " | ".join(f"{value:.3f}{note}" for value in close)
        print(
            f"| {name} | {size} | {summary[name][0]:.4f} ({min(per_phase):.3f}-{max(per_phase):.3f}) "
            f"| {flops} | {ms[name]:.0f} | {ms[baseline] / ms[name]:.1f} | {cells} |"
        )
    delta = summary[default][0] - summary[baseline][0]
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"detectors baseline_ap50={summary[baseline][0]:.4f} default_ap50={summary[default][0]:.4f} delta={delta:+.4f} "
        f"speedup={ms[baseline] / ms[default]:.1f} pennfudan_default="
        + ",".join(f"{v:.3f}@{size}" for v, size in zip(summary[default][1], args.closeup_sizes))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
