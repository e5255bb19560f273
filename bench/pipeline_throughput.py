"""Pipeline throughput against the bare model, measured in one run on the same frames.

    .venv/bin/python bench/pipeline_throughput.py --cameras 2 --seconds 20 [--weights models/x.pt]

1. bare model: `TorchDetector.detect` on frames decoded in advance, batch by batch, no threads;
2. pipeline: the real daemon pipeline (capture threads decoding the same video, frame board,
   detect thread, tracker, rules, JSON-lines sink) with N file cameras, for a fixed time. By
   default each camera plays at the video's own rate (10 fps), like a real camera; with
   --as-fast-as-possible every capture thread decodes flat out, which on a small CPU steals
   cores from the model (that figure measures decode contention, not the pipeline).

Prints frames/s of each and their ratio (pipeline ÷ bare model): how much of the model's speed
survives decoding, batching, tracking and the thread hand-offs. Also the drop share (frames
decoded but never detected: with cameras faster than the model, newest-frame-wins drops the rest).
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import torch

from surveil.config import Config, DetectorConfig
from surveil.detection.checkpoints import build_model, save_checkpoint
from surveil.detection.torch_detector import TorchDetector
from surveil.service.metrics import Metrics
from surveil.service.pipeline import Pipeline
from surveil.tools.bench import read_frames

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / "configs/media/pets2009-s2l1.mp4"  # the shipped demo clip


def random_checkpoint(directory: Path) -> str:
    torch.manual_seed(0)
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2)
    return str(
        save_checkpoint(
            directory / "random.pt", model, "fasterrcnn_mobilenet_v3_large_320_fpn", ["__background__", "person"]
        )
    )


def bare_model_fps(detector: TorchDetector, frames: list, batch: int, seconds: float) -> float:
    detector.detect(frames[:batch])  # warm-up
    done, started, index = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = [frames[(index + k) % len(frames)] for k in range(batch)]
        detector.detect(chunk)
        index += batch
        done += batch
    return done / (time.perf_counter() - started)


def pipeline_fps(config: Config, detector: TorchDetector, seconds: float) -> tuple[float, float]:
    metrics = Metrics()
    pipeline = Pipeline(config, metrics, detector=detector)
    pipeline.start()
    time.sleep(2.0)  # let cameras open and the first batch pass
    processed0 = _total(metrics, "surveil_frames_processed_total")
    started = time.perf_counter()
    time.sleep(seconds)
    processed = _total(metrics, "surveil_frames_processed_total") - processed0
    elapsed = time.perf_counter() - started
    pipeline.stop()
    captured = _total(metrics, "surveil_frames_captured_total")
    dropped = _total(metrics, "surveil_frames_dropped_total")
    return processed / elapsed, dropped / max(captured, 1)


def _total(metrics: Metrics, name: str) -> float:
    return sum(s.value for family in metrics.registry.collect() for s in family.samples if s.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument(
        "--weights", help="checkpoint (default: random-weight mobilenet_v3_large_320_fpn: same cost, no download)"
    )
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--as-fast-as-possible", action="store_true", help="cameras decode flat out instead of at the video's rate"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or random_checkpoint(Path(tmp))
        detector_config = DetectorConfig(
            weights=weights, device=args.device, batch_size=args.batch_size, threads=args.threads, max_wait_ms=20
        )
        detector = TorchDetector(detector_config)
        frames = read_frames(str(args.video), 64)  # raises BenchError naming the file when it has no frames
        bare = bare_model_fps(detector, frames, args.batch_size, args.seconds)
        config = Config.model_validate(
            {
                "cameras": [
                    {"name": f"cam{i}", "url": str(args.video), "realtime": not args.as_fast_as_possible, "loop": True}
                    for i in range(args.cameras)
                ],
                "detector": detector_config.model_dump(),
                "mqtt": {"enabled": False},
                "alerts": {"jsonl_path": str(Path(tmp) / "alerts.jsonl")},
                "metrics": {"enabled": False},
            }
        )
        through, drop_share = pipeline_fps(config, detector, args.seconds)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={torch.get_num_threads()} torch={torch.__version__} device={detector.device}"
    )
    pace = "as fast as possible" if args.as_fast_as_possible else "at the video's rate"
    print(
        f"weights: {args.weights or 'random mobilenet_v3_large_320_fpn'}; video {args.video.name}; cameras={args.cameras} ({pace}) batch={args.batch_size}"
    )
    print(f"bare model:  {bare:8.2f} frames/s")
    print(f"pipeline:    {through:8.2f} frames/s")
    print(f"ratio pipeline/bare: {through / bare:.3f}")
    print(f"share of decoded frames dropped (newest-frame-wins): {drop_share:.3f}")


if __name__ == "__main__":
    main()
