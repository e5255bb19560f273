"""ZonePresence: inertia in processed frames; a frame the tracker only predicts never decides alone."""

import numpy as np
import pytest

from surveil.rules.base import Zone
from surveil.rules.presence import ZonePresence
from surveil.types import Track

SQUARE = Zone("square", np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]))
IN, OUT = (45.0, 20.0, 55.0, 50.0), (45.0, 60.0, 55.0, 90.0)  # feet at y=50 (inside) / y=90 (outside) of 100x100


def track(box, missed=0):
    return Track(7, "cam", 1, box, 0.9, 0.0, 0.0, 3, missed)


@pytest.mark.parametrize(
    ("frames", "inside_after"),
    [
        pytest.param(["in", "in", "in"], [False, False, True], id="three-seen-frames-enter"),
        pytest.param(["in", "pred-in", "in"], [False, False, True], id="a-predicted-frame-continues-a-seen-run"),
        pytest.param(["pred-in", "pred-in", "pred-in"], [False, False, False], id="prediction-alone-never-enters"),
        pytest.param(["in", "pred-in", "pred-in"], [False, False, False], id="entering-needs-a-seen-frame"),
        pytest.param(["in", "out", "in", "in"], [False, False, False, False], id="seen-outside-resets-the-run"),
        pytest.param(
            ["in", "pred-out", "in", "in"], [False, False, False, True], id="predicted-outside-is-no-evidence"
        ),
        pytest.param(["in"] * 3 + ["out", "out"], [False, False, True, True, True], id="leaving-needs-exit-frames"),
        pytest.param(
            ["in"] * 3 + ["out", "pred-out", "out", "out"],
            [False, False, True, True, True, True, False],
            id="missed-frames-do-not-count-towards-leaving",
        ),
    ],
)
def test_inertia(frames, inside_after):
    presence = ZonePresence(SQUARE, frozenset(), "bottom_center", enter_frames=3, exit_frames=3)
    boxes = {"in": (IN, 0), "out": (OUT, 0), "pred-in": (IN, 1), "pred-out": (OUT, 1)}
    observed = []
    for step, kind in enumerate(frames):
        box, missed = boxes[kind]
        observed.append(bool(presence.update([track(box, missed)], float(step), 100, 100)))
    assert observed == inside_after


def test_a_dropped_track_is_forgotten():
    presence = ZonePresence(SQUARE, frozenset(), "bottom_center", enter_frames=1, exit_frames=1)
    assert presence.update([track(IN)], 0.0, 100, 100)
    assert presence.update([], 1.0, 100, 100) == []
    assert presence.update([track(OUT)], 2.0, 100, 100) == []


def loitering_at(rule, t, box, missed=0):
    """The conditions of ``rule`` for one 100x100 frame at time ``t`` holding one track at ``box``."""
    from surveil.rules.base import FrameContext
    from surveil.types import Detections

    ctx = FrameContext(
        camera="cam",
        now=t,
        ts_wall=t,
        ts_mono=t,
        seq=0,
        width=100,
        height=100,
        image=None,
        detections=Detections.empty(),
        confident=np.zeros(0, bool),
        tracks=(track(box, missed),),
    )
    return rule.evaluate(ctx)


def test_loitering_dwell_stops_growing_once_outside():
    """Inertia keeps a person 'in' for exit_frames, but a loitering alert never starts on a frame
    where they are already outside: the dwell is time inside, not time since entering."""
    from surveil.rules.loitering import LoiteringRule

    rule = LoiteringRule("loiter", SQUARE, frozenset(), ["bg", "person"], dwell_s=2.0, enter_frames=1, exit_frames=3)
    assert loitering_at(rule, 0.0, IN) == [] and loitering_at(rule, 1.5, IN) == []
    assert loitering_at(rule, 2.5, OUT) == [], "outside at 2.5 s: inside for only 1.5 s"
    assert loitering_at(rule, 3.0, IN)[0].details == {"dwell_s": 3.0}, (
        "back inside at 3 s: the run never ended (exit_frames 3)"
    )


@pytest.mark.parametrize(
    ("frames", "dwell_after"),
    [
        pytest.param(["in"] * 4, [None, None, 2.0, 3.0], id="seen-inside-the-whole-time"),
        pytest.param(
            ["in", "pred-in", "pred-in", "pred-in"], [None, None, None, None], id="predicted-frames-never-reach-it"
        ),
        pytest.param(
            ["in", "pred-in", "pred-in", "in"], [None, None, None, 3.0], id="seen-again-counts-the-gap-inside"
        ),
        pytest.param(
            ["in", "in", "in", "pred-in", "pred-in"], [None, None, 2.0, 2.0, 2.0], id="an-alert-holds-while-predicted"
        ),
    ],
)
def test_loitering_dwell_runs_to_the_last_frame_it_was_seen_inside(frames, dwell_after):
    """A track the tracker only predicts (missed > 0) is no evidence that somebody is still there: at
    1-2 fps a coasting track's box drifts, and a dwell that grew on it raised alerts on empty ground
    or on the next person along. Seen inside again, the person was there all along."""
    from surveil.rules.loitering import LoiteringRule

    rule = LoiteringRule("loiter", SQUARE, frozenset(), ["bg", "person"], dwell_s=2.0, enter_frames=1, exit_frames=3)
    boxes = {"in": (IN, 0), "pred-in": (IN, 1)}
    observed = []
    for t, kind in enumerate(frames):
        found = loitering_at(rule, float(t), *boxes[kind])
        observed.append(found[0].details["dwell_s"] if found else None)
    assert observed == dwell_after


@pytest.mark.parametrize(
    ("gap_s", "inside_on_return"),
    [
        pytest.param(3.0, True, id="back-within-the-grace-continues"),
        pytest.param(6.0, False, id="back-after-the-grace-starts-afresh"),
    ],
)
def test_a_re_identified_track_continues_its_streak(gap_s, inside_on_return):
    """The tracker stops reporting a track and gives the same id back later (re-identification)."""
    presence = ZonePresence(SQUARE, frozenset(), "bottom_center", enter_frames=2, exit_frames=1, forget_after_s=4.0)
    for t in (0.0, 1.0):
        presence.update([track(IN)], t, 100, 100)
    for t in np.arange(2.0, 2.0 + gap_s):
        assert presence.update([], float(t), 100, 100) == []
    back = presence.update([track(IN)], 2.0 + gap_s, 100, 100)
    assert [entered for _, entered in back] == ([0.0] if inside_on_return else [])
