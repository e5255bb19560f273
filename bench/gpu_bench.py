"""GPU throughput: the bare model against the real pipeline, batch by batch, fp32 and fp16 (run by bench/gpu.sh).

    bench/gpu.sh [--per-image] [--dry-run]        # or: python -m bench.gpu_bench ...

The GPU front end of ``surveil bench``'s harness (:mod:`surveil.tools.bench`): the bare-model figure is its
:func:`~surveil.tools.bench.bare_model` and the pipeline figure its :func:`~surveil.tools.bench.pipeline_run`
(the daemon's pipeline with housekeeping once a second, processed frames counted over the measured window);
this script adds what a GPU run needs: synthetic frames, in-memory cameras, a CUDA synchronise around the bare
loop, the detect calls' batch sizes and times, and the table over architectures, precisions and batch sizes.

For ``fasterrcnn_resnet50_fpn_v2`` and ``fasterrcnn_mobilenet_v3_large_fpn`` with random weights (no
download) on 1280x720 frames, at batch 1, 4, 8 and 16:

- bare: ``TorchDetector.detect`` on the same decoded frames, batch after batch (images/s);
- pipeline: :class:`surveil.service.pipeline.Pipeline` with as many cameras as the batch (in-memory cameras
  delivering the frames at ``--camera-fps`` each, by default 1.5x the bare rate shared out, more than the model takes), the frame board,
  the detect thread at that batch size, tracker and analysers (images/s processed);
- their ratio, and the peak GPU memory of the run.

Preprocessing is batched on the device (pinned staging buffer, one resize per batch: TorchDetector's
default); ``--per-image`` measures the path before it (the model's transform, image by image) for comparison.

Target (issue 10): pipeline / bare >= 0.9 at batch 8.

``--dry-run``: CPU, tiny frames and input, batches 1 and 2, one iteration: CI runs it so the script
cannot rot (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surveil.config import Config, DetectorConfig
from surveil.detection.checkpoints import build_model, save_checkpoint
from surveil.detection.torch_detector import TorchDetector
from surveil.tools.bench import bare_model, pipeline_run

ARCHITECTURES = ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")
TARGET = "pipeline/bare >= 0.9 at batch 8"


class MemoryCamera:
    """A cv2.VideoCapture stand-in: the same decoded frames, paced at ``fps`` (a camera, not a file)."""

    def __init__(self, frames: list[np.ndarray], fps: float):
        self._frames, self._period, self._index = frames, 1.0 / fps, 0
        self._next = time.monotonic()

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._period, time.monotonic() - self._period)
        self._index += 1
        return True, self._frames[self._index % len(self._frames)]

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        pass


def make_frames(height: int, width: int, count: int = 8) -> list[np.ndarray]:
    """Smooth random scenes (not noise: noise makes every proposal survive NMS and inflates the heads' cost)."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        small = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        frames.append(np.ascontiguousarray(np.kron(small, np.ones((16, 16, 1), np.uint8))[:height, :width]))
    return frames


def bare(
    detector: TorchDetector, frames: list[np.ndarray], batch: int, seconds: float, iterations: int | None
) -> float:
    """Images/s of ``detect`` on the same ``batch`` frames again and again (after one warm-up call: cudnn
    autotune, allocator), for ``seconds`` or ``iterations`` batches."""
    chunk = [frames[k % len(frames)] for k in range(batch)]
    fps, _ = bare_model(detector, chunk, batch, seconds, iterations=iterations, sync=lambda: _sync(detector))
    return fps


class TimedDetector:
    """The detector as the pipeline sees it, with every ``detect`` call's batch size, wall time and end noted."""

    def __init__(self, detector: TorchDetector):
        self._detector = detector
        self.calls: list[tuple[int, float, float]] = []  # (batch size, seconds, time.monotonic() at the end)

    def __getattr__(self, name: str):
        return getattr(self._detector, name)

    def detect(self, images):
        started = time.perf_counter()
        found = self._detector.detect(images)
        self.calls.append((len(images), time.perf_counter() - started, time.monotonic()))
        return found

    def summary(self, window: tuple[float, float]) -> str:
        """Mean batch, mean and longest ms per call, batch sizes seen, over the calls that ended in ``window``."""
        calls = [(size, seconds) for size, seconds, ended in self.calls if window[0] < ended <= window[1]] or [(0, 0.0)]
        sizes, seconds = zip(*calls)
        return (
            f"{np.mean(sizes):4.1f} | {1000 * np.mean(seconds):6.1f} | {1000 * max(seconds):7.1f} | "
            f"{len(set(sizes)):2d}"
        )


def pipeline(
    detector: Any,
    frames: list[np.ndarray],
    batch: int,
    seconds: float,
    warmup: float,
    camera_fps: float,
    detector_config: DetectorConfig | None = None,
) -> tuple[float, str]:
    """(images/s processed, the detect calls' summary) of the pipeline with ``batch`` in-memory cameras. The warm-up
    starts after the detect thread's third call: its first warms the detector up on that thread (a CUDA stall of
    about 1 s per batch size), which is start-up, not throughput."""
    config = Config.model_validate(
        {
            "cameras": [{"name": f"cam{i}", "url": f"rtsp://127.0.0.1/bench{i}"} for i in range(batch)],
            "detector": {**(detector_config or detector.config).model_dump(), "batch_size": batch, "max_wait_ms": 50},
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
        }
    )
    timed = TimedDetector(detector)
    result = pipeline_run(
        config,
        timed,
        batch,
        warmup,
        seconds,
        None,
        open_capture=lambda camera: MemoryCamera(frames, camera_fps),
        ready=lambda: len(timed.calls) >= 3,
    )
    return result.fps, timed.summary(result.window)


def worker_rows(
    config: DetectorConfig,
    frames: list[np.ndarray],
    bare_rates: dict[int, float],
    arch: str,
    precision: str,
    args,
    dry: bool,
) -> None:
    """The pipeline with its detector in a worker process (frames through shared memory), at batch 8 (dry: 2),
    against the in-process bare rate; GPU memory is the worker's, not measured here (nan)."""
    from surveil.service.detector_worker import WorkerDetector

    for batch in [b for b in ([2] if dry else [8]) if b in bare_rates]:
        lane = config.model_copy(update={"batch_size": batch})
        worker = WorkerDetector("worker-0", lane).start()
        try:
            b = bare_rates[batch]
            camera_fps = args.camera_fps or max(5.0, 1.5 * b / batch)
            p, calls = pipeline(
                worker, frames, batch, 1.0 if dry else args.seconds, 0.5 if dry else 2.0, camera_fps, lane
            )
        finally:
            worker.close()
        label = f"{precision}+worker"
        print(
            f"{arch:35s} | {label} | {batch:5d} | {b:10.1f} | {camera_fps:10.1f} | {p:14.1f} | {p / b:5.2f} | {float('nan'):11.0f} "
            f"| {calls}",
            flush=True,
        )


def _sync(detector: TorchDetector) -> None:
    if detector.device.type == "cuda":
        torch.cuda.synchronize(detector.device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, one iteration: checks the script runs")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per bare and per pipeline figure")
    parser.add_argument(
        "--camera-fps",
        type=float,
        default=None,
        help="frames per second each in-memory camera offers (default: 1.5x the bare rate over the batch, "
        "so supply never limits the pipeline and idle cameras do not crowd the GIL)",
    )
    parser.add_argument(
        "--per-image", action="store_true", help="preprocess image by image in the model's transform (the old path)"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="model and input in channels_last memory (the CPU's layout)"
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="turn off the detector's warm-up (on CUDA, one pass at every batch size the first time a thread sees a frame size)",
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="also measure the pipeline with the detector in a worker process (detector.isolation: process) at batch 8",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dry = args.dry_run
    device = "cpu" if dry else ("cuda" if torch.cuda.is_available() else None)
    if device is None:
        print("no CUDA device: run with --dry-run (CPU, tiny sizes) or on a GPU machine")
        return 2
    height, width = (72, 128) if dry else (720, 1280)
    batches = args.batches or ([1, 2] if dry else [1, 4, 8, 16])
    precisions = ["fp32"] if dry else ["fp32", "fp16"]
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: figures mean nothing)"
    preprocessing = "per image (model transform)" if args.per_image else "batched on device"
    print(
        f"device: {name}; torch {torch.__version__}; frames {width}x{height}; preprocessing: {preprocessing}; target: {TARGET}"
    )
    frames = make_frames(height, width)
    layout = (
        "channels_last"
        if args.channels_last
        else "the detector's default (input channels_last; model NCHW on CUDA, channels_last on CPU)"
    )
    print(f"warm-up at every batch size: {not args.no_warm_up}; memory: {layout}")
    print(
        "architecture                        | prec | batch | bare img/s | camera fps | pipeline img/s | ratio | peak GPU MB "
        "| pipeline: mean batch | ms/call | longest ms | sizes"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.architectures:
            torch.manual_seed(0)
            weights = save_checkpoint(
                Path(tmp) / f"{arch}.pt",
                build_model(arch, num_classes=91),
                arch,
                ["__background__", *[f"class{i}" for i in range(1, 91)]],
            )
            for precision in precisions:
                sizes = {"min_size": 64, "max_size": 128} if dry else {}
                config = DetectorConfig.model_validate(
                    {
                        "weights": str(weights),
                        "device": device,
                        "half": precision == "fp16",
                        "batch_size": max(batches),
                        **sizes,
                    }
                )
                detector = TorchDetector(
                    config, batched=not args.per_image, channels_last=True if args.channels_last else None
                )
                detector.warm_up_on_cuda = not args.no_warm_up
                bare_rates = {}
                for batch in batches:
                    if device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    b = bare_rates[batch] = bare(detector, frames, batch, args.seconds, 1 if dry else None)
                    camera_fps = args.camera_fps or max(5.0, 1.5 * b / batch)
                    p, calls = pipeline(
                        detector, frames, batch, 1.0 if dry else args.seconds, 0.5 if dry else 2.0, camera_fps
                    )
                    memory = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
                    print(
                        f"{arch:35s} | {precision} | {batch:5d} | {b:10.1f} | {camera_fps:10.1f} | {p:14.1f} | {p / b:5.2f} | {memory:11.0f} "
                        f"| {calls}",
                        flush=True,
                    )
                if args.worker:
                    worker_rows(config, frames, bare_rates, arch, precision, args, dry)
                del detector
                if device == "cuda":
                    torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
