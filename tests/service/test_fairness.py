"""Issue 7, class 6: every camera gets detector time.

Mechanism (surveil/service/frame_board.py): the FrameBoard serves the least recently served cameras first,
so a camera with a frame waits at most ceil(cameras / batch size) batches whatever the frame
rates; a full batch waits only for cameras that are delivering. The per-camera
``surveil_camera_processed_fps`` gauge shows it. (Before: oldest frame first, and a 25 fps
camera beside three 10 fps ones was processed 0 times in 60 s.)"""

from __future__ import annotations

import math
import threading
import time
from typing import ClassVar

import numpy as np
import pytest
import yaml

from surveil.config import load_config
from surveil.service.daemon import Daemon
from surveil.service.frame_board import FrameBoard
from surveil.service.metrics import Metrics
from surveil.types import Detections, Frame
from tests.support.media import make_h264_clip
from tests.support.polling import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


# (id, frames per second of each camera, batch size, seconds per batch)
MIXES = [
    ("25+3x10-batch1", [25, 10, 10, 10], 1, 0.3),
    ("25+3x10-batch2", [25, 10, 10, 10], 2, 0.3),
    ("30+7x5-batch3", [30, 5, 5, 5, 5, 5, 5, 5], 3, 0.5),
    ("one-slow-among-fast", [1, 30, 30, 30], 1, 0.05),
    ("all-equal-batch4", [10, 10, 10, 10, 10], 4, 0.2),
    ("fast-detector", [25, 10, 10, 10], 1, 0.01),
]


@pytest.mark.parametrize(("case_id", "rates", "batch", "detect_s"), MIXES, ids=[m[0] for m in MIXES])
def test_every_camera_with_a_frame_is_served_within_a_bounded_number_of_batches(case_id, rates, batch, detect_s):
    clock = FakeClock()
    board = FrameBoard(clock=clock)
    names = [f"cam{i}" for i in range(len(rates))]
    for name in names:
        board.register(name)
    next_frame = {name: i * 0.001 for i, name in enumerate(names)}
    waiting_since: dict[str, int] = {}  # camera -> batch number when its current wait began
    served = dict.fromkeys(names, 0)
    worst_wait = 0
    stop = threading.Event()
    for batch_number in range(int(60 / detect_s)):
        now = batch_number * detect_s
        arrivals = []
        for name, rate in zip(names, rates):
            while next_frame[name] <= now:
                arrivals.append((next_frame[name], name))
                next_frame[name] += 1.0 / rate
        for clock.now, name in sorted(arrivals):  # each frame arrives at its own time, between batches
            board.put(Frame(name, 0, clock.now, 0.0, np.zeros((1, 1, 3), np.uint8)))
            waiting_since.setdefault(name, batch_number)
        clock.now = now
        frames = board.take_batch(batch, max_wait_s=0.0, stop=stop) if board.pending() else []
        for frame in frames:
            served[frame.camera] += 1
            worst_wait = max(worst_wait, batch_number - waiting_since.pop(frame.camera) + 1)
    bound = math.ceil(len(names) / batch)
    assert worst_wait <= bound, f"a camera waited {worst_wait} batches (bound {bound}); served {served}"
    assert all(count > 0 for count in served.values()), served


def test_a_camera_that_stops_delivering_does_not_hold_up_full_batches():
    clock = FakeClock()
    board = FrameBoard(clock=clock)
    for name in ("up", "down"):
        board.register(name)
    board.put(Frame("down", 0, 0.0, 0.0, np.zeros((1, 1, 3), np.uint8)))
    assert (
        len(board.take_batch(2, 1.0, threading.Event())) == 1
    )  # the max_wait flush (waited 0 s: clock frozen -> delivering=1)
    # the reference: a full batch is taken without waiting; count the clock reads that costs
    board.put(Frame("down", 1, 0.0, 0.0, np.zeros((1, 1, 3), np.uint8)))
    board.put(Frame("up", 1, 0.0, 0.0, np.zeros((1, 1, 3), np.uint8)))
    reads = clock.reads
    assert len(board.take_batch(2, 1000.0, threading.Event(), poll_s=0.01)) == 2
    reads_without_waiting = clock.reads - reads
    clock.now = 10.0  # "down" has delivered nothing for 10 s
    board.put(Frame("up", 2, 10.0, 0.0, np.zeros((1, 1, 3), np.uint8)))
    reads = clock.reads
    # with the clock frozen, any wait for "down" would loop (and re-read the clock) until the test's timeout
    assert [f.camera for f in board.take_batch(2, 1000.0, threading.Event(), poll_s=0.01)] == ["up"]
    assert clock.reads - reads <= reads_without_waiting, "take_batch waited for a camera that stopped delivering"


class SlowDetector:
    """A scripted detector that takes ``seconds`` per batch and finds nothing."""

    class_names: ClassVar[list[str]] = ["__background__", "person"]

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def detect(self, images):
        time.sleep(self.seconds)
        return [Detections.empty() for _ in images]


@pytest.mark.slow
def test_daemon_gives_a_25fps_camera_and_three_10fps_cameras_detector_time(tmp_path):
    fast = make_h264_clip(tmp_path / "fast.mp4", seconds=4, fps=25, width=160, height=120)
    slow = make_h264_clip(tmp_path / "slow.mp4", seconds=4, fps=10, width=160, height=120)
    cameras = [{"name": "fast", "url": str(fast.path)}] + [
        {"name": f"slow{i}", "url": str(slow.path)} for i in range(3)
    ]
    path = tmp_path / "site.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "cameras": cameras,
                "detector": {"batch_size": 1, "max_wait_ms": 40},
                "mqtt": {"enabled": False},
                "metrics": {"listen": "127.0.0.1:0"},
            }
        )
    )
    metrics = Metrics()
    daemon = Daemon(path, load_config(path), metrics=metrics, detector=SlowDetector(0.15))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    value = metrics.registry.get_sample_value
    names = [c["name"] for c in cameras]
    try:
        assert wait_until(
            lambda: all((value("surveil_frames_processed_total", {"camera": n}) or 0) >= 5 for n in names), 30
        ), {n: value("surveil_frames_processed_total", {"camera": n}) for n in names}
        assert wait_until(
            lambda: all((value("surveil_camera_processed_fps", {"camera": n}) or 0) > 0.5 for n in names), 15
        ), {n: value("surveil_camera_processed_fps", {"camera": n}) for n in names}
        processed = {n: value("surveil_frames_processed_total", {"camera": n}) for n in names}
        assert max(processed.values()) <= 2 * min(processed.values()) + 2, processed  # a fair share, not just "some"
        assert value("surveil_frames_dropped_total", {"camera": "fast"}) > 0  # the detector really was the bottleneck
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
