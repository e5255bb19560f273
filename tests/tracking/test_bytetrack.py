import numpy as np
import pytest

from surveil.config import TrackerConfig
from surveil.tracking import Tracker, make_tracker
from surveil.tracking.bytetrack import ByteTracker
from surveil.tracking.iou import IouTracker
from surveil.types import Detections


def dets(*boxes, scores=None, cls=0):
    scores = [0.9] * len(boxes) if scores is None else scores
    return Detections.from_arrays(np.array(boxes, np.float32).reshape(-1, 4), scores, [cls] * len(boxes))


def walker(t, speed=40.0, x0=10.0):
    """A 20x60 'person' moving right at ``speed`` px/s; its box at time ``t``."""
    x = x0 + t * speed
    return [x, 100, x + 20, 160]


def seen_ids(tracks):
    return {t.track_id for t in tracks if t.missed == 0}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("surveil", ByteTracker), ("iou-v1", IouTracker), (None, ByteTracker)],
)
def test_factory_builds_each_kind(kind, expected):
    config = TrackerConfig() if kind is None else TrackerConfig(kind=kind)
    tracker = make_tracker(config, "cam")
    assert isinstance(tracker, expected)
    assert isinstance(tracker, Tracker)


def test_factory_rejects_unknown_kind():
    with pytest.raises(ValueError):
        TrackerConfig(kind="nope")


@pytest.mark.parametrize(
    ("scores_after_birth", "survives"),
    [
        ([0.9, 0.2, 0.2, 0.2], True),  # low-score boxes keep a live track (second pass)
        ([0.9, 0.05, 0.05, 0.05], False),  # below the low floor: nothing to match, lost after 0.5 s
    ],
    ids=["low-score-rescue", "below-floor-lost"],
)
def test_low_score_rescue(scores_after_birth, survives):
    tracker = ByteTracker("cam", high_score=0.5, low_score=0.1, birth_score=0.6, min_hits=2, lost_after_s=0.5)
    tracker.update(dets(walker(0.0)), now=0.0)
    first = seen_ids(tracker.update(dets(walker(0.1)), now=0.1))
    assert len(first) == 1
    for i, score in enumerate(scores_after_birth):
        t = 0.2 + 0.2 * i
        tracks = tracker.update(dets(walker(t), scores=[score]), now=t)
    assert (seen_ids(tracks) == first) is survives


@pytest.mark.parametrize(
    ("score", "confident", "births"),
    [
        (0.2, None, False),  # low-score detections never start tracks
        (0.55, None, False),  # high but below birth_score
        (0.7, None, True),
        (0.7, [False], False),  # the detector's mask says it is not high-score
        (0.45, [True], False),  # high by the mask, still below birth_score
    ],
)
def test_birth_gate(score, confident, births):
    tracker = ByteTracker("cam", high_score=0.5, low_score=0.1, birth_score=0.6, min_hits=1)
    mask = None if confident is None else np.array(confident)
    tracks = tracker.update(dets([0, 0, 10, 30], scores=[score]), now=0.0, confident=mask)
    assert (len(tracks) == 1) is births


@pytest.mark.parametrize("fps", [1.0, 5.0, 25.0])
def test_lost_after_seconds_regardless_of_frame_count(fps):
    tracker = ByteTracker("cam", min_hits=1, lost_after_s=2.0)
    first = tracker.update(dets([0, 0, 20, 60]), now=0.0)[0].track_id
    t, alive_until = 0.0, 0.0
    while t < 4.0:
        t += 1.0 / fps
        if any(tr.track_id == first for tr in tracker.update(Detections.empty(), now=t)):
            alive_until = t
    assert 2.0 - 1.0 / fps - 1e-9 <= alive_until <= 2.0 + 1e-9


