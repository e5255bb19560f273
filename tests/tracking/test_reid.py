"""Re-identification in the default tracker: appearance across gaps and inside groups (issue 17)."""

import numpy as np
import pytest
from pydantic import ValidationError

from surveil.config import TrackerConfig
from surveil.tracking import make_tracker
from surveil.tracking.bytetrack import ByteTracker
from surveil.types import Detections

RED = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
BLUE = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
REDDISH = np.array([0.97, 0.0, 0.243, 0.0], np.float32)  # cosine 0.97 with RED


def dets(boxes, looks=None, score=0.9):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    embedding = None if looks is None else np.stack(looks)
    return Detections.from_arrays(boxes, [score] * len(boxes), [0] * len(boxes), embedding)


def box(x, y=100.0):
    """A 20x60 person with the top-left corner at (x, y)."""
    return [x, y, x + 20, y + 60]


def seen(tracks):
    return {t.track_id: t for t in tracks if t.missed == 0}


def walk(tracker, start, stop, x_at, look, fps=5.0):
    """Feed one person at x_at(t) from ``start`` to ``stop`` s; returns the ids seen in the last update."""
    tracks = []
    for t in np.arange(start, stop, 1 / fps):
        tracks = tracker.update(dets([box(x_at(t))], None if look is None else [look]), now=float(t))
    return set(seen(tracks))


@pytest.mark.parametrize(
    ("look_after", "gap_s", "same_id"),
    [
        (RED, 6.0, True),  # occluded 6 s (beyond lost_after_s = 3), same look: re-attached
        (REDDISH, 6.0, True),  # lighting changed a little
        (BLUE, 6.0, False),  # somebody else appears there: a new id
        (RED, 25.0, False),  # beyond the 20-s re-identification window
    ],
    ids=["same-look", "similar-look", "other-look", "past-window"],
)
def test_occluded_person_comes_back(look_after, gap_s, same_id):
    tracker = make_tracker(TrackerConfig(), "cam")
    before = walk(tracker, 0.0, 3.0, lambda t: 50 + 10 * t, RED)
    assert len(before) == 1
    for t in np.arange(3.0, 3.0 + gap_s, 0.2):  # nobody detected: occluded
        tracker.update(dets([]), now=float(t))
    after = walk(tracker, 3.0 + gap_s, 3.0 + gap_s + 1.0, lambda t: 80 + 5 * (t - 3.0 - gap_s), look_after)
    assert len(after) == 1
    assert (after == before) is same_id


def test_dormant_track_is_not_reported():
    tracker = make_tracker(TrackerConfig(lost_after_s=2.0), "cam")
    walk(tracker, 0.0, 2.0, lambda t: 50 + 10 * t, RED)
    tracks = []
    for t in np.arange(2.0, 6.0, 0.2):
        tracks = tracker.update(dets([]), now=float(t))
    assert tracks == []  # lost for 4 s > lost_after_s: dormant, waiting for re-identification


def test_implausible_jump_gets_new_id():
    tracker = make_tracker(TrackerConfig(reid_max_speed=0.5), "cam")
    before = walk(tracker, 0.0, 2.0, lambda t: 20 + 10 * t, RED)
    for t in np.arange(2.0, 7.0, 0.2):
        tracker.update(dets([]), now=float(t))
    # 5 s later, 400 px away (a 60-px person covers at most (1 + 0.5 x 5) x 60 = 210 px)
    after = walk(tracker, 7.0, 8.0, lambda t: 420.0, RED)
    assert after and after != before


# (time s, x of person A, x of person B): they walk towards each other, meet and turn back at 2 fps
MEET_AND_TURN = [(0.0, 100.0, 200.0), (0.5, 120.0, 180.0), (1.0, 140.0, 160.0), (1.5, 150.0, 152.0)]
MEET_AND_TURN += [(2.0, 150.0, 170.0), (2.5, 130.0, 190.0), (3.0, 110.0, 210.0)]


@pytest.mark.parametrize(("with_appearance", "keeps_ids"), [(True, True), (False, False)])
def test_crossing_people_keep_ids_by_appearance(with_appearance, keeps_ids):
    """Two people walk towards each other, meet and turn back (at 2 fps, no overlap to tell them apart
    by motion once they reverse). Their looks decide who is who."""
    tracker = ByteTracker("cam", max_center_distance=1.5, appearance_weight=0.8, appearance_veto=0.5)
    ids = {}
    for t, xa, xb in MEET_AND_TURN:
        looks = [RED, BLUE] if with_appearance else None
        tracks = seen(tracker.update(dets([box(xa), box(xb)], looks), now=t))
        if t == 1.0:
            ids = {tid: track.xyxy[0] for tid, track in tracks.items()}
    assert len(ids) == 2
    final = seen(tracker.update(dets([box(100.0), box(220.0)], [RED, BLUE] if with_appearance else None), now=3.5))
    left_id = min(ids, key=lambda tid: ids[tid])  # the one that started on the left (red)
    left_now = min(final, key=lambda tid: final[tid].xyxy[0])
    assert (left_now == left_id) is keeps_ids


