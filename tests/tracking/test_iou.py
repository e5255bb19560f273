import numpy as np
import pytest

from surveil.geometry import box_iou
from surveil.tracking.iou import IouTracker
from surveil.types import Detections


def dets(*boxes, cls=0, score=0.9):
    return Detections.from_arrays(np.array(boxes, np.float32).reshape(-1, 4), [score] * len(boxes), [cls] * len(boxes))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [0, 0, 0, 0], 0.0),
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(np.array([a], np.float32), np.array([b], np.float32))[0, 0] == pytest.approx(expected)


def test_ids_stable_while_objects_move_and_confirmed_after_min_hits():
    tracker = IouTracker("cam", iou_threshold=0.3, max_missed=2, min_hits=2)
    assert tracker.update(dets([0, 0, 10, 20], [50, 50, 60, 70]), now=0.0) == []  # tentative
    ids = None
    for step in range(1, 10):
        tracks = tracker.update(dets([step, 0, 10 + step, 20], [50 - step, 50, 60 - step, 70]), now=float(step))
        assert len(tracks) == 2
        current = sorted(t.track_id for t in tracks)
        ids = ids or current
        assert current == ids


def test_track_survives_missed_frames_then_expires():
    tracker = IouTracker("cam", max_missed=2, min_hits=1)
    first = tracker.update(dets([0, 0, 10, 10]), now=0)[0].track_id
    assert tracker.update(Detections.empty(), now=1)[0].missed == 1
    assert tracker.update(Detections.empty(), now=2)[0].missed == 2
    assert tracker.update(dets([1, 0, 11, 10]), now=3)[0].track_id == first
    for t in range(4, 7):
        remaining = tracker.update(Detections.empty(), now=t)
    assert remaining == []
    assert tracker.update(dets([1, 0, 11, 10]), now=8)[0].track_id != first


def test_classes_are_not_matched_across():
    tracker = IouTracker("cam", min_hits=1)
    person = tracker.update(dets([0, 0, 10, 10], cls=1), now=0)[0].track_id
    tracks = tracker.update(dets([0, 0, 10, 10], cls=2), now=1)
    assert {t.track_id for t in tracks if t.missed == 0} != {person}


def test_input_detections_not_mutated():
    d = dets([0, 0, 10, 10])
    before = d.xyxy.copy()
    tracker = IouTracker("cam", min_hits=1)
    tracker.update(d, now=0)
    tracker.update(dets([2, 2, 12, 12]), now=1)
    np.testing.assert_array_equal(d.xyxy, before)


@pytest.mark.parametrize("kwargs", [{"iou_threshold": 0}, {"iou_threshold": 1.5}, {"min_hits": 0}, {"max_missed": -1}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        IouTracker("cam", **kwargs)


def walker(step, speed=30.0):
    """A 20x60 'person' moving right by ``speed`` px per frame: no overlap between frames at speed >= 20."""
    x = 10 + step * speed
    return [x, 100, x + 20, 160]


@pytest.mark.parametrize(
    ("max_center_distance", "one_identity"),
    [(0.6, True), (0.0, False)],
    ids=["distance-stage-keeps-identity", "iou-only-loses-it"],
)
def test_low_frame_rate_walker(max_center_distance, one_identity):
    tracker = IouTracker("cam", min_hits=1, max_center_distance=max_center_distance)
    ids = set()
    for step in range(8):
        tracks = tracker.update(dets(walker(step)), now=float(step))
        ids |= {t.track_id for t in tracks if t.missed == 0}
    assert (len(ids) == 1) is one_identity


def test_velocity_prediction_keeps_fast_walker_with_iou_alone():
    # left edges 0, 10, then +15 per frame on a 20 px wide box: from frame 2 on, the last box and the
    # new one overlap by IoU 5/35 < 0.3, but the box moved by the track's velocity overlaps well
    xs = [0, 10, 25, 40, 55, 70, 85]
    tracker = IouTracker("cam", min_hits=1, max_center_distance=0.0)
    ids = set()
    for step, x in enumerate(xs):
        tracks = tracker.update(dets([x, 100, x + 20, 160]), now=float(step))
        ids |= {t.track_id for t in tracks if t.missed == 0}
    assert len(ids) == 1


def test_distance_stage_respects_size_and_class():
    tracker = IouTracker("cam", min_hits=1)
    first = tracker.update(dets([0, 100, 20, 160]), now=0)[0].track_id
    # a box far bigger nearby is another object, not the same one
    tracks = tracker.update(dets([25, 40, 85, 220]), now=1)
    assert first not in {t.track_id for t in tracks if t.missed == 0}


@pytest.mark.parametrize("tiny_step", [1e-50, 5e-324, 1e-9])
def test_a_vanishing_time_step_keeps_the_walker_and_its_velocity_finite(tiny_step):
    """Updates a sub-millisecond apart once overflowed the float32 velocity (inf/NaN) and gave the
    same walker a new id at the next frame."""
    tracker = IouTracker("cam", iou_threshold=0.3, max_missed=2, min_hits=1)
    with np.errstate(all="raise"):
        first = tracker.update(dets([0, 0, 10, 20]), now=0.0)
        tracker.update(dets([1, 0, 11, 20]), now=tiny_step)
        last = tracker.update(dets([2, 0, 12, 20]), now=1.0)
    assert [t.track_id for t in last] == [t.track_id for t in first]
