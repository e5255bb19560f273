"""Every rule type end to end: synthetic scenes -> scripted detector -> real tracker, rules and incident book.

Each scenario (tests/support/scenarios.py) lists the exact alert updates it must cause, in the order
the analyser emits them, with times worked out by hand; observed times must lie within the
scenario's tolerance (0.3 s: about one frame at 5 fps).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from surveil.rules.camera_tamper import sharpness, small_grey
from tests.support.scenarios import (
    SCENARIOS,
    Effect,
    Expected,
    Observed,
    Renderer,
    Scenario,
    ScriptedDetector,
    describe,
    mismatches,
    person,
    read_stamp,
    run_scenario,
)

RULE_TYPES = (
    "zone_intrusion",
    "loitering",
    "line_crossing",
    "crowding",
    "zone_occupancy",
    "abandoned_object",
    "camera_tamper",
    "stream_health",
)


@pytest.fixture(scope="module")
def runs():
    cache = {}

    def get(name: str, fps: float | None = None):
        if (name, fps) not in cache:
            cache[(name, fps)] = run_scenario(SCENARIOS[name], fps)
        return cache[(name, fps)]

    return get


def assert_lifecycles(observed: list[Observed]) -> None:
    """Per incident: one start first, updates, at most one end and nothing after it."""
    phases: dict[int, list[str]] = {}
    for o in observed:
        phases.setdefault(o.incident, []).append(o.phase)
    for number, sequence in phases.items():
        assert sequence[0] == "start", (number, sequence)
        assert "start" not in sequence[1:] and ("end" not in sequence or sequence.index("end") == len(sequence) - 1), (
            sequence
        )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, runs):
    scenario = SCENARIOS[name]
    run = runs(name)
    observed = run.incidents
    problems = mismatches(observed, scenario.expected, scenario.tolerance_s)
    assert not problems, "\n".join(problems) + "\nobserved:\n" + describe(observed)
    assert_lifecycles(observed)
    assert len({u.id for u in run.updates}) == len(run.updates), "message ids must be unique"
    assert not run.tracker.swaps, (
        f"the tracker swapped identities; the scenario needs wider margins: {run.tracker.swaps}"
    )
    for key, values in scenario.states.items():
        assert tuple(run.states.get(key, ())) == values, key
    assert len(run.suppressed) == scenario.suppressed


def test_every_rule_type_has_a_scenario():
    covered = {rule["type"] for scenario in SCENARIOS.values() for rule in scenario.rules}
    assert covered == set(RULE_TYPES)


def test_every_rule_type_with_alerts_has_a_start_and_an_end():
    seen = {
        (rule["type"], e.phase)
        for s in SCENARIOS.values()
        for e in s.expected
        for rule in s.rules
        if rule["id"] == e.rule
    }
    for rule_type in set(RULE_TYPES) - {"zone_occupancy"}:
        assert {(rule_type, "start"), (rule_type, "end")} <= seen, rule_type


# ------------------------------------------------------------------ loitering: media seconds, not frames


@pytest.mark.parametrize("fps", [2, 10])
def test_loitering_same_timing_at_any_frame_rate(fps, runs):
    scenario = SCENARIOS["loitering_dwell"]
    observed = runs("loitering_dwell", fps).incidents
    problems = mismatches(observed, scenario.expected, scenario.tolerance_s)
    assert not problems, "\n".join(problems) + "\n" + describe(observed)


def test_loitering_2_fps_and_10_fps_agree(runs):
    slow, fast = runs("loitering_dwell", 2).incidents, runs("loitering_dwell", 10).incidents
    assert [(o.phase, o.subject) for o in slow] == [(o.phase, o.subject) for o in fast]
    for a, b in zip(slow, fast):
        assert abs(a.t - b.t) <= 0.5 + 1e-9, (a, b)  # one frame at 2 fps
    # 5 s of walking then 8 s of dwell: at 10 fps the start is 8 s (not 8 frames) after entering
    assert fast[0].t == pytest.approx(4.4 + 8.0, abs=0.11)


# ------------------------------------------------------------------ policy and plumbing details


def test_rate_cap_reports_each_suppressed_start(runs):
    assert runs("intrusion_rate_cap").suppressed == [("door", "rate_limit"), ("door", "rate_limit")]


def test_close_ends_what_is_still_open(runs):
    run = runs("intrusion_enter_leave_class_filter")
    analyzer = run.analyzer
    open_rules = [rule for _, rule, _ in analyzer.book.open_incidents]
    assert open_rules == ["door_any"]  # the parked car
    ends = analyzer.close(now=100.0, ts_wall=run.scenario.wall0 + 100.0, reason="stopped")
    assert [(u.rule, u.phase, u.details.get("end_reason")) for u in ends] == [("door_any", "end", "stopped")]
    start = next(
        u for u in run.updates if u.rule == "door_any" and u.phase == "start" and u.subjects[0].class_name == "car"
    )
    assert ends[0].incident_id == start.incident_id
    assert analyzer.book.open_incidents == []


def test_line_crossing_directions_filter_alerts_but_counts_both(runs):
    run = runs("line_both_directions")
    south_only = [o for o in run.incidents if o.rule == "gate_south"]
    assert {o.details["direction"] for o in south_only} == {"southbound"}
    assert run.states[("lines", "gate", "gate_count")][-1] == {"southbound": 1, "northbound": 1}


def test_updates_carry_subjects_and_timestamps(runs):
    run = runs("intrusion_update_interval")
    start, *_updates, end = run.updates
    assert {u.incident_id for u in run.updates} == {start.incident_id}
    assert all(u.started_ts == start.ts for u in run.updates)
    assert [u.subjects[0].class_name for u in run.updates] == ["person"] * len(run.updates)
    assert end.ts - start.ts == pytest.approx(8.2, abs=0.01)
    assert all(u.frame_seq is not None for u in run.updates)


# ------------------------------------------------------------------ the harness itself


def test_mismatches_sees_every_kind_of_difference():
    observed = [Observed("r", "start", "p1", 1.0, 1, {"n": 1}), Observed("r", "end", "p1", 2.0, 1, {})]
    good = [Expected("r", "start", "p1", 1.1, {"n": 1}), Expected("r", "end", "p1", 2.0)]
    assert mismatches(observed, good, 0.2) == []
    assert mismatches(observed, good[:1], 0.2)  # count
    assert mismatches(observed, [good[0], Expected("r", "update", "p1", 2.0)], 0.2)  # phase
    assert mismatches(observed, [good[0], Expected("r", "end", "p2", 2.0)], 0.2)  # subject
    assert mismatches(observed, [Expected("r", "start", "p1", 1.5), good[1]], 0.2)  # time
    assert mismatches(observed, [Expected("r", "start", "p1", 1.0, {"n": 2}), good[1]], 0.2)  # details
    split = [Observed("r", "start", "p1", 1.0, 1, {}), Observed("r", "end", "p1", 2.0, 2, {})]
    assert mismatches(split, good[:1] + good[1:], 0.2)  # one incident expected, two ids seen
    two = [Expected("r", "start", "p1", 1.0), Expected("r", "start", "p1", 2.0)]
    same = [Observed("r", "start", "p1", 1.0, 1, {}), Observed("r", "start", "p1", 2.0, 1, {})]
    assert mismatches(same, two, 0.2)  # two incidents expected, one id seen


def test_scripted_detector_reads_the_time_from_the_image():
    scenario = Scenario(
        "t",
        rules=(),
        objects=(
            person("a", (0, 100, 150), (10, 200, 150), misses=((2.0, 3.0),), scores=((4.0, 5.0, 0.2),)),
            person("b", (5, 50, 60), (10, 50, 60)),
        ),
    )
    renderer, detector = Renderer(scenario), ScriptedDetector(scenario)
    images = [renderer.frame_image(t, i) for i, t in enumerate((1.0, 2.5, 4.5, 6.0))]
    assert [read_stamp(image) for image in images] == [1.0, 2.5, 4.5, 6.0]
    out = detector.detect(images)
    assert [len(d) for d in out] == [1, 0, 1, 2]
    np.testing.assert_allclose(out[0].xyxy[0], [100.0, 102.0, 120.0, 150.0])  # x = 100 + 10 px/s * 1 s, feet at 150
    assert out[2].confidence.tolist() == pytest.approx([0.2])
    assert detector.last_names == ["a", "b"]
    with pytest.raises(ValueError, match="time stamp"):
        detector.detect([np.zeros((10, 10, 3), np.uint8)])


def test_effects_look_like_what_they_simulate():
    scenario = Scenario(
        "fx",
        rules=(),
        objects=(person("a", (0, 40, 150), (20, 280, 150)),),
        effects=(Effect("dark", 1, 2), Effect("blur", 2, 3), Effect("shift", 3, 4), Effect("frozen", 4, 5)),
    )
    renderer = Renderer(scenario)
    normal = renderer.frame_image(0.0, 0)
    dark, blurred, shifted = (renderer.frame_image(t, i) for i, t in ((1, 1.0), (2, 2.0), (3, 3.0)))
    assert small_grey(normal).mean() > 100 > 10 > small_grey(dark).mean()
    assert sharpness(blurred) < 0.1 * sharpness(normal)
    assert (np.abs(small_grey(shifted) - small_grey(normal)) > 40).mean() > 0.6
    fresh = renderer.frame_image(3.8, 4)
    repeated = [renderer.frame_image(t, i) for i, t in ((5, 4.0), (6, 4.2))]
    assert all(np.array_equal(image, fresh) for image in repeated) and read_stamp(repeated[-1]) == 3.8
    noisy = [renderer.frame_image(6.0, i) for i in (10, 11)]
    assert np.abs(small_grey(noisy[0]) - small_grey(noisy[1])).max() > 2  # a live view is never frozen


def test_scenarios_are_deterministic():
    scenario = dataclasses.replace(SCENARIOS["line_both_directions"], duration=4)
    assert run_scenario(scenario).incidents == run_scenario(scenario).incidents