@pytest.mark.parametrize("jump", [-3600.0, -5.0, -0.01])
def test_clock_stepping_back_keeps_tracks_and_time_goes_on(jump):
    tracker = ByteTracker("cam", min_hits=1, lost_after_s=1.0)
    first = tracker.update(dets(walker(0.0)), now=100.0)[0].track_id
    tracker.update(dets(walker(0.2)), now=100.2)
    # the clock steps back: the track is kept and matched, nothing is predicted backwards
    tracks = tracker.update(dets(walker(0.4)), now=100.2 + jump)
    assert seen_ids(tracks) == {first}
    assert all(np.isfinite(tr.xyxy).all() for tr in tracks)
    # after it, time runs on from the new value: a track unseen for > lost_after_s is gone
    for i in range(1, 13):
        tracks = tracker.update(Detections.empty(), now=100.2 + jump + 0.1 * i)
    assert tracks == []


def test_skipped_frames_are_predicted_through():
    # a walker at 100 px/s, 20 px wide: 1 s between processed frames moves it 5 widths
    tracker = ByteTracker("cam", min_hits=1, max_center_distance=0.0)  # IoU only
    ids = set()
    for t in [0.0, 0.1, 0.2, 0.3, 1.3, 2.3, 3.3]:
        ids |= seen_ids(tracker.update(dets(walker(t, speed=100.0)), now=t))
    assert len(ids) == 1


def test_missed_track_is_never_presented_as_seen():
    tracker = ByteTracker("cam", min_hits=1, lost_after_s=5.0)
    tracker.update(dets(walker(0.0)), now=0.0)
    tracker.update(dets(walker(0.5)), now=0.5)
    (track,) = tracker.update(Detections.empty(), now=1.0)
    assert track.missed == 1
    assert track.last_seen == 0.5
    assert track.xyxy != tuple(walker(0.5))  # a predicted box, moved on
    assert track.xyxy[0] > walker(0.5)[0]


def test_velocity_decays_while_lost():
    tracker = ByteTracker("cam", min_hits=1, lost_after_s=30.0, velocity_decay_s=1.0)
    for t in (0.0, 0.5, 1.0, 1.5):
        tracker.update(dets(walker(t)), now=t)
    (track,) = tracker.update(Detections.empty(), now=21.5)
    # undamped it would be 20 s x 40 px/s = 800 px further; damped it stays within a few seconds' walk
    assert track.xyxy[0] - walker(1.5)[0] < 3 * 40.0


def test_ids_never_reused_and_reset_keeps_counting():
    tracker = ByteTracker("cam", min_hits=1, lost_after_s=0.5)
    a = tracker.update(dets([0, 0, 20, 60]), now=0.0)[0].track_id
    tracker.update(Detections.empty(), now=2.0)
    b = tracker.update(dets([0, 0, 20, 60]), now=2.1)[0].track_id
    tracker.reset()
    c = tracker.update(dets([0, 0, 20, 60]), now=0.0)[0].track_id
    assert len({a, b, c}) == 3


def test_classes_are_not_matched_across():
    tracker = ByteTracker("cam", min_hits=1)
    person = tracker.update(dets([0, 0, 20, 60], cls=1), now=0)[0].track_id
    tracks = tracker.update(dets([0, 0, 20, 60], cls=2), now=0.1)
    assert person not in seen_ids(tracks)


def test_confirmed_after_min_hits():
    tracker = ByteTracker("cam", min_hits=3)
    assert tracker.update(dets(walker(0.0)), now=0.0) == []
    assert tracker.update(dets(walker(0.1)), now=0.1) == []
    assert len(tracker.update(dets(walker(0.2)), now=0.2)) == 1


