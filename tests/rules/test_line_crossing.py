"""LineCrossingRule: straddling over a short history, birth on the line, jumps, jitter, segment ends.

Picture 400 x 300 pixels; people are 60 px tall (band 0.1 = 6 px), feet given in pixels. A step is
(time s, feet x, feet y) of one track, seen (matched) unless ``missed`` is set; frames come every
0.5 s, and a track without a step at a frame is not reported in it; ``history`` is the tracker's record of where the track was seen before the rule first saw it (its birth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from surveil.rules.base import FrameContext, Line
from surveil.rules.line_crossing import LineCrossingRule
from surveil.types import Detections, Track

W, H, TALL = 400, 300, 60.0
VERTICAL = Line("gate", (0.5, 0.1), (0.5, 0.9), "westbound", "eastbound")  # x = 200; forward = right to left
EDGE = Line("edge", (0.6, 0.5), (1.0, 0.5), "southbound", "northbound")  # y = 150, ends at the right border
SECOND = Line("second", (0.75, 0.1), (0.75, 0.9), "westbound", "eastbound")  # x = 300


@dataclass(frozen=True)
class Step:
    t: float
    x: float
    y: float
    track_id: int = 1
    missed: int = 0
    history: tuple[tuple[float, float], ...] = ()
    born: float | None = None  # when the tracker first saw it (default: half a second per history point back)


def track(step: Step, first_seen: float) -> Track:
    box = (step.x - 10.0, step.y - TALL, step.x + 10.0, step.y)
    history = step.history or ((step.x, step.y),)
    return Track(step.track_id, "cam", 1, box, 0.9, first_seen, step.t, len(history), step.missed, history)


def counts(rules: list[LineCrossingRule], steps: list[Step]) -> list[dict[str, int]]:
    first: dict[int, float] = {}
    empty = Detections.from_arrays(np.zeros((0, 4)), [], [])
    frames = {round(k * 0.5, 6) for k in range(int(max(s.t for s in steps) / 0.5) + 1)}  # a frame every 0.5 s
    for at in sorted(frames | {s.t for s in steps}):
        now = [s for s in steps if s.t == at]
        tracks = tuple(
            track(s, first.setdefault(s.track_id, s.born if s.born is not None else s.t - 0.5 * (len(s.history) - 1)))
            for s in now
        )
        ctx = FrameContext(
            "cam", at, at, at, None, W, H, np.zeros((H, W, 3), np.uint8), empty, np.zeros(0, bool), tracks
        )
        for rule in rules:
            rule.evaluate(ctx)
    return [dict(rule.counts) for rule in rules]


def walk(xs, y=150.0, start=0.0, dt=0.5, track_id=1, history=()):
    return [Step(start + i * dt, x, y, track_id, history=history if i == 0 else ()) for i, x in enumerate(xs)]


def gate(**kwargs) -> LineCrossingRule:
    return LineCrossingRule("r", VERTICAL, frozenset(), ["person"], **kwargs)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(walk([260, 230, 180, 150]), {"westbound": 1, "eastbound": 0}, id="walk-across"),
        pytest.param(walk([260, 230, 180, 150, 190, 240]), {"westbound": 1, "eastbound": 1}, id="across-and-back"),
        pytest.param(walk([240, 230, 220, 230, 240]), {"westbound": 0, "eastbound": 0}, id="turns-before-the-line"),
        pytest.param(
            walk([203, 197, 203, 197, 204, 196]), {"westbound": 0, "eastbound": 0}, id="jitter-inside-the-band"
        ),
        pytest.param(walk([203, 170, 140]), {"westbound": 1, "eastbound": 0}, id="born-on-the-line-right-side"),
        pytest.param(walk([197, 230, 260]), {"westbound": 0, "eastbound": 1}, id="born-on-the-line-left-side"),
        pytest.param(walk([197, 160, 130]), {"westbound": 0, "eastbound": 0}, id="born-on-the-line-walks-back"),
        pytest.param(
            walk([160, 140], history=((260.0, 150.0), (230.0, 150.0), (190.0, 150.0))),
            {"westbound": 1, "eastbound": 0},
            id="crossed-before-it-was-confirmed",
        ),
        pytest.param(walk([380, 20]), {"westbound": 0, "eastbound": 0}, id="jump-across-the-picture"),
        pytest.param(
            walk([380, 30, 100, 170, 230]), {"westbound": 0, "eastbound": 1}, id="a-jump-restarts-the-path-there"
        ),
        pytest.param(
            walk([260, 250, 240], y=20) + walk([200, 150], y=20, start=1.5),
            {"westbound": 0, "eastbound": 0},
            id="round-the-end",
        ),
        pytest.param(
            walk([380, 20], dt=5.0), {"westbound": 1, "eastbound": 0}, id="a-long-gap-makes-a-long-step-plausible"
        ),
    ],
)
def test_gate(steps, expected):
    assert counts([gate()], steps) == [expected]


def test_jitter_across_the_band_is_debounced_by_min_frames():
    steps = walk([220, 180, 220, 180, 220, 160, 150])
    assert counts([gate(min_frames=2)], steps) == [{"westbound": 1, "eastbound": 0}]
    assert counts([gate(min_frames=1)], steps) == [{"westbound": 3, "eastbound": 2}]


def test_jump_check_off():
    assert counts([gate(max_speed=0)], walk([380, 20])) == [{"westbound": 1, "eastbound": 0}]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [Step(0.0, 398, 147), Step(0.5, 380, 175), Step(1.0, 360, 200)],
            {"southbound": 1, "northbound": 0},
            id="enters-at-the-border-on-the-line-walks-south",
        ),
        pytest.param(
            [Step(0.0, 398, 153), Step(0.5, 380, 175), Step(1.0, 360, 200)],
            {"southbound": 0, "northbound": 0},
            id="enters-at-the-border-on-the-line-on-the-side-it-walks-to",
        ),
        pytest.param(
            [Step(0.0, 398, 153), Step(0.5, 380, 125), Step(1.0, 360, 100)],
            {"southbound": 0, "northbound": 1},
            id="enters-at-the-border-on-the-line-walks-north",
        ),
        pytest.param(
            walk([390, 380], y=100, history=((399.0, 160.0), (395.0, 130.0))),
            {"southbound": 0, "northbound": 1},
            id="crossed-at-the-border-before-confirmation",
        ),
        pytest.param(
            [Step(0.0, 200, 120), Step(0.5, 200, 180)], {"southbound": 0, "northbound": 0}, id="beyond-the-inner-end"
        ),
    ],
)
def test_line_ending_at_the_frame_border(steps, expected):
    rule = LineCrossingRule("r", EDGE, frozenset(), ["person"])
    assert counts([rule], steps) == [expected]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(walk([340, 320, 280, 250, 220, 180, 160]), [1, 1], id="walking-across-both"),
        pytest.param(walk([380, 360, 40, 30]), [0, 0], id="one-jump-over-both"),
    ],
)
def test_two_lines_one_step(steps, expected):
    rules = [gate(), LineCrossingRule("s", SECOND, frozenset(), ["person"])]
    assert [c["westbound"] for c in counts(rules, steps)] == expected


def test_missed_frames_are_no_evidence_and_other_tracks_are_separate():
    steps = [
        Step(0.0, 260, 150),
        Step(0.0, 140, 150, track_id=2),
        Step(0.5, 120, 150, missed=1),  # a prediction across the line does not count
        Step(0.5, 150, 150, track_id=2),
        Step(1.0, 240, 150),
        Step(1.0, 250, 150, track_id=2),  # track 2 walks back east
    ]
    assert counts([gate()], steps) == [{"westbound": 0, "eastbound": 1}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"band": -0.1}, "band"), ({"min_frames": 0}, "min_frames"), ({"max_speed": -1.0}, "max_speed")],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gate(**kwargs)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [Step(0.0, 260, 150), Step(0.5, 230, 150), Step(3.5, 150, 150)],
            {"westbound": 1, "eastbound": 0},
            id="crossed-while-unreported",
        ),
        pytest.param(
            [
                Step(0.0, 260, 150),
                Step(0.5, 230, 150),
                Step(1.0, 170, 150),
                Step(4.0, 150, 150, history=((260.0, 150.0), (230.0, 150.0), (170.0, 150.0), (150.0, 150.0))),
            ],
            {"westbound": 1, "eastbound": 0},
            id="counted-once-when-it-comes-back",
        ),
    ],
)
def test_a_re_identified_track_goes_on_from_its_side(steps, expected):
    """The tracker stops reporting the track for seconds and gives the same id back (re-identification)."""
    assert counts([gate()], steps) == [expected]


@pytest.mark.parametrize(
    ("point", "a", "b"),
    [
        ((10.0, 5.0), (0.0, 0.0), (20.0, 0.0)),
        ((3.0, -4.0), (0.0, 0.0), (0.0, 9.0)),
        ((7.0, 7.0), (1.0, 2.0), (1.0, 2.0)),
    ],
)
def test_signed_distance_is_geometry_signed_side(point, a, b):
    from surveil.geometry import signed_side
    from surveil.rules.line_crossing import _signed_distance

    assert _signed_distance(point, a, b) == pytest.approx(float(signed_side(np.array([point]), a, b)[0]))


def test_an_old_track_met_for_the_first_time_does_not_replay_its_history():
    """Its path was forgotten (a re-identification after more than 10 s) or it was never shown to the rule:
    the crossing its history holds may have been counted already, so it starts where it is now."""
    history = ((260.0, 150.0), (230.0, 150.0), (170.0, 150.0))
    old = [Step(20.0, 160, 150, history=history, born=2.0), Step(20.5, 150, 150)]
    young = [Step(1.0, 160, 150, history=history), Step(1.5, 150, 150)]
    assert counts([gate()], old) == [{"westbound": 0, "eastbound": 0}]
    assert counts([gate()], young) == [{"westbound": 1, "eastbound": 0}]
