"""Detector isolation, the fast tier: the shared-memory slot protocol, the worker's request loop (in a
thread, over a real pipe), back-off, the death window, lane sizing and the board shared by lanes.

The tests that spawn worker processes are in test_detector_worker_process.py (slow)."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from surveil.config import DetectorConfig
from surveil.detection.worker import FrameSlots, SlotTooSmall, pack, serve, slot_bytes_for, unpack
from surveil.service.detector_worker import Backoff, DeathLog, exit_reason, lane_configs
from surveil.service.frame_board import FrameBoard
from surveil.types import Detections, Frame


def image(h: int, w: int, c: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def slots():
    made = FrameSlots.create(slots=4, slot_bytes=slot_bytes_for([image(120, 160)]))
    yield made
    made.close()


@pytest.mark.parametrize(
    "images",
    [
        [image(120, 160)],
        [image(120, 160, seed=1), image(60, 80, seed=2), image(120, 160, seed=3), image(10, 10, seed=4)],
        [image(100, 100, c=None)],  # grey frames keep their shape (H, W)
        [image(119, 161, seed=5)],  # odd sizes: no row padding assumed
    ],
)
def test_frames_written_are_read_back_unchanged_by_another_handle(slots, images):
    shapes = slots.write(images)
    other = FrameSlots.attach(slots.name, slots.slot_bytes)  # what the worker does, by name
    try:
        read = other.read(shapes)
        for original, seen in zip(images, read):
            assert np.array_equal(seen.reshape(original.shape), original)
    finally:
        other.close()


@pytest.mark.parametrize(
    "images",
    [
        [image(240, 320)],  # larger than a slot
        [image(10, 10)] * 5,  # more frames than slots
    ],
)
def test_frames_that_do_not_fit_are_refused_not_truncated(slots, images):
    assert not slots.fits(images)
    with pytest.raises(SlotTooSmall):
        slots.write(images)


def test_non_uint8_frames_are_refused(slots):
    with pytest.raises(ValueError, match="uint8"):
        slots.write([np.zeros((10, 10, 3), np.float32)])


@pytest.mark.parametrize(
    ("sizes", "at_least", "expected"),
    [([(1, 1, 1)], 0, 4096), ([(120, 160, 3)], 0, 61440), ([(10, 10, 3)], 61440, 61440), ([(64, 64, 1)], 1, 4096)],
)
def test_slot_size_rounds_up_to_pages(sizes, at_least, expected):
    assert slot_bytes_for([np.zeros(s, np.uint8) for s in sizes], at_least) == expected


def test_closing_the_owner_removes_the_segment():
    made = FrameSlots.create(1, 4096)
    name = made.name
    made.close()
    with pytest.raises(FileNotFoundError):
        FrameSlots.attach(name, 4096)


@pytest.mark.parametrize("embedding", [None, np.eye(2, 8, dtype=np.float32)])
def test_detections_survive_packing(embedding):
    dets = Detections.from_arrays([[1, 2, 3, 4], [5, 6, 7, 8]], [0.9, 0.4], [1, 3], embedding)
    back = unpack(pack(dets))
    for field in ("xyxy", "confidence", "class_id"):
        assert np.array_equal(getattr(back, field), getattr(dets, field))
    assert (back.embedding is None) == (embedding is None)
    if embedding is not None:
        assert np.array_equal(back.embedding, embedding)


class MeanDetector:
    """One box per frame whose score is the frame's mean pixel / 255: proves the worker read the real pixels."""

    def __init__(self, fail: bool = False):
        self.class_names = ["__background__", "thing"]
        self.fail = fail

    def detect(self, images):
        if self.fail:
            raise RuntimeError("boom")
        return [
            Detections.from_arrays([[0, 0, i.shape[1], i.shape[0]]], [i.mean() / 255], [1], np.ones((1, 4)) / 2)
            for i in images
        ]


@pytest.fixture
def served():
    """serve() in a thread on one end of a real pipe; yields (daemon end, slots, detector)."""
    ours, theirs = multiprocessing.Pipe()
    detector = MeanDetector()
    thread = threading.Thread(target=serve, args=(theirs, detector), daemon=True)
    thread.start()
    made = FrameSlots.create(4, slot_bytes_for([image(64, 64)]))
    yield ours, made, detector
    ours.send(("stop",))
    thread.join(timeout=5)
    made.close()
    assert not thread.is_alive()


def test_the_request_loop_answers_each_frame_in_order(served):
    conn, slots, _ = served
    images = [image(64, 64, seed=s) for s in range(3)]
    conn.send(("detect", 7, slots.name, slots.slot_bytes, slots.write(images)))
    kind, seq, packed, seconds, implausible = conn.recv()
    assert (kind, seq, len(packed), implausible) == ("result", 7, 3, 0)  # a detector that keeps no count: 0
    assert seconds >= 0
    for original, result in zip(images, map(unpack, packed)):
        assert result.confidence[0] == pytest.approx(original.mean() / 255, rel=1e-5)
        assert result.embedding is not None and result.embedding.shape == (1, 4)


def test_the_request_loop_follows_a_new_segment(served):
    conn, _slots, _ = served
    bigger = FrameSlots.create(2, slot_bytes_for([image(128, 128)]))
    try:
        frame = image(128, 128, seed=9)
        conn.send(("detect", 1, bigger.name, bigger.slot_bytes, bigger.write([frame])))
        _, _, packed, _, _ = conn.recv()
        assert unpack(packed[0]).xyxy[0].tolist() == [0, 0, 128, 128]
    finally:
        bigger.close()