@pytest.mark.parametrize(
    ("shift", "births"),
    [
        (6.0, False),  # a second box over the tracked walker (IoU 0.54): no new track
        (20.0, True),  # a second person beside it (no overlap): a new track
    ],
    ids=["second-box-on-walker", "walker-beside"],
)
def test_no_birth_from_a_second_box_on_a_tracked_object(shift, births):
    tracker = ByteTracker("cam", min_hits=2)
    ids = set()
    for i in range(10):
        t = 0.1 * i
        box = walker(t)
        given = dets(box) if i < 3 else dets(box, [box[0] + shift, 100, box[2] + shift, 160], scores=[0.9, 0.5])
        ids |= seen_ids(tracker.update(given, now=t))
    assert len(ids) == (2 if births else 1)


def test_overlap_with_another_class_does_not_block_a_birth():
    tracker = ByteTracker("cam", min_hits=1)
    car = [0, 100, 80, 160]
    tracker.update(dets(car, cls=2), now=0.0)
    person = Detections.from_arrays(np.array([car, [0, 95, 40, 160]], np.float32), [0.9, 0.9], [2, 1])
    tracks = tracker.update(person, now=0.1)
    assert sorted(t.class_id for t in tracks if t.missed == 0) == [1, 2]


def test_lost_track_does_not_take_a_box_over_a_live_neighbour_by_centre_distance():
    # A stands at x 10-30, B at x 60-80 (boxes 60 high); B goes unseen for 0.6 s, then a second box
    # D over A (x 22-42, IoU 0.25 with A) comes within B's centre-distance gate (centres 38 px apart)
    a, b, d = [10, 100, 30, 160], [60, 100, 80, 160], [22, 100, 42, 160]
    tracker = ByteTracker("cam", min_hits=2, lost_after_s=3.0)
    for i in range(5):
        tracks = tracker.update(dets(a, b), now=0.1 * i)
    by_x = {t.xyxy[0]: t.track_id for t in tracks}
    id_a, id_b = by_x[10.0], by_x[60.0]
    for i in range(5, 10):
        tracker.update(dets(a), now=0.1 * i)
    tracks = {t.track_id: t for t in tracker.update(dets(a, d), now=1.0)}
    assert tracks[id_a].missed == 0
    assert tracks[id_b].missed > 0  # still lost (kept for lost_after_s), not moved onto A's neighbour box


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_score": 1.5},
        {"low_score": 0.6, "high_score": 0.5},
        {"iou_threshold": 0.0},
        {"lost_after_s": 0.0},
        {"lost_after_s": float("inf")},
        {"min_hits": 0},
        {"max_size_ratio": 0.5},
        {"velocity_decay_s": -1.0},
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        ByteTracker("cam", **kwargs)


def test_bad_confident_mask_raises():
    with pytest.raises(ValueError):
        ByteTracker("cam").update(dets([0, 0, 1, 1]), now=0.0, confident=np.array([True, False]))


def test_config_defaults_build_the_tracker_defaults():
    config = TrackerConfig()
    built = make_tracker(config, "cam")
    plain = ByteTracker("cam")
    for name in (
        "high_score",
        "low_score",
        "birth_score",
        "iou_threshold",
        "lost_after_s",
        "acceleration_noise",
        "min_hits",
    ):
        assert getattr(built, name) == getattr(plain, name) == getattr(config, name)


def test_iou_v1_from_config_expires_by_seconds():
    tracker = make_tracker(TrackerConfig(kind="iou-v1", lost_after_s=1.0, min_hits=1), "cam")
    first = tracker.update(dets([0, 0, 20, 60]), now=0.0)[0].track_id
    assert [t.track_id for t in tracker.update(Detections.empty(), now=0.9)] == [first]
    assert tracker.update(Detections.empty(), now=1.1) == []


def test_bytetrack_trackers_adapter_confirms_and_keeps_ids():
    pytest.importorskip("trackers")
    tracker = make_tracker(TrackerConfig(kind="bytetrack-trackers", min_hits=2), "cam")
    ids = set()
    for i in range(6):
        tracks = tracker.update(dets(walker(0.1 * i)), now=0.1 * i)
        assert all(t.missed == 0 for t in tracks)
        ids |= seen_ids(tracks)
    assert len(ids) == 1
