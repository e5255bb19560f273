"""Capture stage: pure logic with scripted captures, then real files and a real RTSP server."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from surveil.config import CameraConfig
from surveil.types import Frame
from surveil.video.opening import (
    FFMPEG_OPTIONS_ENV,
    CaptureOpenError,
    ensure_ffmpeg_capture_options,
    mask_url,
    open_video_capture,
)
from surveil.video.pacing import Backoff, Pacer, RateLimiter
from surveil.video.source import CameraSource, NullCaptureEvents
from tests.support.media import Clip
from tests.support.polling import free_port, wait_until
from tests.support.rtsp import RtspServer

# ---------------------------------------------------------------- helpers


class Recorder:
    """CaptureEvents that remembers everything, thread-safely, plus the delivered frames."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, tuple[Any, ...]]] = []
        self.frames: list[Frame] = []

    def _add(self, name: str, camera: str, *args: Any) -> None:
        with self.lock:
            self.events.append((name, camera, args))

    def frame_read(self, camera: str) -> None:
        self._add("frame_read", camera)

    def frame_skipped(self, camera: str) -> None:
        self._add("frame_skipped", camera)

    def camera_up(self, camera: str) -> None:
        self._add("camera_up", camera)

    def camera_down(self, camera: str, reason: str) -> None:
        self._add("camera_down", camera, reason)

    def reconnect_attempt(self, camera: str) -> None:
        self._add("reconnect_attempt", camera)

    def deliver(self, frame: Frame) -> None:
        with self.lock:
            self.frames.append(frame)

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e[0] == name)

    def names(self, exclude: tuple[str, ...] = ("frame_read", "frame_skipped")) -> list[str]:
        with self.lock:
            return [e[0] for e in self.events if e[0] not in exclude]

    def reasons(self) -> list[str]:
        with self.lock:
            return [e[2][0] for e in self.events if e[0] == "camera_down"]

    def n_frames(self) -> int:
        with self.lock:
            return len(self.frames)

    def seqs(self) -> list[int]:
        with self.lock:
            return [f.seq for f in self.frames]


IMAGE = np.zeros((4, 6, 3), np.uint8)
BLOCK = object()  # script item: read blocks until released


class ScriptedCapture:
    """A stand-in for cv2.VideoCapture that plays a script of read results.

    Items: an ndarray (a frame), None (read fails), an Exception (raised), BLOCK (wait for
    ``unblock``, then return a frame). After the script: ``tail`` (a frame or None) forever.
    """

    made: ClassVar[list[ScriptedCapture]] = []

    def __init__(self, script: list[Any], tail: Any = None, fps: float = 25.0, on_read: Any = None) -> None:
        self.script = list(script)
        self.pos = 0
        self.tail = tail
        self.fps = fps
        self.on_read = on_read
        self.released = False
        self.unblock = threading.Event()
        ScriptedCapture.made.append(self)

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        if self.on_read is not None:
            self.on_read()
        item = self.script[self.pos] if self.pos < len(self.script) else self.tail
        self.pos += 1
        if item is BLOCK:
            self.unblock.wait(10)
            item = IMAGE
        if isinstance(item, Exception):
            raise item
        return (item is not None), item

    def get(self, prop: int) -> float:
        return self.fps

    def set(self, prop: int, value: float) -> bool:
        self.pos = int(value)
        return True

    def release(self) -> None:
        self.released = True


class Opener:
    """open_capture replacement handing out prepared captures; 'fail' entries raise CaptureOpenError."""

    def __init__(self, *captures: Any, then: Any = "fail") -> None:
        self.queue = list(captures)
        self.then = then
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, config: CameraConfig) -> Any:
        with self.lock:
            self.calls += 1
            item = self.queue.pop(0) if self.queue else self.then
        if item == "fail":
            raise CaptureOpenError(f"camera {config.name}: cannot open {mask_url(config.url)}")
        return item() if callable(item) else item


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, dt: float) -> None:
        with self.lock:
            self.now += dt


