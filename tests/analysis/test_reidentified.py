"""Incidents follow a person across a gap in which the tracker did not report them (issue 17).

A tracker that re-identifies a person gives back the same track id after the gap. The zone rules
keep that id's presence for their ``merge_window_s`` and the incident book waits as long before
ending an incident, so the loitering dwell goes on and the person makes one incident. While the
tracker says it still holds the id (``FrameContext.held``, a dormant track), they wait longer: as
long as the tracker may give it back.
"""

from __future__ import annotations

import numpy as np
import pytest

from surveil.analysis.incidents import IncidentBook
from surveil.rules.base import FrameContext, IncidentPolicy, Zone
from surveil.rules.loitering import LoiteringRule
from surveil.rules.zone_intrusion import ZoneIntrusionRule
from surveil.types import Detections, Track

SQUARE = Zone("square", np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]))
IN = (45.0, 20.0, 55.0, 50.0)  # feet at (50, 50) of a 100 x 100 picture


def run(rule, reported, held=lambda t: False, steps: int = 41) -> list[tuple[str, float, dict, float]]:
    """(phase, time, details, message ts) of every message, the track reported at the times ``reported``
    says and held by the tracker (not reported, may come back) at the times ``held`` says."""
    book = IncidentBook("cam")
    out = []
    for step in range(steps):
        t = step * 0.5
        tracks = (Track(7, "cam", 1, IN, 0.9, 0.0, t, step + 1, 0),) if reported(t) else ()
        ctx = FrameContext(
            "cam", t, t, t, step, 100, 100, None, Detections.empty(), np.zeros(0, bool), tracks,
            held=frozenset({7}) if held(t) and not reported(t) else frozenset(),
        )  # fmt: skip
        out += [(u.phase, t, u.details, u.ts) for u in book.observe(rule, rule.evaluate(ctx), ctx)]
    return out


def gap(start: float, end: float):
    return lambda t: not start <= t < end


@pytest.mark.parametrize(("gap_s", "starts"), [(3.0, 1), (6.0, 2)])
def test_loitering_dwell_goes_on_across_a_gap(gap_s, starts):
    rule = LoiteringRule(
        "loiter", SQUARE, frozenset(), ["person"], dwell_s=4.0, policy=IncidentPolicy(merge_window_s=4.0)
    )
    messages = run(rule, gap(5.0, 5.0 + gap_s))
    assert [m[0] for m in messages].count("start") == starts
    if starts == 1:  # one incident from 4 s on; no end while the person is back within the grace
        assert messages[0][:2] == ("start", 4.0) and "end" not in [m[0] for m in messages]


def test_loitering_dwell_counts_the_gap():
    rule = LoiteringRule(
        "loiter", SQUARE, frozenset(), ["person"], dwell_s=6.0, policy=IncidentPolicy(merge_window_s=4.0)
    )
    messages = run(rule, gap(3.0, 6.0))  # inside from 0, not reported 3-6 s, back at 6: 6 s since entering
    assert messages[0][0] == "start" and messages[0][1] == pytest.approx(6.0)
    assert messages[0][2]["dwell_s"] >= 6.0


def test_zone_visit_is_one_incident_across_a_gap():
    rule = ZoneIntrusionRule("in", SQUARE, frozenset(), ["person"], policy=IncidentPolicy(merge_window_s=4.0))
    messages = run(rule, gap(4.0, 7.0))
    assert [m[0] for m in messages] == ["start"]


@pytest.mark.parametrize(("held", "starts"), [(True, 1), (False, 2)], ids=["tracker-holds-the-id", "nobody-holds-it"])
def test_a_held_subject_keeps_its_incident_and_dwell_past_the_merge_window(held, starts):
    """Hidden 10 s (beyond the 4-s merge window): one incident and one dwell while the tracker holds the id."""
    rule = LoiteringRule(
        "loiter", SQUARE, frozenset(), ["person"], dwell_s=4.0, policy=IncidentPolicy(merge_window_s=4.0)
    )
    messages = run(rule, gap(5.0, 15.0), held=lambda t: held)
    assert [m[0] for m in messages].count("start") == starts
    if held:
        assert "end" not in [m[0] for m in messages]
        assert messages[0][:2] == ("start", 4.0)
    else:  # the dwell restarted on the return: the second start comes dwell_s after it
        assert [m[1] for m in messages if m[0] == "start"] == [4.0, 19.0]


def test_an_incident_held_for_a_subject_that_never_returns_ends_when_released_stamped_when_it_stopped():
    rule = ZoneIntrusionRule("in", SQUARE, frozenset(), ["person"], policy=IncidentPolicy(merge_window_s=4.0))
    messages = run(rule, lambda t: t < 3.0, held=lambda t: t < 13.0)  # gone at 3 s, the tracker lets go at 13 s
    assert [phase for phase, _, _, _ in messages] == ["start", "end"]
    assert messages[-1][1] == 13.0  # not at 3 + 4 s: the tracker held the person until 13 s
    assert messages[-1][3] == 3.0  # the end says when the person was last inside, not when it was sent


@pytest.mark.parametrize(("look_after", "incidents"), [("same", 1), ("other", 2)])
def test_analyser_with_the_real_tracker_keeps_one_incident_for_a_person_hidden_past_the_merge_window(
    look_after, incidents
):
    """ByteTracker re-identifies the person after 8 s hidden (dormant after lost_after_s 3 s); the analyser
    passes the held id on, so the visit is one incident. Somebody who looks different is a second one."""
    from surveil.analysis.analyzer import CameraAnalyzer
    from surveil.config import TrackerConfig
    from surveil.tracking import make_tracker

    red, blue = np.array([1.0, 0.0, 0.0], np.float32), np.array([0.0, 1.0, 0.0], np.float32)
    rule = ZoneIntrusionRule("in", SQUARE, frozenset(), ["person"], policy=IncidentPolicy(merge_window_s=4.0))
    analyser = CameraAnalyzer("cam", make_tracker(TrackerConfig(), "cam"), [rule], ["person"])
    phases = []
    for step in range(60):  # 2 fps: seen 0-5 s, hidden 5-13 s, back 13-30 s
        t = step * 0.5
        hidden = 5.0 <= t < 13.0
        look = red if t < 13.0 or look_after == "same" else blue
        boxes = np.zeros((0, 4), np.float32) if hidden else np.array([IN], np.float32)
        detections = Detections.from_arrays(boxes, [0.9] * len(boxes), [0] * len(boxes), look[None][: len(boxes)])
        image = np.zeros((100, 100, 3), np.uint8)
        ctx = FrameContext("cam", t, t, t, step, 100, 100, image, detections, np.ones(len(boxes), bool))
        phases += [u.phase for u in analyser.process(ctx)]
    assert phases.count("start") == incidents
