"""`surveil bench` runs end to end on the shipped clip and prints every section; it never checks figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from surveil.config import load_config
from surveil.detection.capacity import sizing_line
from surveil.tools.bench import (
    QUIET_FRAMES,
    QUIET_PASTES,
    BenchError,
    BenchPass,
    RunResult,
    bare_model,
    bench_config,
    cpu_line,
    measured_rows,
    quantile,
    quiet_clip,
    write_quiet_clip,
)
from tests.support.models import random_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pedestrian_checkpoint(tmp_path_factory) -> Path:
    """Random weights, the demo's class name: the demo config's rules accept it."""
    return random_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", ["__background__", "pedestrian"])


def run_bench(checkpoint: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "surveil",
            "bench",
            "-c",
            str(ROOT / "configs/demo.yaml"),
            "--seconds",
            "3",
            "--warmup",
            "1",
            "--weights",
            str(checkpoint),
            "--min-size",
            "320",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_bench_prints_every_section(pedestrian_checkpoint):
    result = run_bench(pedestrian_checkpoint, "--cameras", "1")
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    for section in (
        "== machine",
        "== bare model",
        "== naive loop",
        "== pipeline, 1 camera(s)",
        "== scaling",
        "== ratios",
        "== sizing",
    ):
        assert section in out, f"{section!r} missing:\n{out}"
    for line in (
        "processed:",
        "per camera cam1",
        "dropped",
        "detector calls skipped",
        "CPU",
        "RSS",
        "peak RSS",
        "wait (capture→detect)",
        "detect (one batch)",
        "analyse",
        "end to end (capture→rules done)",
        "alert (capture→sinks)",
        "pipeline/bare",
        "pipeline/naive",
        "load average at the end",
        "CPU features: avx2 ",
        "ISA: requested native, ",
        "this machine sustains ",
    ):
        assert line in out, f"{line!r} missing:\n{out}"
    # the compute figure in the header and as GFLOP/s beside the bare model's time
    assert re.search(r"^compute: [\d.]+ GFLOPs per frame at input \d+x\d+ \(backbone [\d.]+, rpn", out, re.M), out
    assert re.search(r"ms per batch of \d+, median; [\d.]+ GFLOPs/frame = \d+ GFLOP/s\)", out), out
    assert "alert→broker→subscriber (MQTT)" in out or "MQTT: off" in out
    assert "detector calls skipped - (motion gating off" in out


@pytest.mark.slow
def test_bench_runs_each_camera_count_in_thread_and_in_a_worker_process(pedestrian_checkpoint):
    result = run_bench(pedestrian_checkpoint, "--cameras", "1", "--isolation", "thread", "process", "--no-naive")
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipeline detectors: thread: 1 in-process; process: 1 worker process (worker-0)" in out, out
    for isolation in ("thread", "process"):
        assert f"== pipeline, 1 camera(s) at the clip's own rate, detector isolation {isolation}" in out, out
        assert re.search(rf"^1 camera\(s\), {isolation}: pipeline/bare [\d.]+$", out, re.M), out
    assert len(re.findall(r"^detector utilisation: worker-0 \d+ %$", out, re.M)) == 2, out
    assert "(with the worker processes)" in out


@pytest.mark.slow
def test_bench_with_motion_gating_on_busy_and_quiet_cameras_twice(pedestrian_checkpoint):
    result = run_bench(
        pedestrian_checkpoint,
        "--cameras",
        "2",
        "--quiet-cameras",
        "1",
        "--motion",
        "--no-naive",
        "--repeats",
        "2",
        "--isa",
        "avx2",
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    # --isa avx2: the limit reaches the runtimes, whose kernels the header reports (OpenVINO: from its graph)
    isa_line = next(line for line in out.splitlines() if line.startswith("ISA: "))
    assert isa_line.startswith("ISA: requested AVX2, ") and "avx512" not in isa_line, isa_line
    assert "ATen kernels AVX2" in out, out
    for line in (
        "quiet clip",
        "motion gating on every camera",
        "== pipeline, 2 camera(s) (1 on the quiet clip)",
        "per camera cam1",
        "quiet1",
        "detector skipped %",
        "== ratios",
    ):
        assert line in out, f"{line!r} missing:\n{out}"
    # the count read from the pipeline's surveil_detector_skipped_total, for each gated camera
    assert re.search(r"detector calls skipped \d+ of \d+ frames processed \(cam1 \d+, quiet1 \d+\)", out), out
    # --repeats 2: two passes, then each figure as mean (range) over them
    assert "######## repeat 2 of 2" in out and "== over 2 repeats: mean (range)" in out, out
    assert re.search(
        r"^\s+2 \|\s+[\d.]+ \([\d.]+-[\d.]+\) \|\s+[\d.]+ \([\d.]+-[\d.]+\) \|\s+[\d.]+ \([\d.]+-[\d.]+\) \| -$",
        out,
        re.M,
    ), out


def _result(cameras: int, per_camera: list[float], captured: float = 100.0) -> RunResult:
    return RunResult(
        cameras=cameras,
        seconds=10.0,
        fps_per_camera={f"cam{i + 1}": fps for i, fps in enumerate(per_camera)},
        dropped=0.0,
        captured=captured,
        skipped=None,
        cpu_percent=100.0,
        rss_mb=1.0,
        peak_rss_mb=1.0,
        latencies={},
    )


def test_sizing_rows_keep_the_worst_pass_of_each_camera_count():
    passes = [
        BenchPass(4.0, None, [_result(1, [3.0]), _result(4, [2.1, 2.0, 2.2, 2.0])]),
        BenchPass(4.2, None, [_result(1, [3.2]), _result(4, [1.9, 2.0, 2.1, 2.2])]),
    ]
    rows = {row.cameras: row for row in measured_rows(passes)}
    assert rows[1].lowest_fps == 3.0 and rows[4].lowest_fps == 1.9
    assert rows[4].processed_fps == pytest.approx(8.2) and rows[4].offered_fps == 10.0
    assert sizing_line(list(rows.values())).startswith("this machine sustains 1 camera(s) at 3.00 processed fps each")


def test_cpu_line_names_the_features_that_pick_the_kernels():
    line = cpu_line({"avx2", "fma"})
    assert line == "CPU features: avx2 yes, avx512f no, avx512_vnni no, avx512_bf16 no, amx no (highest ISA avx2)"


def test_quiet_clip_is_still_frames_with_stretches_of_the_video():
    rng = np.random.default_rng(1)
    real = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(760)]
    frames, source, median = quiet_clip(real)
    assert len(frames) == len(source) == QUIET_FRAMES
    assert sum(n is not None for n in source) == sum(length for _, _, length in QUIET_PASTES)
    for start, first, _ in QUIET_PASTES:
        assert source[start] == first and frames[start] is real[first - 1]
    still = np.stack([f for f, n in zip(frames, source) if n is None]).astype(float)
    assert np.abs(still.mean(axis=0) - median).max() < 1.0  # noise around the median frame


def test_quiet_clip_needs_the_pasted_frames(tmp_path):
    short = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter.fourcc(*"MJPG"), 10, (32, 24))
    for _ in range(20):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(BenchError, match="has 20"):
        write_quiet_clip(str(short), tmp_path / "quiet.mp4")


@pytest.mark.slow
def test_bench_refuses_a_camera_that_is_not_a_file(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("cameras: [{name: gate, url: 'rtsp://192.0.2.1/stream'}]\nmqtt: {enabled: false}\n")
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "bench", "-c", str(config), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--video" in result.stderr


@pytest.mark.slow
def test_bench_refuses_a_repeat_count_out_of_range():
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "bench", "-c", str(ROOT / "configs/demo.yaml"), "--repeats", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "--repeats must be 1-20" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({0.1: 0, 0.2: 10, float("inf"): 10}, 0.5, 0.15),  # inside a bucket: linear
        ({0.1: 10, 0.2: 10, float("inf"): 10}, 0.99, 0.099),
        ({0.1: 0, 0.2: 0, float("inf"): 4}, 0.5, 0.2),  # beyond the last bound: that bound
        ({0.1: 0, float("inf"): 0}, 0.5, None),  # nothing observed
    ],
)
def test_quantile_interpolates_like_prometheus(buckets, q, expected):
    assert quantile(buckets, q) == (pytest.approx(expected) if expected is not None else None)


class CountingDetector:
    def __init__(self):
        self.class_names = ["__background__"]
        self.batches: list[int] = []

    def detect(self, images) -> list:
        self.batches.append(len(images))
        return [None] * len(images)


def test_bare_model_runs_the_given_iterations_after_one_warm_up_between_syncs():
    detector, synced = CountingDetector(), []
    frames = [np.zeros((2, 2, 3), np.uint8)] * 3
    bare_model(detector, frames, 2, 1000.0, iterations=4, sync=lambda: synced.append(len(detector.batches)))
    assert detector.batches == [2] * 5  # the warm-up, then exactly 4 batches (not 1000 s of them)
    assert synced == [1, 5]  # after the warm-up, and before the clock stops


@pytest.mark.parametrize("realtime", [True, False])
def test_bench_cameras_play_at_the_clip_rate_or_flat_out(tmp_path, realtime):
    config = load_config(ROOT / "configs/demo.yaml", environ={})
    clips = [("cam1", "a.mp4"), ("quiet1", "b.mp4")]
    cameras = bench_config(config, clips, tmp_path, None, realtime=realtime).cameras
    assert [(c.name, str(c.url), c.realtime, c.loop) for c in cameras] == [
        ("cam1", "a.mp4", realtime, True),
        ("quiet1", "b.mp4", realtime, True),
    ]
