"""`surveil bench`: the real pipeline on N file cameras beside the bare model and a naive loop, in one run.

    surveil bench [-c configs/demo.yaml] [--cameras 1 2 4 8] [--seconds 20] [--repeats 3] [--backend openvino]
                  [--motion] [--quiet-cameras K] [--as-fast-as-possible] [--isa avx2]

What runs, all in this process and on the same clip (the config's first camera; its zones and rules
are copied to every bench camera):

1. bare model: the detector alone on frames decoded in advance, at the config's batch size and
   input size — the ceiling the pipeline can reach;
2. naive loop: what a tutorial writes — read a frame, ``model([tensor])`` with the PyTorch model as
   trained (eager), apply the rules, one frame at a time, round-robin over the same clips;
3. the pipeline (:class:`surveil.service.pipeline.Pipeline`: capture threads at the video's own rate,
   frame board, detect thread, analysers, an MQTT sink to a real broker) for each camera count. With
   ``--as-fast-as-possible`` every capture thread decodes flat out instead (on a small CPU that
   measures decode contention: the capture threads take cores from the model).

This is the one harness for pipeline throughput against the bare model: :func:`bare_model` and
:func:`pipeline_run` are also what ``python -m bench.gpu_bench`` (bench/gpu.sh) measures with, on
in-memory cameras at each batch size on a CUDA device.

``--quiet-cameras K`` makes the last K cameras of each run (all of them when there are K or fewer)
play a *quiet clip* instead, written to the bench's temporary folder at start from the bench clip:
its median frame (no people) with light sensor noise, and three 5-s stretches of the clip pasted
back (:func:`quiet_clip`; bench/motion_gating.py scores the same clip offline). ``--motion`` turns
motion gating (``cameras[].motion``, with the config's settings: the defaults unless it sets them)
on for every bench camera; the report then gives the detector calls it skipped, read from the
pipeline's ``surveil_detector_skipped_total``. Skipped frames still count as processed (they go
through tracking and rules with no detections).

Latencies come from the pipeline's own Prometheus histograms (read from its registry, only what
was observed during the measured window; quantiles interpolated inside buckets as Prometheus'
``histogram_quantile`` does): wait (capture to detector), detect (one batch), analyse, end to end
(capture to the end of the rules) and alert (capture to the alert handed to the sinks); with MQTT,
alert to broker is the time from the sink taking an alert to a subscriber receiving it through the
broker (≈ the PUBACK time on loopback). Figures are benchmark output, never test assertions.

The header gives the CPU's features (avx2 / avx512f / avx512_vnni / avx512_bf16 / amx from /proc/cpuinfo)
and the detector's compute, GFLOPs per frame at the configured input (:mod:`surveil.detection.cost`; needs
torch), which the bare model's line turns into GFLOP/s reached. ``--isa avx2`` limits OpenVINO and
PyTorch to AVX2 (:mod:`surveil.detection.isa`: ``ONEDNN_MAX_CPU_ISA``, ``DNNL_MAX_CPU_ISA``,
``ATEN_CPU_CAPABILITY``, set before either initialises) to measure a typical camera host on a newer
CPU; the header then prints the kernels OpenVINO's convolutions really use (its execution graph), and
OpenVINO runs fp32 (below AVX512_CORE_BF16 there is no native bf16). ONNX Runtime cannot be limited.

The report ends with one sizing line: the largest measured camera count whose lowest per-camera
processed fps is at least 2 (or whose cameras were all kept up with), and that fps
(:func:`surveil.detection.capacity.sizing_line` defines it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from surveil.detection import isa as isa_limits
from surveil.detection.capacity import MeasuredRow, sizing_line
from surveil.video.clips import ClipOpenError, clip_fps, read_clip

if TYPE_CHECKING:
    from surveil.config import Config
    from surveil.detection.cost import FrameCost
    from surveil.detection.protocol import Detector

log = logging.getLogger(__name__)
K = TypeVar("K")

DEFAULT_CONFIG = "configs/demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help=f"config whose first camera, rules and detector are used (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--cameras",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        help="camera counts for the scaling table (default 1 2 4 8)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="measured seconds per pipeline run, and for the bare model and the naive loop",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds each pipeline runs before measuring")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measurement passes (bare model, naive loop, pipelines); with "
        "more than one, each figure is also given as its mean and range over the passes (default 1)",
    )
    parser.add_argument("--video", help="clip every bench camera plays (default: the config's first camera's file)")
    parser.add_argument("--weights", help="override detector.weights")
    parser.add_argument(
        "--backend", choices=["torch", "onnxruntime", "openvino", "auto"], help="override detector.backend"
    )
    parser.add_argument(
        "--openvino-precision", choices=["auto", "fp32", "bf16"], help="override detector.openvino_precision"
    )
    parser.add_argument("--min-size", type=int, help="override detector.min_size")
    parser.add_argument("--batch-size", type=int, help="override detector.batch_size")
    parser.add_argument("--threads", type=int, help="override detector.threads")
    parser.add_argument("--workers", type=int, help="override detector.workers (detectors sharing the cameras)")
    parser.add_argument(
        "--isolation",
        nargs="+",
        choices=["thread", "process"],
        help="run every camera count with each of these detector.isolation values, in one run "
        "(default: the config's); the bare model always runs in-process",
    )
    parser.add_argument(
        "--mqtt",
        metavar="HOST:PORT",
        help="broker for the MQTT sink (default: start a local mosquitto when it is on PATH, else no MQTT)",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    parser.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="pipeline cameras decode flat out instead of at the clip's own rate (measures decode contention)",
    )
    parser.add_argument(
        "--motion", action="store_true", help="turn motion gating (cameras[].motion) on for every bench camera"
    )
    parser.add_argument(
        "--quiet-cameras",
        type=int,
        default=0,
        metavar="K",
        help="the last K cameras of each run play a quiet clip made from the bench clip (default 0)",
    )
    parser.add_argument(
        "--isa",
        choices=isa_limits.ISA_CHOICES,
        default="native",
        help="limit OpenVINO and PyTorch (oneDNN, ATen) to this instruction set, e.g. avx2 to measure a typical "
        "camera host on a newer CPU; set before they initialise (default native: no limit)",
    )


def main(args: argparse.Namespace) -> int:
    # before torch or OpenVINO initialise (re-executes this command when one already has)
    isa_limits.apply_isa_limit(getattr(args, "isa", "native"))
    from surveil.config import ConfigError, load_config
    from surveil.service.pipeline import PipelineError

    logging.getLogger("surveil").setLevel(logging.WARNING)  # one INFO line per alert would bury the report
    try:
        base = load_config(args.config)
        bench = BenchSetup.from_args(base, args)
    except (ConfigError, PipelineError, BenchError) as exc:
        print(f"surveil: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="surveil-bench-") as tmp:
        try:
            return run_bench(bench, Path(tmp), args)
        except (PipelineError, BenchError, ClipOpenError) as exc:
            print(f"surveil: {exc}", file=sys.stderr)
            return 2


class BenchError(Exception):
    """The bench cannot run as asked (the message says why)."""


@dataclass
class BenchSetup:
    config: Config  # detector overrides applied
    video: str
    motion: bool = False  # turn cameras[].motion on for every bench camera
    quiet_cameras: int = 0  # the last ones of each run play the quiet clip
    cost: FrameCost | str = ""  # the detector's FLOPs per frame (or why not counted), set once the header printed
    detectors: dict[str, Any] = field(default_factory=dict)  # isolation -> the pipeline's detector(s), set at start

    @classmethod
    def from_args(cls, base: Config, args: argparse.Namespace) -> BenchSetup:
        cameras = list(base.enabled_cameras)
        if not cameras:
            raise BenchError(f"{args.config} has no enabled camera to copy")
        video = args.video or str(cameras[0].url)
        if not Path(video).is_file():
            raise BenchError(f"the bench plays a video file; {video!r} is not one (use --video)")
        if not 1 <= args.repeats <= 20:
            raise BenchError(f"--repeats must be 1-20, not {args.repeats}")
        if args.quiet_cameras < 0:
            raise BenchError(f"--quiet-cameras must be 0 or more, not {args.quiet_cameras}")
        if args.motion and cameras[0].motion.keepalive_s >= base.tracker.lost_after_s:  # what the config check says
            raise BenchError(
                f"--motion: motion.keepalive_s ({cameras[0].motion.keepalive_s:g}) must be below tracker.lost_after_s "
                f"({base.tracker.lost_after_s:g})"
            )
        overrides = {
            k: v
            for k, v in {
                "weights": args.weights,
                "backend": args.backend,
                "openvino_precision": args.openvino_precision,
                "min_size": args.min_size,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "workers": getattr(args, "workers", None),
            }.items()
            if v is not None
        }
        if not isa_limits.bf16_allowed():  # a limit below AVX512_CORE_BF16: no native bf16, as on such a host
            if args.openvino_precision == "bf16":
                raise BenchError(f"--openvino-precision bf16 needs native bf16; --isa {args.isa} has none")
            overrides["openvino_precision"] = "fp32"
        detector = base.detector.model_copy(update=overrides)
        return cls(base.model_copy(update={"detector": detector}), video, args.motion, args.quiet_cameras)

    def clips(self, cameras: int, quiet: str | None) -> list[tuple[str, str]]:
        """(name, clip) of each of ``cameras`` bench cameras: cam1... play the bench clip, the last
        ``quiet_cameras`` of them (quiet1...) the quiet clip at ``quiet``."""
        k = min(self.quiet_cameras, cameras) if quiet else 0
        busy = [(f"cam{i + 1}", self.video) for i in range(cameras - k)]
        return busy + [(f"quiet{i + 1}", quiet) for i in range(k)] if quiet else busy


# ---------------------------------------------------------------------------------------------- the quiet clip

QUIET_FRAMES = 800
QUIET_PASTES = [(60, 120, 50), (330, 420, 50), (620, 700, 50)]  # (clip position, first source frame (1-based), length)


def quiet_sources() -> list[int | None]:
    """The source frame number (1-based) of each quiet-clip frame, None for a still one."""
    source: list[int | None] = [None] * QUIET_FRAMES
    for start, first, length in QUIET_PASTES:
        source[start : start + length] = range(first, first + length)
    return source


def quiet_frames(
    median: np.ndarray, source: Sequence[int | None], frame_at: Callable[[int], np.ndarray], seed: int = 0
) -> Iterator[np.ndarray]:
    """The quiet clip's frames in order: ``frame_at(n)`` for a pasted frame, else ``median`` plus noise (sigma 2 grey levels)."""
    rng = np.random.default_rng(seed)
    for n in source:
        yield frame_at(n) if n else np.clip(median + rng.normal(0, 2, median.shape), 0, 255).astype(np.uint8)