def camera(url: str | int = "rtsp://cam.local/stream", **overrides: Any) -> CameraConfig:
    values: dict[str, Any] = {"name": "cam1", "url": url, "reconnect_min_s": 0.01, "reconnect_max_s": 0.05}
    values.update(overrides)
    return CameraConfig(**values)


@pytest.fixture
def sources() -> Iterator[list[CameraSource]]:
    """Collects sources made by a test and stops them all afterwards."""
    made: list[CameraSource] = []
    yield made
    for cap in ScriptedCapture.made:  # let blocked fake reads return so the threads can stop
        cap.unblock.set()
    ScriptedCapture.made.clear()
    for source in made:
        source.stop(timeout=5)


def run_source(
    sources: list[CameraSource], config: CameraConfig, opener: Any, **kwargs: Any
) -> tuple[CameraSource, Recorder]:
    rec = Recorder()
    source = CameraSource(config, rec.deliver, rec, open_capture=opener, **kwargs)
    sources.append(source)
    source.start()
    return source, rec


# ---------------------------------------------------------------- pure logic


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    top = Backoff(0.5, 6.0, Highest())
    assert [top.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 6.0, 6.0, 6.0]
    top.reset()
    assert top.next_delay() == 1.0

    backoff = Backoff(0.5, 6.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(40)]
    assert all(0.5 <= d <= 6.0 for d in delays)
    assert all(d <= min(6.0, 0.5 * 2 ** (n + 1)) for n, d in enumerate(delays))
    assert len({round(d, 6) for d in delays}) > 30  # jittered, not a fixed ladder
    assert sum(delays[20:]) > sum(delays[:4]) * 3  # grows
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_rate_limiter_keeps_the_long_run_rate_and_tolerates_jitter() -> None:
    limiter = RateLimiter(10.0)
    allowed = sum(limiter.allow(n * 0.04) for n in range(250))  # 25 fps for 10 s
    assert 99 <= allowed <= 101
    exact = RateLimiter(10.0)  # a 10 fps source with ±5 ms jitter is never thinned
    jitter = [0.005, -0.005, 0.004, -0.003, 0.0]
    assert all(exact.allow(n * 0.1 + jitter[n % 5]) for n in range(100))
    assert all(RateLimiter(None).allow(n * 0.001) for n in range(50))


def test_pacer_keeps_a_drift_free_schedule() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(10.0, clock)
    stop = threading.Event()
    assert pacer.wait(stop)  # first frame: now
    clock.advance(0.03)  # reading took 30 ms: the next read is 70 ms away, not 100
    t0 = time.monotonic()
    assert pacer.wait(stop)
    assert time.monotonic() - t0 >= 0.06
    stop.set()
    clock.advance(0.0)
    assert not pacer.wait(stop)  # due in the future and stopped: returns False at once


