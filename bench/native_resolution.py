"""The native-resolution detector (issue 16) against today's shipped one: compute and accuracy.

    .venv/bin/python -m bench.native_resolution [--weights models/pedestrian-mnv2-s8.pt] [--threads 1]
        [--min-sizes 360] [--closeup-sizes 288 320 360] [--baseline-size 800]

- GFLOPs per 480x360 PETS09-S2L1 frame (``torch.utils.flop_counter.FlopCounterMode``, eager, the
  first frame), total and by part (backbone with its FPN, RPN, RoI heads), at each input;
- PETS09-S2L1 AP50, all 795 frames as five every-5th-frame phases (mean and range), scored exactly
  as :mod:`bench.compare_detectors` does (same loader, same ``surveil.evaluation.evaluate``, detections
  kept down to score 0.01), torch eager (as trained) and the torch backend (BN folded, channels_last);
- Penn-Fudan test AP50 at each ``--closeup-sizes`` (eager);
- median ms/frame end to end on PETS, frames interleaved across detectors.
``--baseline-size`` adds today's models/pedestrian-mnv2.pt (eager) at that input to every table
(slow: ~0.5-0.8 s/frame on 2 cores); 0 = leave it out.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
from pathlib import Path

import cv2
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.compare_detectors import PHASES, ap50, detector_config, interleaved, ours, phase_ap50
from bench.compare_yolo_fastest import load_pennfudan_test
from surveil.detection.checkpoints import load_checkpoint_model
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation.surveillance import load_pets_s2l1

REPO = Path(__file__).resolve().parents[1]


def gflops(weights: Path, min_size: int, frame_bgr) -> dict[str, float]:
    """GFLOPs of the eager model on one frame at shorter side ``min_size``, total and by part."""
    model = load_checkpoint_model(weights, min_size=int(min_size))[0].eval()
    image = torch.from_numpy(frame_bgr[:, :, ::-1].copy()).permute(2, 0, 1).float().div(255)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model([image])
    parts = {k: sum(v.values()) / 1e9 for k, v in counter.get_flop_counts().items()}
    top = type(model).__name__
    return {
        "total": counter.get_total_flops() / 1e9,
        "backbone": parts.get(f"{top}.backbone", 0.0),
        "fpn": parts.get(f"{top}.backbone.fpn", 0.0),
        "rpn": parts.get(f"{top}.rpn", 0.0),
        "roi_heads": parts.get(f"{top}.roi_heads", 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=REPO / "models/pedestrian-mnv2-s8.pt")
    parser.add_argument(
        "--config", type=Path, default=REPO / "configs/demo.yaml", help="detector settings to start from"
    )
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[360], help="PETS inputs (shorter side)")
    parser.add_argument("--closeup-sizes", type=int, nargs="*", default=[288, 320, 360])
    parser.add_argument("--baseline-size", type=int, default=0, help="also today's model at this input (0 = no)")
    parser.add_argument("--baseline", type=Path, default=REPO / "models/pedestrian-mnv2.pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=None, help="only the first N PETS frames (a smoke run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    frames, targets = load_pets_s2l1(args.shared_data, every=1)
    frames, targets = frames[: args.frames], targets[: args.frames]
    pennfudan = load_pennfudan_test(args.shared_data)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__}, {args.threads} threads"
    )
    runs = [(args.weights, size) for size in args.min_sizes]
    if args.baseline_size:
        runs.append((args.baseline, args.baseline_size))

    print("\n| model | input | GFLOPs | backbone (of which FPN) | RPN | RoI heads |\n|---|---|---|---|---|---|")
    for weights, size in runs:
        f = gflops(weights, size, frames[0])
        print(
            f"| {weights.name} | {size} | {f['total']:.2f} | {f['backbone']:.2f} ({f['fpn']:.2f}) "
            f"| {f['rpn']:.2f} | {f['roi_heads']:.2f} |"
        )

    detectors = {}
    for weights, size in runs:
        config = detector_config(args.config, size, args.threads).model_copy(
            update={"weights": str(weights), "backend": "torch"}
        )
        detectors[f"{weights.name} eager @{size}"] = ours(TorchDetector(config, optimize=False))
        if weights == args.weights:
            detectors[f"{weights.name} torch (BN folded, channels_last) @{size}"] = ours(TorchDetector(config))
    pets, ms = interleaved(detectors, frames)
    print(f"\nPETS09-S2L1: {len(frames)} frames in {PHASES} phases")
    print("| detector | AP50 mean | range | per phase | ms/frame (median) |\n|---|---|---|---|---|")
    for name in detectors:
        per_phase = phase_ap50(pets[name], targets)
        print(
            f"| {name} | {statistics.mean(per_phase):.4f} | {min(per_phase):.3f}-{max(per_phase):.3f} "
            f"| {' '.join(f'{v:.3f}' for v in per_phase)} | {ms[name]:.0f} |"
        )

    close_runs = [(args.weights, s) for s in args.closeup_sizes]
    if args.baseline_size and args.closeup_sizes:
        close_runs += [(args.baseline, 640)]  # the model card's close-up input for today's model
    if close_runs:
        print(f"\nPenn-Fudan test: {len(pennfudan.frames)} images (eager)")
        print("| model | input | AP50 |\n|---|---|---|")
    for weights, size in close_runs:
        config = detector_config(args.config, size, args.threads).model_copy(
            update={"weights": str(weights), "backend": "torch"}
        )
        preds, _ = interleaved({"m": ours(TorchDetector(config, optimize=False))}, pennfudan.frames)
        print(f"| {weights.name} | {size} | {ap50(preds['m'], pennfudan.targets):.3f} |")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