def quiet_clip(real: Sequence[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[int | None], np.ndarray]:
    """(frames, source frame number of each clip frame or None for still, the median frame) of the
    quiet clip made from every frame of a video, ``real``: its median frame (of every 5th frame: no
    people where they keep moving) with sensor noise, and three 5-s stretches of ``real`` pasted back."""
    median = np.median(np.stack(real[::5]), axis=0).astype(np.uint8)
    source = quiet_sources()
    return list(quiet_frames(median, source, lambda n: real[n - 1], seed)), source, median


def write_quiet_clip(video: str, path: Path, seed: int = 0) -> Path:
    """The quiet clip of ``video`` (as :func:`quiet_clip`) written to ``path`` (MPEG-4 part 2) at ``video``'s frame rate;
    only the frames it needs are kept in memory."""
    import cv2

    source = quiet_sources()
    wanted = {n for n in source if n}
    fps = clip_fps(video)
    sampled: list[np.ndarray] = []
    pasted: dict[int, np.ndarray] = {}
    count = 0  # frames in the clip
    for read in read_clip(video):
        if read.index % 5 == 0:
            sampled.append(read.image)
        if read.index + 1 in wanted:
            pasted[read.index + 1] = read.image
        count = read.index + 1
    if len(pasted) < len(wanted):
        raise BenchError(f"the quiet clip pastes frames up to {max(wanted)} of the bench clip; {video} has {count}")
    median = np.median(np.stack(sampled), axis=0).astype(np.uint8)
    del sampled
    height, width = median.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise BenchError(f"cannot write the quiet clip to {path} (no MPEG-4 encoder in this OpenCV?)")
    try:
        for frame in quiet_frames(median, source, pasted.__getitem__, seed):
            writer.write(frame)
    finally:
        writer.release()
    return path


# ---------------------------------------------------------------------------------------------- measuring


def cpu_seconds() -> float:
    """CPU seconds of this process and of its live detector worker processes (``detector.isolation: process``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _worker_pids():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def _worker_pids() -> list[int]:
    import multiprocessing

    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of this process plus its live detector worker processes."""
    rss, peak = 0.0, 0.0
    for pid in ["self", *_worker_pids()]:
        values = {}
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        values[line.split(":")[0]] = int(line.split()[1]) / 1024
        except OSError:
            continue
        rss, peak = rss + values.get("VmRSS", 0.0), peak + values.get("VmHWM", 0.0)
    return rss, peak


def histogram_buckets(registry, name: str, labels: dict[str, str] | None = None) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of histogram ``name``, summed over the label sets matching ``labels``."""
    out: dict[float, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            if labels and any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            le = float(sample.labels["le"])
            out[le] = out.get(le, 0.0) + sample.value
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def counter_total(registry, name: str, label: str = "camera") -> dict[str, float]:
    """Counter ``name`` by its ``label`` label (or '' when it has none)."""
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out


LATENCIES = [  # label, histogram, labels
    ("wait (capture→detect)", "surveil_stage_seconds", {"stage": "wait"}),
    ("detect (one batch)", "surveil_inference_seconds", None),
    ("analyse", "surveil_stage_seconds", {"stage": "analyse"}),
    ("end to end (capture→rules done)", "surveil_frame_latency_seconds", None),
    ("alert (capture→sinks)", "surveil_alert_latency_seconds", None),
]


@dataclass
class Snapshot:
    at: float
    cpu: float
    processed: dict[str, float]
    dropped: dict[str, float]
    captured: dict[str, float]
    skipped: dict[str, float]
    histograms: dict[str, dict[float, float]]
    busy: dict[str, float] = field(default_factory=dict)  # seconds each detector spent on batches

    @classmethod
    def take(cls, registry) -> Snapshot:
        return cls(
            at=time.monotonic(),
            cpu=cpu_seconds(),
            processed=counter_total(registry, "surveil_frames_processed_total"),
            dropped=counter_total(registry, "surveil_frames_dropped_total"),
            captured=counter_total(registry, "surveil_frames_captured_total"),
            skipped=counter_total(registry, "surveil_detector_skipped_total"),
            histograms={label: histogram_buckets(registry, name, labels) for label, name, labels in LATENCIES},
            busy=counter_total(registry, "surveil_detector_busy_seconds_total", "worker"),
        )


@dataclass
class RunResult:
    cameras: int
    seconds: float
    fps_per_camera: dict[str, float]
    dropped: float
    captured: float
    skipped: dict[str, float] | None  # detector calls skipped per gated camera; None: no camera gates
    cpu_percent: float
    rss_mb: float
    peak_rss_mb: float
    latencies: dict[str, tuple[float | None, float | None]]
    delivery: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # time.monotonic() at the start and end of the measured window
    utilisation: dict[str, float] = field(default_factory=dict)  # per detector: share of the window spent on batches
    isolation: str = "thread"

    @property
    def fps(self) -> float:
        return sum(self.fps_per_camera.values())

    @property
    def processed(self) -> float:
        return self.fps * self.seconds


def diff_run(
    cameras: int, before: Snapshot, after: Snapshot, delivery: list[float], gated: Sequence[str] = ()
) -> RunResult:
    """The window between two snapshots; ``gated``: the cameras with motion gating on."""
    elapsed = after.at - before.at

    def delta(a: dict[K, float], b: dict[K, float]) -> dict[K, float]:
        return {k: b.get(k, 0.0) - a.get(k, 0.0) for k in b}

    latencies: dict[str, tuple[float | None, float | None]] = {}
    for label, _, _ in LATENCIES:
        window = delta(before.histograms[label], after.histograms[label])
        latencies[label] = (quantile(window, 0.5), quantile(window, 0.99))
    rss, peak = memory_mb()
    return RunResult(
        cameras=cameras,
        seconds=elapsed,
        fps_per_camera={k: v / elapsed for k, v in sorted(delta(before.processed, after.processed).items())},
        dropped=sum(delta(before.dropped, after.dropped).values()),
        captured=sum(delta(before.captured, after.captured).values()),
        skipped={k: v for k, v in sorted(delta(before.skipped, after.skipped).items()) if k in gated}
        if gated
        else None,
        cpu_percent=100.0 * (after.cpu - before.cpu) / elapsed,
        rss_mb=rss,
        peak_rss_mb=peak,
        latencies=latencies,
        delivery=delivery,
        window=(before.at, after.at),
        utilisation={k: v / elapsed for k, v in sorted(delta(before.busy, after.busy).items())},
    )


# ---------------------------------------------------------------------------------------------- MQTT


class LocalBroker:
    """A mosquitto on a free loopback port, in a temporary folder; ``None`` host when none can run."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> bool:
        executable = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
        )
        if executable is None:
            return False
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = self.workdir / "mosquitto.conf"
        user = f"user {_user_name()}\n"  # as root, mosquitto would switch to user `mosquitto`
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}persistence false\nlog_dest none\n"
        )
        self.proc = subprocess.Popen(
            [executable, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class DeliveryWatch:
    """Subscribes to the alert topics; records receive time minus the alert's ``published_ts`` (sink hand-off)."""

    def __init__(self, host: str, port: int, prefix: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.delays: list[float] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"surveil-bench-{os.getpid()}")
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/+/alerts/#", qos=1)
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        received = time.time()
        try:
            sent = float(json.loads(message.payload)["published_ts"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.delays.append(max(0.0, received - sent))

    def take(self) -> list[float]:
        with self._lock:
            out, self.delays = self.delays, []
        return out

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


# ---------------------------------------------------------------------------------------------- the three loads


def read_frames(video: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``video`` (BenchError when it has none)."""
    frames = [frame.image for frame in read_clip(video, limit=count)]
    if not frames:
        raise BenchError(f"cannot read frames from {video}")
    return frames


READY_LIMIT_S = 120.0  # the longest pipeline_run waits for ``ready``


def bare_model(
    detector: Detector,
    frames: Sequence[np.ndarray],
    batch: int,
    seconds: float,
    *,
    iterations: int | None = None,
    sync: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """(frames/s, median ms per batch) of ``detector.detect`` alone on decoded frames, ``batch`` at a time taken
    from ``frames`` in turn: for ``seconds`` (at least one batch), or exactly ``iterations`` batches when given.
    ``sync`` waits for the device (a CUDA synchronise) after the warm-up and before the clock stops."""
    detector.detect(list(frames[:batch]))  # warm-up (first-call allocations, OpenVINO shape compile)
    sync()
    times: list[float] = []
    done, index = 0, 0

    def more() -> bool:
        if iterations is not None:
            return len(times) < iterations
        return time.perf_counter() - started < seconds or not times

    started = time.perf_counter()
    while more():
        chunk = [frames[(index + k) % len(frames)] for k in range(batch)]
        t0 = time.perf_counter()
        detector.detect(chunk)
        times.append(time.perf_counter() - t0)
        index += batch
        done += batch
    sync()
    return done / (time.perf_counter() - started), 1000.0 * float(np.median(times))


def looping_clip(video: str) -> Generator[np.ndarray, None, None]:
    """The frames of ``video`` from the first again and again, as a loop that rewinds at the end of the file
    (BenchError when it has none)."""
    while True:
        empty = True
        for frame in read_clip(video):
            empty = False
            yield frame.image
        if empty:
            raise BenchError(f"cannot read frames from {video}")


def naive_loop(config: Config, videos: Sequence[str], seconds: float) -> float:
    """A tutorial's loop: read, eager ``model([tensor])``, rules; one frame at a time, round-robin over ``videos``
    (each rewound at its end)."""
    import torch

    from surveil.analysis.analyzer import build_analyzer
    from surveil.detection.torch_detector import TorchDetector
    from surveil.evaluation.predict import bgr_to_tensor
    from surveil.types import Frame

    model_holder = TorchDetector(config.detector, optimize=False)  # the model as trained, no folding
    model = model_holder.model
    template = config.enabled_cameras[0]
    analyzers = [
        build_analyzer(
            template.model_copy(update={"name": f"naive-{i}"}),
            config.tracker,
            model_holder.class_names,
            operating_thresholds=model_holder.operating_thresholds,
        )
        for i in range(len(videos))
    ]
    clips = [looping_clip(video) for video in videos]
    done, seq = 0, 0
    started = time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - started < seconds or done == 0:
            camera = seq % len(videos)
            image = next(clips[camera])
            output = model([bgr_to_tensor(image)])[0]
            dets = model_holder.filter(
                output["boxes"].float().cpu().numpy(),
                output["scores"].float().cpu().numpy(),
                output["labels"].cpu().numpy(),
            )
            now = time.monotonic()
            frame = Frame(camera=f"naive-{camera}", seq=seq, ts_mono=now, ts_wall=time.time(), image=image)
            analyzers[camera].process(analyzers[camera].context(frame, dets))
            seq += 1
            done += 1
    for clip in clips:
        clip.close()
    return done / (time.perf_counter() - started)


def bench_config(
    config: Config,
    clips: Sequence[tuple[str, str]],
    workdir: Path,
    mqtt: tuple[str, int] | None,
    motion: bool = False,
    realtime: bool = True,
) -> Config:
    """Copies of the config's first camera, one per (name, clip) of ``clips``, each playing its clip at the clip's own
    rate (flat out when not ``realtime``), with motion gating on when ``motion`` (else as the config has it); sinks
    in ``workdir``."""
    template = config.enabled_cameras[0]
    gating = template.motion.model_copy(update={"enabled": True}) if motion else template.motion
    cams = [
        template.model_copy(update={"name": name, "url": clip, "realtime": realtime, "loop": True, "motion": gating})
        for name, clip in clips
    ]
    cameras = len(cams)
    mqtt_config = config.mqtt.model_copy(
        update={
            "enabled": mqtt is not None,
            "host": mqtt[0] if mqtt else "localhost",
            "port": mqtt[1] if mqtt else 1883,
            "client_id": f"surveil-bench-{os.getpid()}-{cameras}",
            "topic_prefix": "surveil-bench",
            "spool_path": str(workdir / f"spool-{cameras}.sqlite3"),
        }
    )
    alerts = config.alerts.model_copy(update={"jsonl_path": str(workdir / f"alerts-{cameras}.jsonl")})
    return config.model_copy(update={"cameras": cams, "mqtt": mqtt_config, "alerts": alerts, "state_dir": str(workdir)})


def pipeline_run(
    config: Config,
    detector: Detector,
    cameras: int,
    warmup: float,
    seconds: float,
    watch: DeliveryWatch | None,
    *,
    open_capture: Callable[[Any], Any] | None = None,
    ready: Callable[[], bool] | None = None,
) -> RunResult:
    """The pipeline of ``config`` with ``detector`` (housekeeping once a second, as the daemon), measured for
    ``seconds`` after ``warmup`` seconds; the warm-up starts once ``ready()`` is true (at most READY_LIMIT_S)
    when given. ``open_capture``: the cameras' capture (Pipeline's default: OpenCV opening each URL)."""
    from surveil.service.metrics import Metrics
    from surveil.service.pipeline import Pipeline

    metrics = Metrics()
    pipeline = Pipeline(config, metrics, detector=detector, open_capture=open_capture)
    pipeline.start()
    stop = threading.Event()
    ticker = threading.Thread(target=_housekeeping, args=(pipeline, stop), name="bench-housekeeping", daemon=True)
    ticker.start()
    try:
        deadline = time.monotonic() + READY_LIMIT_S
        while ready is not None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(warmup)
        if watch:
            watch.take()
        before = Snapshot.take(metrics.registry)
        time.sleep(seconds)
        after = Snapshot.take(metrics.registry)
        time.sleep(0.3)  # alerts of the window still on their way to the subscriber
        delivery = watch.take() if watch else []
    finally:
        stop.set()
        ticker.join(timeout=2)
        pipeline.stop()
    return diff_run(
        cameras, before, after, delivery, gated=[c.name for c in config.enabled_cameras if c.motion.enabled]
    )


def _housekeeping(pipeline, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        pipeline.housekeeping()


# ---------------------------------------------------------------------------------------------- report


def ms(value: float | None) -> str:
    return "   -   " if value is None else f"{1000 * value:7.1f}"


def machine_line() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()} {model}, {os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}"
    )


def print_run(result: RunResult, mqtt: bool) -> None:
    per = result.fps_per_camera
    print(
        f"processed: {result.fps:.2f} frames/s in total; per camera "
        + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    )
    share = result.dropped / result.captured if result.captured else 0.0
    if result.skipped is None:
        skipped = "- (motion gating off; --motion turns it on)"
    else:
        per_camera = ", ".join(f"{k} {v:.0f}" for k, v in result.skipped.items())
        skipped = f"{sum(result.skipped.values()):.0f} of {result.processed:.0f} frames processed ({per_camera})"
    print(
        f"frames captured {result.captured:.0f}, dropped {result.dropped:.0f} ({100 * share:.0f} %), detector calls skipped {skipped}"
    )
    print(
        f"CPU {result.cpu_percent:.0f} % (100 % = one core), RSS {result.rss_mb:.0f} MB, peak RSS so far {result.peak_rss_mb:.0f} MB"
        + (" (with the worker processes)" if result.isolation == "process" else "")
    )
    print("detector utilisation: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in result.utilisation.items()))
    print(f"  {'latency':34s}    p50 ms   p99 ms")
    for label, (p50, p99) in result.latencies.items():
        print(f"  {label:34s} {ms(p50)}  {ms(p99)}")
    if mqtt:
        if result.delivery:
            d = np.asarray(result.delivery)
            print(
                f"  {'alert→broker→subscriber (MQTT)':34s} {ms(float(np.percentile(d, 50)))}  {ms(float(np.percentile(d, 99)))}  ({len(d)} alerts)"
            )
        else:
            print(f"  {'alert→broker→subscriber (MQTT)':34s}    -        -     (no alert in the window)")


def torch_line() -> str:
    from surveil.detection.cost import torch_available

    if not torch_available():
        return "torch not installed (the CPU runtime install): no GFLOPs count, no naive loop"
    import torch

    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"ATen kernels {torch.backends.cpu.get_cpu_capability()}"
    )


def cpu_line(flags: set[str] | None = None) -> str:
    flags = isa_limits.cpu_flags() if flags is None else flags
    return f"CPU features: {isa_limits.flags_summary(flags)} (highest ISA {isa_limits.highest_isa(flags)})"


def detector_isa_line(detector: Any, backend: str) -> str:
    """What the runtime's kernels really use, against the limit asked for (``--isa``)."""
    requested = isa_limits.requested_isa()
    if backend == "openvino":
        try:
            compiled = getattr(detector, "compiled_model", None)
            if compiled is not None:
                counts = isa_limits.openvino_kernels(compiled)
            else:  # the detector keeps no handle on it: compile its graph again, same precision, same process
                counts = isa_limits.openvino_graph_kernels(detector.onnx_path, getattr(detector, "precision", "fp32"))
        except Exception as exc:  # a report line; never fail the bench for it
            return isa_limits.isa_line(
                requested, None, f"OpenVINO's execution graph not read ({type(exc).__name__}: {exc})"
            )
        return isa_limits.isa_line(requested, counts)
    if backend == "onnxruntime":
        return isa_limits.isa_line(
            requested, None, "ONNX Runtime (MLAS) picks its kernels from CPUID and cannot be limited: the full ISA ran"
        )
    return isa_limits.isa_line(requested, None, "torch backend: " + torch_line().split(", ")[-1])


def run_bench(bench: BenchSetup, workdir: Path, args: argparse.Namespace) -> int:
    from surveil.detection.cost import detector_cost
    from surveil.detection.factory import resolve_backend
    from surveil.service.pipeline import load_detector

    config = bench.config
    d = config.detector
    print("== machine")
    print(machine_line())
    print(cpu_line())
    print(torch_line())
    quiet, made_s = None, 0.0
    if bench.quiet_cameras:  # before the model loads: the frames it holds for a moment do not raise the peak RSS
        started = time.perf_counter()
        quiet = str(write_quiet_clip(bench.video, workdir / "quiet.mp4"))
        made_s = time.perf_counter() - started
    single = {"isolation": "thread", "workers": 1, "devices": []}  # the bare model: one detector, in-process
    detector = load_detector(config.model_copy(update={"detector": d.model_copy(update=single)}))
    bench.detectors = {
        isolation: detector
        if isolation == "thread" and d.workers == 1 and not d.devices
        else load_detector(config.model_copy(update={"detector": d.model_copy(update={"isolation": isolation})}))
        for isolation in (getattr(args, "isolation", None) or [d.isolation])
    }
    print("pipeline detectors: " + "; ".join(f"{k}: {_lanes(v)}" for k, v in bench.detectors.items()))
    backend = resolve_backend(d)
    device = getattr(detector, "device", "cpu")
    precision = getattr(detector, "precision", "fp32")  # the torch and ONNX backends say which they run
    print(
        f"detector: {d.weights} on {backend} ({precision}), input min_size {d.min_size}, batch {d.batch_size}, "
        f"device {device}; clip {bench.video}"
    )
    print(detector_isa_line(detector, backend))
    cost = detector_cost(d, read_frames(bench.video, 1)[0])
    print(
        f"compute: {cost.describe()} (torch FlopCounterMode, eager model, one clip frame)"
        if not isinstance(cost, str)
        else cost
    )
    bench.cost = cost
    if quiet:
        print(
            f"quiet clip ({bench.quiet_cameras} camera(s) per run at most): {QUIET_FRAMES} frames, the clip's median frame with noise "
            f"and {len(QUIET_PASTES)} stretches of 5 s of the clip (frames {', '.join(f'{f}-{f + n - 1}' for _, f, n in QUIET_PASTES)}), "
            f"made in {made_s:.1f} s"
        )
    gating = config.enabled_cameras[0].motion  # every bench camera is a copy of this one
    if bench.motion or gating.enabled:
        print(
            f"motion gating on every camera: threshold {gating.threshold}, min_area {gating.min_area}, keepalive {gating.keepalive_s:g} s "
            f"while something may be tracked, idle check every {gating.idle_keepalive_s:g} s"
        )

    broker, mqtt = None, None
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        mqtt = (host or "127.0.0.1", int(port))
        print(f"MQTT: broker {args.mqtt} (given)")
    else:
        broker = LocalBroker(workdir)
        if broker.start():
            mqtt = ("127.0.0.1", broker.port)
            print(f"MQTT: a local mosquitto on 127.0.0.1:{broker.port}, started by the bench")
        else:
            broker = None
            print("MQTT: off (no mosquitto on PATH and no --mqtt): alert→broker latency not measured")
    watch = DeliveryWatch(*mqtt, "surveil-bench") if mqtt else None
    try:
        return _measure(bench, detector, workdir, args, mqtt, watch, quiet)
    finally:
        for pool in bench.detectors.values():
            if hasattr(pool, "close"):
                pool.close()
        if watch:
            watch.close()
        if broker:
            broker.stop()


@dataclass(frozen=True)
class BenchPass:
    """One measurement pass: the bare model, the naive loop and a pipeline run per camera count."""

    bare_fps: float
    naive_fps: float | None
    results: list[RunResult]


def _measure(bench: BenchSetup, detector, workdir: Path, args, mqtt, watch, quiet: str | None) -> int:
    frames = read_frames(bench.video, 64)
    passes = []
    for repeat in range(args.repeats):
        if args.repeats > 1:
            print(f"\n######## repeat {repeat + 1} of {args.repeats}")
        passes.append(_measure_once(bench, detector, frames, workdir, args, mqtt, watch, quiet))
    if args.repeats > 1:
        print_repeats(passes)
    print("\n== sizing")
    print(sizing_line(measured_rows(passes), min(p.bare_fps for p in passes)))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def _measure_once(
    bench: BenchSetup, detector, frames, workdir: Path, args, mqtt, watch, quiet: str | None
) -> BenchPass:
    config, d = bench.config, bench.config.detector
    print("\n== bare model (detector alone on decoded frames, same batch and input size)")
    bare_fps, bare_ms = bare_model(detector, frames, d.batch_size, args.seconds)
    from surveil.detection.cost import achieved, torch_available

    print(
        f"{bare_fps:.2f} frames/s ({bare_ms:.1f} ms per batch of {d.batch_size}, median"
        f"{achieved(bench.cost, bare_ms / 1000 / d.batch_size)})"
    )
    naive_fps = None
    if not args.no_naive and not torch_available():
        print("\n== naive loop: skipped (it runs the eager PyTorch model; torch is not installed)")
    elif not args.no_naive:
        videos = [clip for _, clip in bench.clips(max(args.cameras), quiet)]
        print(f"\n== naive loop (read, eager model([tensor]), rules; one frame at a time over {len(videos)} clip(s))")
        naive_fps = naive_loop(config, videos, args.seconds)
        print(f"{naive_fps:.2f} frames/s")
    results = []
    pace = "decoding as fast as possible" if args.as_fast_as_possible else "at the clip's own rate"
    for cameras in args.cameras:
        clips = bench.clips(cameras, quiet)
        kinds = f" ({sum(clip == quiet for _, clip in clips)} on the quiet clip)" if quiet else ""
        for isolation, pipeline_detector in (bench.detectors or {"thread": detector}).items():
            print(
                f"\n== pipeline, {cameras} camera(s){kinds} {pace}, detector isolation {isolation}, "
                f"{args.seconds:g} s measured after {args.warmup:g} s"
            )
            result = pipeline_run(
                bench_config(config, clips, workdir, mqtt, bench.motion, realtime=not args.as_fast_as_possible),
                pipeline_detector,
                cameras,
                args.warmup,
                args.seconds,
                watch,
            )
            result.isolation = isolation
            print_run(result, mqtt is not None)
            results.append(result)
    print_summary(results, bare_fps, naive_fps)
    return BenchPass(bare_fps, naive_fps, results)


def _lanes(detector: Any) -> str:
    """How many detectors, and where they run."""
    names = getattr(detector, "names", None)
    if names is None:
        return "1 in-process"
    kind = "worker process" if type(detector.lanes[0]).__name__ == "WorkerDetector" else "in-process"
    return f"{len(names)} {kind} ({', '.join(names)})"


def measured_rows(passes: Sequence[BenchPass]) -> list[MeasuredRow]:
    """Each camera count's pipeline run, the worst over the passes (lowest per-camera fps), for the sizing line."""
    rows: dict[int, MeasuredRow] = {}
    for result in (r for p in passes for r in p.results):
        row = MeasuredRow(
            cameras=result.cameras,
            lowest_fps=min(result.fps_per_camera.values(), default=0.0),
            processed_fps=result.fps,
            offered_fps=result.captured / result.seconds if result.seconds else 0.0,
        )
        if result.cameras not in rows or row.lowest_fps < rows[result.cameras].lowest_fps:
            rows[result.cameras] = row
    return list(rows.values())


def mean_range(values: Sequence[float]) -> str:
    return f"{float(np.mean(values)):.2f} ({min(values):.2f}-{max(values):.2f})"


def print_repeats(passes: list[BenchPass]) -> None:
    """Each figure as its mean over the passes, with the range."""
    print(f"\n== over {len(passes)} repeats: mean (range)")
    print(f"bare model {mean_range([p.bare_fps for p in passes])} frames/s", end="")
    naive = [p.naive_fps for p in passes if p.naive_fps]
    print(f", naive loop {mean_range(naive)} frames/s" if naive else ", naive loop not run")
    print("cameras | processed fps in total | lowest per camera | pipeline/bare | pipeline/naive")
    for index, first in enumerate(passes[0].results):
        runs = [(p, p.results[index]) for p in passes]
        lowest = [min(r.fps_per_camera.values(), default=0.0) for _, r in runs]
        ratio_naive = [r.fps / p.naive_fps for p, r in runs if p.naive_fps]
        print(
            f"{first.cameras:7d} | {mean_range([r.fps for _, r in runs]):>22s} | {mean_range(lowest):>17s} | "
            f"{mean_range([r.fps / p.bare_fps for p, r in runs]):>13s} | {mean_range(ratio_naive) if ratio_naive else '-'}"
        )


def print_summary(results: list[RunResult], bare_fps: float, naive_fps: float | None) -> None:
    print("\n== scaling (compute and memory per camera)")
    print(
        "cameras | isolation | offered fps | processed fps | per camera (min-max) | dropped % | detector skipped % | e2e p50 ms | e2e p99 ms | CPU % | RSS MB | detector utilisation %"
    )
    for r in results:
        per = list(r.fps_per_camera.values()) or [0.0]
        p50, p99 = r.latencies["end to end (capture→rules done)"]
        share = 100 * r.dropped / r.captured if r.captured else 0.0
        skipped = "-" if r.skipped is None else f"{100 * sum(r.skipped.values()) / max(r.processed, 1):.0f}"
        print(
            f"{r.cameras:7d} | {r.isolation:9s} | {r.captured / r.seconds:11.1f} | {r.fps:13.2f} | {min(per):8.2f} - {max(per):<8.2f}   | {share:9.0f} | "
            f"{skipped:>18s} | {ms(p50)}    | {ms(p99)}    | {r.cpu_percent:5.0f} | {r.rss_mb:6.0f} | "
            + " ".join(f"{100 * v:.0f}" for v in r.utilisation.values())
        )
    print(
        "(offered: frames the cameras decoded per second; the pipeline cannot exceed it, so pipeline/bare < 1 where it is "
        "below the bare model's rate; detector skipped: processed frames that motion gating kept from the detector, - when off)"
    )
    print("\n== ratios")
    print(
        f"bare model {bare_fps:.2f} frames/s"
        + (f", naive loop {naive_fps:.2f} frames/s" if naive_fps else ", naive loop not run")
    )
    for r in results:
        naive = f", pipeline/naive {r.fps / naive_fps:.2f}" if naive_fps else ""
        print(f"{r.cameras} camera(s), {r.isolation}: pipeline/bare {r.fps / bare_fps:.2f}{naive}")
