"""IncidentBook: scripted conditions in, start / update / end out (pure logic, no tracker, no images).

Each case drives a fake rule at a fixed step: every key is active on its intervals, at a position,
seen (matched in the frame) until ``seen_until``. Expected rows are (phase, incident number,
subject, time) in emission order; incident numbers count distinct incident ids in order of first
appearance, so they check that start, updates and end share one id and different incidents differ.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from surveil.analysis.incidents import IncidentBook
from surveil.rules.base import Condition, FrameContext, IncidentPolicy
from surveil.types import Detections, Subject, Track

WALL0 = 1000.0


@dataclass
class FakeRule:
    policy: IncidentPolicy = IncidentPolicy()
    id: str = "fake"
    type: str = "fake_type"
    severity: str = "warning"
    zone: str | None = "z"
    line: str | None = None
    handles_ticks: bool = False

    def evaluate(self, ctx: FrameContext) -> list[Condition]:  # the book is driven directly
        return []

    def state(self) -> list:
        return []


@dataclass(frozen=True)
class Act:
    """One key's script. Its subject is a track (id ``track_id``) that the tracker sees while the key is
    active and before ``seen_until``, and on the extra ``visible`` intervals (seen, but the condition
    no longer holds: e.g. a person who walked out of the zone); while the key is active but the
    track unseen, the tracker only predicts it."""

    key: str
    intervals: tuple[tuple[float, float], ...]
    position: tuple[float, float] | None = (100.0, 100.0)
    seen_until: float = math.inf
    visible: tuple[tuple[float, float], ...] = ()
    details: Callable[[float], dict[str, Any]] = field(default=lambda t: {})
    track_id: int = 0
    born: float | None = None  # when the tracker first saw the subject (None: unknown)
    scale: float = 50.0  # box height, pixels (the frame is 240 tall)
    embedding: tuple[float, ...] | None = None  # appearance, when the tracker gives one

    def active(self, t: float) -> bool:
        return any(t0 <= t < t1 for t0, t1 in self.intervals)

    def seen(self, t: float) -> bool:
        return (self.active(t) and t < self.seen_until) or any(t0 <= t < t1 for t0, t1 in self.visible)

    def condition(self, t: float) -> Condition:
        subject = Subject(self.track_id, self.key, 0.9, (0.0, 0.0, 10.0, 50.0))
        return Condition(
            key=self.key,
            subjects=(subject,),
            seen=self.seen(t),
            position=self.position,
            scale=self.scale,
            born=self.born,
            details=self.details(t),
            embedding=None if self.embedding is None else np.array(self.embedding) / np.linalg.norm(self.embedding),
        )

    def track(self, t: float) -> Track | None:
        if not (self.active(t) or self.seen(t)):
            return None
        return Track(self.track_id, "cam", 1, (0.0, 0.0, 10.0, 50.0), 0.9, 0.0, t, 1, 0 if self.seen(t) else 1)


def ctx(t: float, seq: int | None = 0, tracks: tuple[Track, ...] = ()) -> FrameContext:
    return FrameContext(
        camera="cam",
        now=t,
        ts_wall=WALL0 + t,
        ts_mono=t,
        seq=seq,
        width=320,
        height=240,
        image=None,
        detections=Detections.empty(),
        confident=np.zeros(0, bool),
        tracks=tracks,
    )


def drive(policy: IncidentPolicy, acts: list[Act], until: float, step: float = 0.5, close_at: float | None = None):
    suppressed: list[tuple[str, str]] = []
    ids = itertools.count(1)
    book = IncidentBook(
        "cam", new_id=lambda: f"i{next(ids)}", on_suppressed=lambda rule, reason: suppressed.append((rule, reason))
    )
    rule = FakeRule(policy)
    acts = [dataclasses.replace(a, track_id=i + 1) for i, a in enumerate(acts)]
    updates = []
    for k in range(round(until / step) + 1):
        t = round(k * step, 6)
        tracks = tuple(track for track in (a.track(t) for a in acts) if track is not None)
        updates += book.observe(rule, [a.condition(t) for a in acts if a.active(t)], ctx(t, k, tracks))
    if close_at is not None:
        updates += book.close_all(ctx(close_at, None), "stopped")
    return updates, suppressed, book


def rows(updates) -> list[tuple[str, int, str, float]]:
    numbers: dict[str, int] = {}
    return [
        (
            u.phase,
            numbers.setdefault(u.incident_id, len(numbers) + 1),
            u.subjects[0].class_name if u.subjects else None,
            round(u.ts - WALL0, 6),
        )
        for u in updates
    ]


P = IncidentPolicy
FAR, NEAR = (400.0, 100.0), (120.0, 100.0)  # from (100, 100): 6 and 0.4 box heights (50 px)

CASES = {
    "start_then_end": (
        P(),
        [Act("a", ((1, 4),))],
        6,
        [("start", 1, "a", 1.0), ("end", 1, "a", 4.0)],
    ),
    "two_keys_two_incidents": (
        P(),
        [Act("a", ((1, 4),)), Act("b", ((2, 3),), position=FAR)],
        6,
        [("start", 1, "a", 1.0), ("start", 2, "b", 2.0), ("end", 2, "b", 3.0), ("end", 1, "a", 4.0)],
    ),
    "min_duration": (  # a lasts 1 s; c's first spell 1.5 s (the clock restarts after a gap), its second 3 s
        P(min_duration_s=2),
        [Act("a", ((1, 2.5),)), Act("c", ((4, 5.5), (6, 9)), position=FAR)],
        10,
        [("start", 1, "c", 8.0), ("end", 1, "c", 9.0)],
    ),
    "cooldown_per_key": (  # a ends at 2 -> cooled down until 5; b is another key
        P(cooldown_s=3),
        [Act("a", ((1, 2), (3, 4), (6, 7))), Act("b", ((3, 4),), position=FAR)],
        8,
        [
            ("start", 1, "a", 1.0),
            ("end", 1, "a", 2.0),
            ("start", 2, "b", 3.0),
            ("end", 2, "b", 4.0),
            ("start", 3, "a", 6.0),
            ("end", 3, "a", 7.0),
        ],
    ),
    "cooldown_ends_while_active": (  # still active when the cooldown runs out: starts then
        P(cooldown_s=3),
        [Act("a", ((1, 2), (3, 8)))],
        9,
        [("start", 1, "a", 1.0), ("end", 1, "a", 2.0), ("start", 2, "a", 5.0), ("end", 2, "a", 8.0)],
    ),
    "update_interval": (  # details change every second; updates at most every 2 s
        P(update_interval_s=2),
        [Act("a", ((1, 8),), details=lambda t: {"n": int(t)})],
        9,
        [
            ("start", 1, "a", 1.0),
            ("update", 1, "a", 3.0),
            ("update", 1, "a", 5.0),
            ("update", 1, "a", 7.0),
            ("end", 1, "a", 8.0),
        ],
    ),
    "no_update_without_change": (
        P(update_interval_s=1),
        [Act("a", ((1, 8),), details=lambda t: {"n": 1})],
        9,
        [("start", 1, "a", 1.0), ("end", 1, "a", 8.0)],
    ),
    "update_interval_zero_means_never": (
        P(update_interval_s=0),
        [Act("a", ((1, 8),), details=lambda t: {"n": t})],
        9,
        [("start", 1, "a", 1.0), ("end", 1, "a", 8.0)],
    ),
    "fold_near_new_key": (  # a lost at 4, b appears 0.4 heights away at 5: same incident; end waits 3 s after b ends
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=NEAR)],
        12,
        [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)],
    ),
    "fold_a_subject_born_after_the_loss": (  # b's track began at 4.5, after a was last seen (3.5): a re-birth
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=NEAR, born=4.5)],
        12,
        [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)],
    ),
    "no_fold_a_subject_tracked_before_the_loss": (  # b's track existed since 0.5, long before a vanished: somebody else
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=NEAR, born=0.5)],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 5.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    "no_fold_far_away": (  # a's end is sent at 7 (merge window) stamped 4
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=FAR)],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 5.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    "no_fold_too_late": (  # a last seen 3.5; b at 7.5 is 4 s later (> 3 s)
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((7.5, 9),), position=NEAR)],
        13,
        [("start", 1, "a", 1.0), ("end", 1, "a", 4.0), ("start", 2, "b", 7.5), ("end", 2, "b", 9.0)],
    ),
    "no_fold_into_a_subject_that_left": (  # a left the zone at 4 but is still seen there: b is somebody else
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), visible=((4, 9),)), Act("b", ((5, 8),), position=NEAR)],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 5.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    "returning_key_continues_its_incident": (  # a steps out at 3 and back at 4.5, inside the 3 s window
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 3), (4.5, 6)), visible=((3, 4.5),))],
        10,
        [("start", 1, "a", 1.0), ("end", 1, "a", 6.0)],
    ),
    "no_fold_into_a_subject_seen_now": (  # a still seen when b appears beside it: two incidents
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 6),)), Act("b", ((3, 6),), position=NEAR)],
        10,
        [("start", 1, "a", 1.0), ("start", 2, "b", 3.0), ("end", 1, "a", 6.0), ("end", 2, "b", 6.0)],
    ),
    "fold_into_a_subject_only_predicted": (  # a's key stays active but unseen from 3: b beside it at 4 is the same one
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 6),), seen_until=3), Act("b", ((4, 8),), position=NEAR)],
        12,
        [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)],
    ),
    "one_fold_per_lost_subject": (  # b and c both appear near lost a: the first joins a, the other (a is seen again
        # through b in this frame) starts its own incident
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=NEAR), Act("c", ((5, 8),), position=(80.0, 100.0))],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "c", 5.0), ("end", 1, "b", 8.0), ("end", 2, "c", 8.0)],
    ),
    "folding_off": (
        P(merge_window_s=0, merge_distance=1.5),
        [Act("a", ((1, 4),)), Act("b", ((4, 8),), position=NEAR)],
        10,
        [("start", 1, "a", 1.0), ("start", 2, "b", 4.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    # a close-up: people 200 px tall in a 240-px frame; the yardstick is capped at 0.2 x 240 = 48 px (1.5 -> 72 px)
    "no_fold_two_people_entering_a_close_up": (  # b walks in 150 px from where a was lost: 0.75 of its height
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), scale=200.0), Act("b", ((4.5, 8),), position=(250.0, 100.0), scale=200.0)],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 4.5), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    "fold_one_person_flickering_in_a_close_up": (  # the same person re-born 40 px from where it was lost
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), scale=200.0), Act("b", ((4.5, 8),), position=(140.0, 100.0), scale=200.0)],
        12,
        [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)],
    ),
    "no_fold_a_different_look": (  # near enough, but the embeddings say somebody else
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), embedding=(1.0, 0.0)), Act("b", ((5, 8),), position=NEAR, embedding=(0.0, 1.0))],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 5.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
    "fold_the_same_look": (
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), embedding=(1.0, 0.1)), Act("b", ((5, 8),), position=NEAR, embedding=(1.0, 0.2))],
        12,
        [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)],
    ),
    "fold_into_the_most_alike_of_two_lost": (  # c is nearer a but looks like b: it continues b's incident
        P(merge_window_s=3, merge_distance=1.5),
        [
            Act("a", ((1, 4),), embedding=(1.0, 0.0)),
            Act("b", ((1, 4),), position=(150.0, 100.0), embedding=(0.0, 1.0)),
            Act("c", ((5, 8),), position=NEAR, embedding=(0.1, 1.0)),
        ],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 1.0), ("end", 1, "a", 4.0), ("end", 2, "c", 8.0)],
    ),
    "fold_without_position_never": (
        P(merge_window_s=3, merge_distance=1.5),
        [Act("a", ((1, 4),), position=None), Act("b", ((5, 8),), position=None)],
        12,
        [("start", 1, "a", 1.0), ("start", 2, "b", 5.0), ("end", 1, "a", 4.0), ("end", 2, "b", 8.0)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lifecycle(name):
    policy, acts, until, expected = CASES[name]
    updates, suppressed, _ = drive(policy, acts, until)
    assert rows(updates) == expected
    assert suppressed == []


def test_rate_cap_suppresses_until_the_condition_ends():
    acts = [
        Act("a", ((1, 10),)),
        Act("b", ((2, 70),)),
        Act("c", ((3, 10), (62, 70))),
        Act("d", ((4, 70),)),
        Act("e", ((62, 70),)),
    ]
    acts = [Act(a.key, a.intervals, position=(100.0 * i, 500.0)) for i, a in enumerate(acts)]
    updates, suppressed, _ = drive(P(max_starts_per_minute=2), acts, 65, step=1.0)
    # c and d are over the cap; d stays suppressed while it lasts, c may start again once it has ended and the
    # minute since the first starts has passed
    assert rows(updates) == [
        ("start", 1, "a", 1.0),
        ("start", 2, "b", 2.0),
        ("end", 1, "a", 10.0),
        ("start", 3, "c", 62.0),
        ("start", 4, "e", 62.0),
    ]
    assert suppressed == [("fake", "rate_limit"), ("fake", "rate_limit")]


def test_messages_of_one_incident():
    updates, _, _ = drive(P(update_interval_s=1), [Act("a", ((1, 3),), details=lambda t: {"t": t})], 5)
    start, update, *_, end = updates
    assert {u.incident_id for u in updates} == {"i1"}
    assert len({u.id for u in updates}) == len(updates)
    assert (start.rule, start.rule_type, start.severity, start.camera, start.zone) == (
        "fake",
        "fake_type",
        "warning",
        "cam",
        "z",
    )
    assert all(u.started_ts == WALL0 + 1.0 for u in updates)
    assert (update.ts, update.details) == (WALL0 + 2.0, {"t": 2.0})
    assert (end.ts, end.ts_mono, end.frame_seq) == (WALL0 + 3.0, 3.0, 6)  # the first frame without the condition


def test_fold_counts_merged_identities():
    updates, _, _ = drive(
        P(merge_window_s=3, merge_distance=1.5), [Act("a", ((1, 4),)), Act("b", ((5, 8),), position=NEAR)], 12
    )
    assert updates[-1].details == {"merged_identities": 1}


def test_cooldown_covers_every_key_a_folded_incident_had():
    policy = P(merge_window_s=3, merge_distance=1.5, cooldown_s=10)
    acts = [Act("a", ((1, 4), (13, 15)), position=FAR), Act("b", ((5, 8), (13, 15)), position=FAR)]
    updates, _, _ = drive(policy, acts, 16)
    # b folds into a's incident, which ends at 8 (sent at 11): neither a nor b may start again before 18
    assert rows(updates) == [("start", 1, "a", 1.0), ("end", 1, "b", 8.0)]


def test_close_all_ends_open_and_closing_incidents():
    policy = P(merge_window_s=3, merge_distance=1.5)
    updates, _, book = drive(policy, [Act("a", ((1, 4),)), Act("b", ((1, 9),), position=FAR)], 5, close_at=5.0)
    assert book.open_incidents == []
    ends = [u for u in updates if u.phase == "end"]
    assert [(u.subjects[0].class_name, u.ts - WALL0, u.details["end_reason"]) for u in ends] == [
        ("a", 4.0, "stopped"),  # was waiting out its merge window: stamped when it stopped
        ("b", 5.0, "stopped"),
    ]


def test_open_incidents_lists_only_those_in_progress():
    _, _, book = drive(
        P(merge_window_s=3, merge_distance=1.5), [Act("a", ((1, 4),)), Act("b", ((1, 9),), position=FAR)], 5
    )
    assert [(incident_id, rule) for incident_id, rule, _ in book.open_incidents] == [("i2", "fake")]


def test_rules_do_not_share_state():
    book = IncidentBook("cam", new_id=iter(f"i{n}" for n in itertools.count(1)).__next__)
    one, two = FakeRule(P(cooldown_s=100), id="one"), FakeRule(P(), id="two")
    condition = Condition(key="k", position=(1.0, 1.0), scale=10.0)
    out = []
    for t, rules in ((0, (one, two)), (1, ()), (2, (one, two))):
        for rule in (one, two):
            out += book.observe(rule, [condition] if rule in rules else [], ctx(t))
    assert [(u.rule, u.phase, u.ts - WALL0) for u in out] == [
        ("one", "start", 0),
        ("two", "start", 0),
        ("one", "end", 1),
        ("two", "end", 1),
        ("two", "start", 2),
    ]
