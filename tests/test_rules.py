import numpy as np
import pytest

from surveil.rules import FrameInfo, Zone, ZoneIntrusionRule, points_in_polygon
from surveil.types import Track

SQUARE = np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]])


@pytest.mark.parametrize(
    ("point", "inside"),
    [((0.5, 0.5), True), ((0.1, 0.5), False), ((0.5, 0.9), False), ((0.74, 0.74), True), ((0.76, 0.5), False)],
)
def test_points_in_polygon(point, inside):
    assert bool(points_in_polygon(np.array([point]), SQUARE)[0]) is inside


def test_concave_polygon():
    u_shape = np.array([[0, 0], [1, 0], [1, 1], [0.6, 1], [0.6, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]], float)
    result = points_in_polygon(np.array([[0.5, 0.8], [0.2, 0.8], [0.5, 0.1]]), u_shape)
    assert result.tolist() == [False, True, True]


def track(track_id, xyxy, class_id=1, missed=0):
    return Track(track_id, "cam", class_id, tuple(map(float, xyxy)), 0.9, 0.0, 0.0, 3, missed)


def frame(seq):
    return FrameInfo("cam", 100, 100, ts_wall=1000.0 + seq, ts_mono=float(seq), seq=seq)


def make_rule(min_frames=3, classes=frozenset({1})):
    return ZoneIntrusionRule("cam", Zone("door", SQUARE, classes), min_frames, ["__background__", "person", "car"])


def test_one_alert_per_track_after_min_frames():
    rule = make_rule(min_frames=3)
    inside = [40, 20, 60, 50]  # bottom centre (50, 50): inside
    events = [rule.evaluate(frame(i), [track(7, inside)]) for i in range(10)]
    counts = [len(e) for e in events]
    assert counts == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    event = events[2][0]
    assert (event.track_id, event.zone, event.class_name, event.frame_seq) == (7, "door", "person", 2)


def test_flicker_resets_inertia():
    rule = make_rule(min_frames=3)
    inside, outside = [40, 20, 60, 50], [0, 0, 10, 10]
    sequence = [inside, inside, outside, inside, inside, inside]
    counts = [len(rule.evaluate(frame(i), [track(1, box)])) for i, box in enumerate(sequence)]
    assert counts == [0, 0, 0, 0, 0, 1]


def test_anchor_is_bottom_centre():
    rule = make_rule(min_frames=1)
    head_inside_feet_outside = [40, 40, 60, 90]  # centre (50, 65) inside, feet (50, 90) outside
    assert rule.evaluate(frame(0), [track(1, head_inside_feet_outside)]) == []


def test_class_filter_and_missed_tracks_ignored():
    rule = make_rule(min_frames=1)
    inside = [40, 20, 60, 50]
    assert rule.evaluate(frame(0), [track(1, inside, class_id=2)]) == []
    assert rule.evaluate(frame(1), [track(2, inside, missed=1)]) == []
    assert len(rule.evaluate(frame(2), [track(3, inside)])) == 1


def test_two_objects_two_alerts():
    rule = make_rule(min_frames=2)
    tracks = [track(1, [30, 20, 40, 50]), track(2, [55, 20, 65, 50])]
    events = [e for i in range(5) for e in rule.evaluate(frame(i), tracks)]
    assert sorted(e.track_id for e in events) == [1, 2]
