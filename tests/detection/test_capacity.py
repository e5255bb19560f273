"""What a machine can do (surveil.detection.capacity): the arithmetic, the start-up timing and the bench's sizing line."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from surveil.detection import capacity
from surveil.detection.capacity import MeasuredRow, fair_shares, sizing_line, startup_capacity_lines


def test_fair_shares_split_evenly_and_pass_on_what_capped_cameras_leave():
    assert fair_shares(8.0, [None, None, None, None]) == [2.0] * 4
    assert fair_shares(8.0, [1.0, None, None, None]) == pytest.approx([1.0, 7 / 3, 7 / 3, 7 / 3])
    assert fair_shares(8.0, [10.0, 0.5, None]) == pytest.approx([3.75, 0.5, 3.75])
    assert fair_shares(2.0, [5.0]) == [2.0]
    assert fair_shares(9.0, [2.0, 2.0]) == [2.0, 2.0]  # both capped: capacity left over
    assert fair_shares(5.0, []) == []


def test_expected_fps_is_frames_per_second_over_cameras_capped_by_their_rate():
    assert capacity.expected_fps(0.25, [None, None]) == [2.0, 2.0]
    assert capacity.expected_fps(0.1, [None, 3.0]) == pytest.approx([7.0, 3.0])
    with pytest.raises(ValueError):
        capacity.expected_fps(0.0, [None])


def test_startup_lines_warn_only_for_cameras_starved_of_detector_time():
    info, warning = startup_capacity_lines(0.125, [("gate", None), ("yard", None)], "synthetic 1280x720 frame, fp32")
    assert info == (
        "detector: 125 ms per frame after warm-up (synthetic 1280x720 frame, fp32) = 8.0 frames/s for 2 camera(s); "
        "processed fps each can expect (at most its own frame rate): gate 4.0, yard 4.0"
    )
    assert warning is None
    _, warning = startup_capacity_lines(0.3, [("a", None), ("b", None)])  # 3.33 frames/s: 1.67 each
    assert warning is not None and "2 camera(s) can expect under 2 processed fps (a, b)" in warning
    assert "about 1 camera(s) at 2 fps" in warning
    # a camera limited to 1 fps by its own fps_limit is not starved: no warning for it
    _, warning = startup_capacity_lines(0.3, [("slow", 1.0), ("b", None)])
    assert warning is None


class SlowDetector:
    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, images):
        self.shapes.append(images[0].shape)
        return [None]


def test_measure_detector_times_after_one_warm_up_call_on_a_synthetic_frame():
    detector, ticks = SlowDetector(), itertools.count(0.0, 0.5)  # every clock read advances 0.5 s
    seconds = capacity.measure_detector(detector, calls=2, clock=lambda: next(ticks))
    assert detector.shapes == [(720, 1280, 3)] * 3  # warm-up + 2 timed
    assert seconds == 0.5


def test_measure_detector_stops_at_its_budget():
    detector, ticks = SlowDetector(), itertools.count(0.0, 10.0)
    capacity.measure_detector(detector, calls=5, budget_s=5.0, clock=lambda: next(ticks))
    assert len(detector.shapes) == 2  # warm-up + 1: the first timed call passed the budget


class Cam:
    def __init__(self, name, fps_limit=None):
        self.name, self.fps_limit = name, fps_limit


def test_log_startup_capacity_logs_and_warns(caplog):
    class Fixed(SlowDetector):
        device = "cpu"
        precision = "bf16"

    with caplog.at_level(logging.INFO, logger="test.capacity"):
        seconds = capacity.log_startup_capacity(
            Fixed(), [Cam("a"), Cam("b"), Cam("c")], logging.getLogger("test.capacity")
        )
    assert seconds is not None and seconds >= 0
    assert "ms per frame after warm-up (synthetic 1280x720 frame, bf16)" in caplog.text


def test_log_startup_capacity_skips_cuda_and_survives_a_failing_detector(caplog):
    class OnCuda(SlowDetector):
        device = "cuda:0"

    class Broken:
        def detect(self, images):
            raise RuntimeError("boom")

    assert capacity.log_startup_capacity(OnCuda(), [Cam("a")]) is None
    with caplog.at_level(logging.WARNING):
        assert capacity.log_startup_capacity(Broken(), [Cam("a")]) is None
    assert "detector timing at start failed" in caplog.text


def row(cameras, lowest, processed=None, offered=100.0):
    return MeasuredRow(cameras, lowest, processed if processed is not None else lowest * cameras, offered)


def test_sizing_names_the_largest_count_with_2_fps_per_camera():
    rows = [row(1, 3.2), row(2, 2.4), row(4, 1.6), row(8, 0.8)]
    assert sizing_line(rows) == (
        "this machine sustains 2 camera(s) at 2.40 processed fps each with this config (largest measured count with ≥ 2 fps each)"
    )
    assert sizing_line(rows, 6.4).endswith("; by the bare model's 6.40 frames/s, about 3 camera(s) at 2 fps")


def test_sizing_counts_cameras_that_offer_less_than_2_fps_when_all_their_frames_were_processed():
    rows = [row(4, 1.0, processed=4.0, offered=4.0), row(8, 0.5, processed=3.0, offered=4.0)]
    line = sizing_line(rows)
    assert line.startswith("this machine sustains 4 camera(s) at 1.00 processed fps each")
    assert "every offered frame processed" in line


def test_sizing_when_no_count_is_sustained():
    line = sizing_line([row(1, 1.5), row(4, 0.4)])
    assert line.startswith("this machine sustains none of the measured camera counts at 2 processed fps per camera")
    assert "1 camera(s): 1.50, 4 camera(s): 0.40" in line


def test_synthetic_frame_is_the_same_every_time():
    class Keep(SlowDetector):
        def detect(self, images):
            self.frame = images[0]
            return super().detect(images)

    a, b = Keep(), Keep()
    capacity.measure_detector(a, calls=1)
    capacity.measure_detector(b, calls=1)
    assert np.array_equal(a.frame, b.frame)
