"""Properties of every tracker kind on random detection sequences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveil.config import TrackerConfig
from surveil.tracking import make_tracker
from surveil.types import Detections

box = st.tuples(st.floats(0, 300), st.floats(0, 300), st.floats(1, 80), st.floats(1, 120)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)
frame = st.tuples(
    st.lists(st.tuples(box, st.floats(0, 1), st.integers(0, 2)), max_size=8),
    st.floats(0.0, 2.0),  # time step; 0 = same time again
)
sequences = st.lists(frame, min_size=1, max_size=25)
configs = st.sampled_from(
    [
        TrackerConfig(),
        TrackerConfig(min_hits=1, lost_after_s=0.5),
        TrackerConfig(kind="iou-v1", min_hits=1),
    ]
)


def to_detections(items):
    if not items:
        return Detections.empty()
    boxes, scores, classes = zip(*items)
    return Detections.from_arrays(np.array(boxes, np.float32), scores, classes)


@settings(max_examples=150, deadline=None)
@given(sequences, configs)
def test_tracker_invariants(sequence, config):
    tracker = make_tracker(config, "cam")
    now, dropped, alive = 0.0, set(), set()
    for items, step in sequence:
        now += step
        detections = to_detections(items)
        copies = (detections.xyxy.copy(), detections.confidence.copy(), detections.class_id.copy())
        tracks = tracker.update(detections, now=now)
        # input not mutated
        for before, after in zip(copies, (detections.xyxy, detections.confidence, detections.class_id)):
            np.testing.assert_array_equal(before, after)
        ids = [t.track_id for t in tracks]
        assert len(ids) == len(set(ids)), "an id on two boxes in one frame"
        # a box shown as seen now is one of this frame's detections, of the same class
        inputs = {(tuple(float(v) for v in b), int(c)) for b, c in zip(detections.xyxy, detections.class_id)}
        seen = [t for t in tracks if t.missed == 0]
        for t in seen:
            assert (t.xyxy, t.class_id) in inputs
            assert t.last_seen == now
        assert len(seen) <= len(detections)
        # an id that left is never given again
        current = set(ids)
        assert not (current & dropped), "an id came back after it was dropped"
        dropped |= alive - current
        alive = current


@pytest.mark.parametrize("kind", ["surveil", "iou-v1"])
def test_two_seen_tracks_never_share_a_detection(kind):
    tracker = make_tracker(TrackerConfig(kind=kind, min_hits=1), "cam")
    same = Detections.from_arrays(np.array([[0, 0, 20, 60], [0, 0, 20, 60]], np.float32), [0.9, 0.9], [0, 0])
    for i in range(5):
        tracks = tracker.update(same, now=0.1 * i)
    assert len([t for t in tracks if t.missed == 0]) <= 2
