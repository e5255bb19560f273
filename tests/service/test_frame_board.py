import threading

import numpy as np

from surveil.service.frame_board import FrameBoard
from surveil.types import Frame


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def frame(camera, seq):
    return Frame(camera, seq, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8))


def test_newest_frame_wins_and_overwrites_are_counted():
    drops = []
    board = FrameBoard(on_drop=drops.append)
    board.register("a")
    for seq in range(5):
        board.put(frame("a", seq))
    batch = board.take_batch(max_size=4, max_wait_s=0.0, stop=threading.Event())
    assert [f.seq for f in batch] == [4]
    assert drops == ["a"] * 4


def test_flushes_when_every_camera_has_a_frame():
    board = FrameBoard(clock=FakeClock())
    for cam in "abc":
        board.register(cam)
        board.put(frame(cam, 0))
    batch = board.take_batch(max_size=8, max_wait_s=1e9, stop=threading.Event())
    assert sorted(f.camera for f in batch) == ["a", "b", "c"]


def test_flushes_partial_batch_after_max_wait():
    clock = FakeClock()
    board = FrameBoard(clock=clock)
    for cam in "abc":
        board.register(cam)
    board.put(frame("a", 0))
    clock.now = 0.05
    batch = board.take_batch(max_size=8, max_wait_s=0.04, stop=threading.Event())
    assert [f.camera for f in batch] == ["a"]


def test_batch_capped_at_max_size_oldest_first():
    clock = FakeClock()
    board = FrameBoard(clock=clock)
    for i, cam in enumerate("abcd"):
        board.register(cam)
        clock.now = float(i)
        board.put(frame(cam, 0))
    batch = board.take_batch(max_size=2, max_wait_s=0.0, stop=threading.Event())
    assert [f.camera for f in batch] == ["a", "b"]
    assert board.pending() == 2


def test_stop_unblocks_waiting_consumer():
    board = FrameBoard()
    stop = threading.Event()
    result = []
    consumer = threading.Thread(target=lambda: result.append(board.take_batch(4, 1.0, stop, poll_s=0.01)))
    consumer.start()
    stop.set()
    consumer.join(timeout=5)
    assert not consumer.is_alive() and result == [[]]
