"""Incidents follow a person across a gap in which the tracker did not report them (issue 17).

A tracker that re-identifies a person gives back the same track id after the gap. The zone rules
keep that id's presence for their ``merge_window_s`` and the incident book waits as long before
ending an incident, so the loitering dwell goes on and the person makes one incident.
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


def run(rule, reported) -> list[tuple[str, float, dict]]:
    """(phase, time, details) of every message, the track reported at the times ``reported`` says."""
    book = IncidentBook("cam")
    out = []
    for step in range(41):
        t = step * 0.5
        tracks = (Track(7, "cam", 1, IN, 0.9, 0.0, t, step + 1, 0),) if reported(t) else ()
        ctx = FrameContext("cam", t, t, t, step, 100, 100, None, Detections.empty(), np.zeros(0, bool), tracks)
        out += [(u.phase, t, u.details) for u in book.observe(rule, rule.evaluate(ctx), ctx)]
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
