"""The shipped detector on a CUDA device: PETS09-S2L1 AP50 and speed, old path against new, fp32 against fp16.

    python -m bench.gpu_accuracy [--shared-data ../shared/data] [--batch 8] [--min-size 800]
    python -m bench.gpu_accuracy --dry-run     # CPU, 10 frames, input 480: checks the script runs

The torch backend's GPU path (preprocessing batched on the device, fp16 autocast: the CUDA defaults)
has CPU tests only for fp32; this script checks it on a real GPU with the shipped checkpoint
(``models/pedestrian-mnv2.pt``). Rows, each over all 795 frames in batches of ``--batch``:

- per-image fp32: ``model(list_of_images)``, the model's own transform image by image (the old path);
- batched fp32: TorchDetector's default path with ``half: false``;
- batched fp16: the CUDA default (``half: true``).

AP50 is the mean (range) over the five every-5th-frame phases, as bench/compare_detectors.py gives
it on the CPU; images/s is the whole ``detect`` call (upload, preprocessing, model, results to host).
Agreement counts confident boxes matched both ways against per-image fp32, at the exact backends'
tolerance (IoU >= 0.9, score within 0.02) and at bf16's (IoU >= 0.7, score within 0.1).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from surveil.config import DetectorConfig
from surveil.detection.factory import detection_agreement
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation import Prediction, evaluate
from surveil.evaluation.surveillance import CLASS_NAMES, load_pets_s2l1

REPO = Path(__file__).resolve().parents[1]

PHASES = 5
MIN_SCORE = 0.01  # keep the whole precision-recall curve for AP
VARIANTS = {"per-image fp32": (False, False), "batched fp32": (True, False), "batched fp16": (True, True)}


def run(detector: TorchDetector, frames: list[np.ndarray], batch: int) -> tuple[list, float]:
    detector.detect(frames[:batch])  # warm-up: cudnn autotuning, allocator
    if detector.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    found = [d for start in range(0, len(frames), batch) for d in detector.detect(frames[start : start + batch])]
    return found, len(frames) / (time.perf_counter() - started)


def phase_ap50(found: list, targets: list) -> list[float]:
    predictions = [Prediction(d.xyxy, d.confidence, d.class_id) for d in found]
    return [
        float(evaluate(predictions[p::PHASES], targets[p::PHASES], list(CLASS_NAMES)).classes[0].ap50 or 0.0)
        for p in range(PHASES)
    ]


def shipped_model_parser(doc: str, dry_run_help: str) -> argparse.ArgumentParser:
    """The options bench/gpu_accuracy.py and bench/gpu_profile.py share."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=REPO / "models" / "pedestrian-mnv2.pt")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    return parser


def device_for(dry_run: bool) -> str | None:
    """``cpu`` for a dry run, ``cuda`` where there is one, else None (with the reason printed)."""
    logging.basicConfig(level=logging.WARNING)
    if not dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run (CPU) or on a GPU machine")
        return None
    return "cpu" if dry_run else "cuda"


def main() -> int:
    args = shipped_model_parser(__doc__, "CPU, the first 10 frames, input 480: checks the script runs").parse_args()
    device = device_for(args.dry_run)
    if device is None:
        return 2
    frames, targets = load_pets_s2l1(args.shared_data, every=1)
    if args.dry_run:
        frames, targets, args.min_size = frames[:10], targets[:10], 480
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: figures mean nothing)"
    print(
        f"device: {name}; torch {torch.__version__}; {args.weights.name} at shorter side {args.min_size}; "
        f"PETS09-S2L1 {len(frames)} frames, batch {args.batch}"
    )
    results = {}
    for label, (batched, half) in VARIANTS.items():
        config = DetectorConfig(
            weights=str(args.weights),
            device=device,
            half=half,
            min_size=args.min_size,
            score_threshold=MIN_SCORE,
            low_score_floor=MIN_SCORE,
            batch_size=args.batch,
        )
        detector = TorchDetector(config, batched=batched)
        results[label] = run(detector, frames, args.batch)
        thresholds = detector.operating_thresholds
    reference = results["per-image fp32"][0]
    print("| path | AP50, mean (range) of 5 phases | images/s | × per-image | agree at IoU 0.9/0.02 | at IoU 0.7/0.1 |")
    print("|---|---|---|---|---|---|")
    for label, (found, rate) in results.items():
        per_phase = phase_ap50(found, targets)
        exact = detection_agreement(reference, found, thresholds, 0.9, 0.02)
        loose = detection_agreement(reference, found, thresholds, 0.7, 0.1)
        print(
            f"| {label} | {statistics.mean(per_phase):.4f} ({min(per_phase):.3f}-{max(per_phase):.3f}) | {rate:.1f} | "
            f"{rate / results['per-image fp32'][1]:.2f} | {exact[0]}/{exact[1]} | {loose[0]}/{loose[1]} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