GREEN = np.array([0.0, 0.0, 1.0, 0.0], np.float32)
MIX = np.array([0.707107, 0.0, 0.707107, 0.0], np.float32)  # halfway between RED and GREEN


@pytest.mark.parametrize(("gallery", "keeps_ids"), [(10, True), (1, False)])
def test_a_person_with_two_views_is_told_from_one_who_looks_like_their_average(gallery, keeps_ids):
    """A is seen front (RED) and back (GREEN) in turn, B always looks like the average of the two. They
    meet and turn back, so motion says they swapped. A moving average of A's views is B's look; the
    nearest of A's own recent views is not (DeepSORT's nearest-neighbour metric)."""
    tracker = ByteTracker("cam", max_center_distance=1.5, appearance_weight=0.8, appearance_gallery=gallery)
    ids = {}
    for step, (t, xa, xb) in enumerate(MEET_AND_TURN):
        look_a = RED if step % 2 == 0 else GREEN
        tracks = seen(tracker.update(dets([box(xa), box(xb)], [look_a, MIX]), now=t))
        if t == 1.0:
            ids = {tid: track.xyxy[0] for tid, track in tracks.items()}
    assert len(ids) == 2
    final = seen(tracker.update(dets([box(100.0), box(220.0)], [GREEN, MIX]), now=3.5))
    left_id = min(ids, key=lambda tid: ids[tid])  # A, who started on the left
    left_now = min(final, key=lambda tid: final[tid].xyxy[0])
    assert (left_now == left_id) is keeps_ids


def test_no_embedding_behaves_as_motion_only():
    """Without embeddings, re-identification settings change nothing."""
    rng = np.random.default_rng(3)
    plain = make_tracker(TrackerConfig(), "a")
    off = make_tracker(TrackerConfig(reid_window_s=0, appearance_weight=0, appearance_veto=0), "b")
    for i in range(60):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.c_[xy, xy + np.array([20.0, 60.0])]
        scores = rng.uniform(0.05, 1.0, n)
        d = Detections.from_arrays(boxes, scores, np.zeros(n))
        a, b = plain.update(d, now=i * 0.4), off.update(d, now=i * 0.4)
        assert [(t.track_id, t.xyxy, t.missed) for t in a] == [(t.track_id, t.xyxy, t.missed) for t in b]
        assert all(t.embedding is None for t in a)


def test_tracks_carry_unit_embedding_and_inputs_untouched():
    tracker = make_tracker(TrackerConfig(), "cam")
    d = dets([box(50)], [REDDISH])
    before = d.embedding.copy()
    tracker.update(d, now=0.0)
    tracks = tracker.update(dets([box(52)], [RED]), now=0.2)
    assert len(tracks) == 1
    assert tracks[0].embedding is not None
    assert np.linalg.norm(tracks[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(d.embedding, before)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("appearance_weight", -0.1),
        ("appearance_weight", 1.1),
        ("appearance_momentum", 1.0),
        ("reid_window_s", -1),
        ("reid_window_s", 121),
        ("reid_similarity", 0.4),
        ("reid_similarity", 1.1),
        ("reid_margin", 0.6),
        ("reid_max_speed", 0.0),
        ("reid_max_speed", 11),
        ("appearance_gallery", 0),
        ("appearance_gallery", 101),
    ],
)
def test_config_bounds(field, value):
    with pytest.raises(ValidationError):
        TrackerConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("appearance_weight", 0.0), ("appearance_weight", 1.0), ("reid_window_s", 0), ("reid_window_s", 120)],
)
def test_config_bounds_inclusive(field, value):
    assert isinstance(make_tracker(TrackerConfig(**{field: value}), "cam"), ByteTracker)


def test_held_ids_are_the_dormant_tracks_until_given_back_or_let_go():
    tracker = ByteTracker("cam", lost_after_s=2.0, reid_window_s=10.0)
    (first,) = walk(tracker, 0.0, 2.0, lambda t: 50 + 10 * t, RED)
    held = {}
    for t in (3.0, 5.0, 13.0):  # lost at 1.8 s: reported until 3.8 s, then dormant until 11.8 s, then dropped
        tracker.update(dets([]), now=t)
        held[t] = tracker.held_ids()
    assert held == {3.0: frozenset(), 5.0: {first}, 13.0: frozenset()}
    tracker = ByteTracker("cam", lost_after_s=2.0, reid_window_s=10.0)
    walk(tracker, 0.0, 2.0, lambda t: 50 + 10 * t, RED)
    tracker.update(dets([]), now=6.0)
    assert walk(tracker, 6.0, 7.0, lambda t: 75.0, RED) == {first} and tracker.held_ids() == frozenset()