def test_mask_url_hides_passwords_only() -> None:
    assert mask_url("rtsp://admin:s3cr3t@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"
    assert mask_url("rtsp://admin@10.0.0.5/h264") == "rtsp://admin@10.0.0.5/h264"
    assert mask_url("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"
    assert mask_url("/videos/a.mp4") == "/videos/a.mp4"
    assert mask_url(0) == "0"


def test_ffmpeg_options_are_added_without_overriding_the_operator() -> None:
    env: dict[str, str] = {}
    assert ensure_ffmpeg_capture_options(env) == "rtsp_transport;tcp|analyzeduration;500000"
    env = {FFMPEG_OPTIONS_ENV: "rtsp_transport;udp|stimeout;1000"}
    ensure_ffmpeg_capture_options(env)
    assert env[FFMPEG_OPTIONS_ENV] == "rtsp_transport;udp|stimeout;1000|analyzeduration;500000"
    again = ensure_ffmpeg_capture_options(env)
    assert again == env[FFMPEG_OPTIONS_ENV]


# ---------------------------------------------------------------- the thread, scripted captures


def test_fps_limit_reads_everything_and_delivers_at_most_the_limit(sources: list[CameraSource]) -> None:
    clock = FakeClock()
    cap = ScriptedCapture([IMAGE] * 100, tail=None, on_read=lambda: clock.advance(0.04))  # 25 fps
    source, rec = run_source(sources, camera(fps_limit=10.0), Opener(cap), clock=clock)
    assert wait_until(lambda: rec.count("frame_read") == 100 and rec.count("camera_down") == 1, 5)
    delivered = rec.n_frames()
    assert 38 <= delivered <= 41
    assert rec.count("frame_skipped") == 100 - delivered
    seqs = rec.seqs()
    assert seqs == sorted(seqs) and seqs[0] == 0 and seqs[-1] <= 99
    assert source.status().frames_read == 100


def test_file_without_loop_ends_cleanly(sources: list[CameraSource]) -> None:
    opener = Opener(ScriptedCapture([IMAGE] * 5, tail=None))
    source, rec = run_source(sources, camera("/videos/a.mp4", realtime=False, loop=False), opener)
    assert wait_until(lambda: not source.is_alive(), 5)
    assert rec.seqs() == [0, 1, 2, 3, 4]
    assert rec.names() == ["camera_up", "camera_down"]
    assert rec.reasons() == ["end of file"]
    assert opener.calls == 1 and source.status().reconnects == 0


def test_file_with_loop_starts_again(sources: list[CameraSource]) -> None:
    opener = Opener(ScriptedCapture([IMAGE] * 5, tail=None))
    source, rec = run_source(sources, camera("/videos/a.mp4", realtime=False, loop=True), opener)
    assert wait_until(lambda: rec.n_frames() >= 23, 5)
    assert rec.seqs()[:23] == list(range(23))
    assert rec.names() == ["camera_up"] and opener.calls == 1
    assert source.is_alive()


def test_looping_file_without_readable_frames_fails_and_retries(sources: list[CameraSource]) -> None:
    opener = Opener(then=lambda: ScriptedCapture([], tail=None))
    source, rec = run_source(sources, camera("/videos/empty.mp4", realtime=False, loop=True), opener)
    assert wait_until(lambda: rec.count("reconnect_attempt") >= 3, 5)
    assert rec.reasons() == ["camera cam1: no frame could be read from /videos/empty.mp4"]
    assert source.is_alive() and rec.n_frames() == 0


def test_exception_in_read_is_logged_and_the_camera_reconnects(
    sources: list[CameraSource], caplog: pytest.LogCaptureFixture
) -> None:
    first = ScriptedCapture([IMAGE, IMAGE, RuntimeError("decoder exploded")])
    second = ScriptedCapture([IMAGE] * 3, tail=BLOCK)
    with caplog.at_level(logging.ERROR, logger="surveil.video.source"):
        source, rec = run_source(sources, camera(), Opener(first, second))
        assert wait_until(lambda: rec.n_frames() >= 5, 5)
    assert source.is_alive()
    assert rec.names()[:4] == ["camera_up", "camera_down", "reconnect_attempt", "camera_up"]
    assert "RuntimeError" in rec.reasons()[0] and "decoder exploded" in rec.reasons()[0]
    assert rec.seqs()[:5] == [0, 1, 2, 3, 4]
    assert first.released
    assert any(r.exc_info and "decoder exploded" in str(r.exc_info[1]) for r in caplog.records)
    second.unblock.set()


def test_exception_in_deliver_or_events_does_not_kill_the_thread(sources: list[CameraSource]) -> None:
    class BadEvents(NullCaptureEvents):
        def frame_read(self, camera: str) -> None:
            raise ValueError("metrics broke")

    delivered: list[int] = []

    def deliver(frame: Frame) -> None:
        delivered.append(frame.seq)
        if frame.seq == 1:
            raise KeyError("receiver broke")

    source = CameraSource(
        camera(), deliver, BadEvents(), open_capture=Opener(then=lambda: ScriptedCapture([IMAGE] * 10))
    )
    sources.append(source)
    source.start()
    assert wait_until(lambda: len(delivered) >= 5, 5)
    assert source.is_alive() and source.status().reconnects >= 1


def test_outage_is_reported_once_however_many_retries(sources: list[CameraSource]) -> None:
    good = ScriptedCapture([IMAGE] * 2, tail=BLOCK)
    opener = Opener("fail", "fail", "fail", "fail", "fail", good)
    source, rec = run_source(sources, camera(), opener)
    assert wait_until(lambda: rec.n_frames() == 2, 5)
    assert rec.names() == ["camera_down"] + ["reconnect_attempt"] * 5 + ["camera_up"]
    assert "cannot open rtsp://cam.local/stream" in rec.reasons()[0]
    status = source.status()
    assert status.up and status.reconnects == 5 and status.frames_read == 2
    good.unblock.set()


def test_stop_returns_at_once_during_backoff(sources: list[CameraSource]) -> None:
    source, rec = run_source(sources, camera(reconnect_min_s=30.0, reconnect_max_s=60.0), Opener())
    assert wait_until(lambda: rec.count("camera_down") == 1, 5)
    assert source.stop(timeout=5)  # True well inside the 30-s back-off: the wait was interrupted
    assert not source.is_alive() and rec.count("reconnect_attempt") == 0


def test_check_stall_reports_a_blocked_reader_and_the_reader_reopens(sources: list[CameraSource]) -> None:
    clock = FakeClock()
    blocked = ScriptedCapture([IMAGE, BLOCK])
    after = ScriptedCapture([IMAGE], tail=BLOCK)
    source, rec = run_source(sources, camera(stall_timeout_s=2.0), Opener(blocked, after), clock=clock)
    assert wait_until(lambda: rec.n_frames() == 1 and blocked.pos == 2, 5)  # now blocked in read()
    t = clock()
    assert not source.check_stall(t + 1.9)
    assert source.check_stall(t + 2.1)
    assert source.check_stall(t + 5.0)  # still stalled, but reported once
    assert rec.names() == ["camera_up", "camera_down"]
    assert rec.reasons()[0].startswith("no frame for 2.1")
    assert not source.status().up
    blocked.unblock.set()  # the read finally returns a (stale) frame: dropped, the camera is reopened
    assert wait_until(lambda: rec.n_frames() == 2, 5)
    assert rec.names() == ["camera_up", "camera_down", "reconnect_attempt", "camera_up"]
    assert blocked.released
    after.unblock.set()


def test_a_read_that_returns_after_the_stall_timeout_counts_as_a_stall(sources: list[CameraSource]) -> None:
    clock = FakeClock()
    reads = iter([0.0, 0.0, 3.0])  # the third read takes 3 s of (fake) time
    cap = ScriptedCapture([IMAGE] * 3, tail=BLOCK, on_read=lambda: clock.advance(next(reads, 0.0)))
    _source, rec = run_source(
        sources, camera(stall_timeout_s=2.0), Opener(cap, then=lambda: ScriptedCapture([], tail=BLOCK)), clock=clock
    )
    assert wait_until(lambda: rec.count("reconnect_attempt") >= 1, 5)
    assert rec.n_frames() == 2
    assert rec.reasons() == ["no frame for 3.0 s"]


# ---------------------------------------------------------------- real OpenCV, real files


def test_open_failures_name_the_camera_and_mask_the_password(tmp_path: Path) -> None:
    with pytest.raises(CaptureOpenError, match="camera cam1: file not found"):
        open_video_capture(camera(str(tmp_path / "missing.mp4")))
    with pytest.raises(CaptureOpenError, match="camera cam1: cannot open /dev/video99"):
        open_video_capture(camera("/dev/video99"))
    url = f"rtsp://admin:s3cr3t@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(CaptureOpenError) as info:
        open_video_capture(camera(url, open_timeout_s=2.0))
    assert "cam1" in str(info.value) and "admin:***@127.0.0.1" in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_real_file_as_fast_as_possible_delivers_every_frame_in_order(
    sources: list[CameraSource], h264_clip: Clip
) -> None:
    config = camera(str(h264_clip.path), realtime=False, loop=False)
    source, rec = run_source(sources, config, open_video_capture)
    assert wait_until(lambda: not source.is_alive(), 15)
    assert rec.seqs() == list(range(h264_clip.frames))
    frame = rec.frames[0]
    assert frame.image.shape == (h264_clip.height, h264_clip.width, 3) and frame.image.dtype == np.uint8
    assert not np.shares_memory(rec.frames[0].image, rec.frames[1].image)  # each frame owns its pixels
    assert not np.array_equal(rec.frames[0].image, rec.frames[1].image)
    monos = [f.ts_mono for f in rec.frames]
    assert monos == sorted(monos)
    assert rec.names() == ["camera_up", "camera_down"] and rec.reasons() == ["end of file"]


def test_real_file_loops_past_its_end(sources: list[CameraSource], h264_clip: Clip) -> None:
    config = camera(str(h264_clip.path), realtime=False, loop=True)
    _source, rec = run_source(sources, config, open_video_capture)
    want = 2 * h264_clip.frames + 10
    assert wait_until(lambda: rec.n_frames() >= want, 15)
    assert rec.seqs()[:want] == list(range(want))
    assert rec.names() == ["camera_up"]
    # the frame after the end is the first frame again
    first, again = rec.frames[0].image, rec.frames[h264_clip.frames].image
    assert np.abs(first.astype(int) - again.astype(int)).mean() < 2.0


def test_real_file_in_realtime_plays_at_its_own_rate(sources: list[CameraSource], h264_clip: Clip) -> None:
    config = camera(str(h264_clip.path), realtime=True, loop=True)
    _source, rec = run_source(sources, config, open_video_capture)
    assert wait_until(lambda: rec.n_frames() >= 16, 10)
    frames = rec.frames[:16]
    span = frames[-1].ts_mono - frames[0].ts_mono  # 15 intervals of 1/15 s
    assert span >= 0.95


# ---------------------------------------------------------------- real RTSP server


def rtsp_camera(server: RtspServer, **overrides: Any) -> CameraConfig:
    values: dict[str, Any] = {
        "url": server.url, "open_timeout_s": 2.0, "read_timeout_s": 1.0, "stall_timeout_s": 3.0,
        "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
    }  # fmt: skip
    values.update(overrides)
    return camera(**values)


@pytest.mark.slow
def test_rtsp_camera_survives_a_server_restart(rtsp_server: RtspServer, sources: list[CameraSource]) -> None:
    source, rec = run_source(sources, rtsp_camera(rtsp_server), open_video_capture)
    assert wait_until(lambda: rec.n_frames() >= 10, 10), rec.names()
    assert rec.names() == ["camera_up"]
    shape = rec.frames[0].image.shape
    assert shape == (360, 640, 3)

    rtsp_server.kill()
    assert wait_until(lambda: rec.count("camera_down") == 1, 5)
    assert wait_until(lambda: rec.count("reconnect_attempt") >= 2, 5)
    assert not source.status().up
    assert rec.count("camera_down") == 1  # one outage, many retries
    before = rec.n_frames()

    rtsp_server.start()
    assert wait_until(lambda: rec.count("camera_up") == 2 and rec.n_frames() >= before + 10, 15), rec.names()
    assert source.status().up and source.is_alive()
    seqs = rec.seqs()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.slow
def test_rtsp_frozen_server_is_reported_by_check_stall(rtsp_server: RtspServer, sources: list[CameraSource]) -> None:
    stall_s = 1.5
    config = rtsp_camera(rtsp_server, stall_timeout_s=stall_s, read_timeout_s=5.0)
    source, rec = run_source(sources, config, open_video_capture)
    assert wait_until(lambda: rec.n_frames() >= 5, 10)

    rtsp_server.freeze()
    assert wait_until(lambda: source.check_stall(), 60)
    # reported by the stall check ("no frame for"), not by the blocked read's own 5-s timeout
    assert rec.count("camera_down") == 1 and rec.reasons()[0].startswith("no frame for")
    assert not source.status().up

    rtsp_server.thaw()
    assert wait_until(lambda: rec.count("camera_up") == 2, 20), rec.names()
    assert rec.count("camera_down") == 1