def test_a_detector_error_is_answered_not_fatal(served):
    conn, slots, detector = served
    detector.fail = True
    conn.send(("detect", 2, slots.name, slots.slot_bytes, slots.write([image(8, 8)])))
    assert conn.recv()[:2] == ("error", 2)
    detector.fail = False
    conn.send(("detect", 3, slots.name, slots.slot_bytes, slots.write([image(8, 8)])))
    assert conn.recv()[:2] == ("result", 3)


def test_each_answer_carries_the_boxes_the_detector_dropped_in_that_batch(served):
    conn, slots, detector = served
    detector.implausible_boxes = 40  # dropped before these batches: not this batch's

    def dropping(images, detect=detector.detect):
        detector.implausible_boxes += 2 * len(images)
        return detect(images)

    detector.detect = dropping
    for seq, count in ((1, 3), (2, 1)):
        conn.send(("detect", seq, slots.name, slots.slot_bytes, slots.write([image(8, 8)] * count)))
        assert conn.recv()[4] == 2 * count


@pytest.mark.parametrize(
    ("min_s", "max_s", "runs", "expected"),
    [
        (0.5, 30, [0, 0, 0, 0], [0.5, 1, 2, 4]),
        (0.5, 3, [0, 0, 0, 0, 0], [0.5, 1, 2, 3, 3]),  # capped
        (1, 30, [0, 0, 120, 0], [1, 2, 1, 2]),  # ran longer than healthy_after_s: the series starts again
        (2, 2, [0, 0], [2, 2]),
        (5, 1, [0, 0], [5, 5]),  # a minimum above the maximum wins
    ],
)
def test_backoff_doubles_up_to_the_cap_and_resets_after_a_healthy_run(min_s, max_s, runs, expected):
    backoff = Backoff(min_s, max_s, healthy_after_s=60)
    assert [backoff.next_delay(ran) for ran in runs] == expected


@pytest.mark.parametrize(
    ("deaths_at", "now", "failing"),
    [
        ([0, 10, 20], 21, True),
        ([0, 10], 21, False),  # too few
        ([0, 40, 80], 81, False),  # spread wider than the window: the first has left it
        ([0, 40, 80, 90], 91, True),
    ],
)
def test_deaths_within_the_window_mark_the_worker_failing(deaths_at, now, failing):
    log = DeathLog(limit=3, window_s=60)
    for at in deaths_at:
        log.died(at, f"died at {at}")
    why = log.failing(now)
    assert (why is not None) == failing
    if failing:
        assert f"died at {deaths_at[-1]}" in why


@pytest.mark.parametrize(
    ("exitcode", "kind", "words"),
    [(-9, "killed", "SIGKILL"), (-11, "killed", "SIGSEGV"), (1, "exited", "status 1"), (0, "exited", "status 0")],
)
def test_exit_reasons(exitcode, kind, words):
    got_kind, why = exit_reason(exitcode)
    assert got_kind == kind and words in why


@pytest.mark.parametrize(
    ("options", "names", "devices", "threads"),
    [
        ({}, ["worker-0"], ["auto"], [None]),
        ({"workers": 2, "device": "cpu"}, ["worker-0", "worker-1"], ["cpu", "cpu"], ["split", "split"]),
        ({"workers": 2, "threads": 3}, ["worker-0", "worker-1"], ["auto", "auto"], [3, 3]),
        ({"devices": ["cuda:0", "cuda:1"], "workers": 5}, ["cuda:0-0", "cuda:1-1"], ["cuda:0", "cuda:1"], [None, None]),
    ],
)
def test_lanes_follow_devices_or_workers(options, names, devices, threads):
    lanes = lane_configs(DetectorConfig(**options))
    split = max(1, (multiprocessing.cpu_count() or 1) // len(lanes))
    assert [n for n, _ in lanes] == names
    assert [c.device for _, c in lanes] == devices
    assert [c.threads for _, c in lanes] == [split if t == "split" else t for t in threads]
    assert all(c.workers == 1 and c.devices == [] for _, c in lanes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"devices": ["gpu0"]}, "devices must be"),
        ({"worker_restart_max_s": 0.01}, "greater than or equal"),
        ({"workers": 0}, "greater than or equal"),
        ({"isolation": "fork"}, "isolation"),
    ],
)
def test_worker_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**options)


def frame(camera: str, seq: int = 0) -> Frame:
    return Frame(camera=camera, seq=seq, ts_mono=float(seq), ts_wall=0.0, image=np.zeros((2, 2, 3), np.uint8))


def test_two_lanes_split_the_cameras_and_never_share_one_in_flight():
    now = [0.0]
    board = FrameBoard(clock=lambda: now[0], lanes=2)
    stop = threading.Event()
    for camera in "abcd":
        board.register(camera)
        board.put(frame(camera))
    first = board.take_batch(max_size=4, max_wait_s=1.0, stop=stop)
    second = board.take_batch(max_size=4, max_wait_s=1.0, stop=stop)
    assert len(first) == len(second) == 2  # each lane's share of 4 delivering cameras
    assert {f.camera for f in first} | {f.camera for f in second} == set("abcd")
    now[0] = 5.0
    for camera in "abcd":
        board.put(frame(camera, 1))
    board.release([f.camera for f in first])  # the second lane's cameras are still in flight
    third = board.take_batch(max_size=4, max_wait_s=1.0, stop=stop)
    assert {f.camera for f in third} == {f.camera for f in first}
