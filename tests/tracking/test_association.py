"""Association helpers: the centre-distance score on edge-case gates, without numpy warnings; the gallery cosine."""

from __future__ import annotations

import numpy as np
import pytest

from surveil.config import TrackerConfig
from surveil.tracking import make_tracker
from surveil.tracking.association import center_closeness, nearest_cosine
from surveil.types import Detections

TRACK = np.array([[0.0, 0.0, 10.0, 20.0]], np.float32)
NEAR = np.array([[2.0, 0.0, 12.0, 20.0], [100.0, 0.0, 110.0, 20.0]], np.float32)


def test_closeness_is_one_minus_distance_over_reach():
    closeness = center_closeness(TRACK, NEAR, 0.5)  # reach: 0.5 x height 20 = 10 px
    np.testing.assert_allclose(closeness, [[1.0 - 2.0 / 10.0, 0.0]], rtol=1e-6)
    assert closeness.dtype == np.float32


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("gate", [5e-324, 1e-310, 0.0])
def test_a_vanishing_gate_scores_zero_without_overflow(gate):
    # distance / (gate x height) overflowed for subnormal gates ("overflow encountered in divide") and
    # gave NaN for a gate of 0 at distance 0; only a centre exactly on the track's may score there
    same_and_apart = np.array([[0.0, 0.0, 10.0, 20.0], [2.0, 0.0, 12.0, 20.0]], np.float32)
    closeness = center_closeness(TRACK, same_and_apart, np.array([gate]))
    assert closeness[0, 1] == 0.0 and np.isfinite(closeness).all()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_bytetrack_after_a_subnormal_time_step_warns_nothing():
    # ByteTrack's centre-distance gate ramps up from 0 with the time since a track's last match: one
    # subnormal step of the caller's clock made that gate subnormal, and the division overflowed
    tracker = make_tracker(TrackerConfig(min_hits=1), "cam")
    step = 5e-324

    def boxes(*xyxy):
        return Detections.from_arrays(np.array(xyxy, np.float32), [0.9] * len(xyxy), [0] * len(xyxy))

    tracker.update(boxes([0, 0, 10, 20]), now=0.0)
    tracks = tracker.update(boxes([50, 0, 60, 20]), now=step)
    assert len(tracks) == 2  # too far in no time: a new track, not a jump


@pytest.mark.parametrize(
    ("galleries", "expected"),
    [
        ([[[1.0, 0.0]], [[0.0, 1.0], [0.6, 0.8]]], [[1.0, 0.0], [0.6, 1.0]]),  # best of each gallery
        ([[], [[1.0, 0.0]]], [[np.nan, np.nan], [1.0, 0.0]]),  # an empty gallery: unknown
        ([[[1.0, 0.0, 0.0]]], [[np.nan, np.nan]]),  # another embedding size: unknown
    ],
    ids=["nearest", "empty", "other-size"],
)
def test_nearest_cosine_is_the_best_match_in_each_gallery(galleries, expected):
    detections = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    got = nearest_cosine([[np.array(row, np.float32) for row in g] for g in galleries], detections)
    np.testing.assert_allclose(got, np.array(expected, np.float32), atol=1e-6)


def test_nearest_cosine_without_embedding_is_none():
    assert nearest_cosine([[np.ones(2, np.float32)]], None) is None
