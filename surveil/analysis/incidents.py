"""The incident book: conditions in, ``start`` / ``update`` / ``end`` out, one per camera.

Rules say what is true in each frame (:class:`~surveil.rules.base.Condition`, keyed by what it is
about). The book owns the lifecycle, for every rule alike:

- a condition becomes an incident once it has lasted ``min_duration_s``; the incident gets one
  id that its start, updates and end share;
- ``update`` is sent at most every ``update_interval_s`` while the details change;
- the incident ends when none of its keys is active any more; for rules that follow tracks the
  end waits ``merge_window_s`` first, because
- *identity-swap folding*: when a new key appears within ``merge_window_s`` of an incident's
  subject being lost (the tracker no longer sees it), no farther than ``merge_distance`` box
  heights from where it was last seen, it joins that incident instead of starting a new one (a
  tracker that swaps or re-births an identity inside a walking group does not make a second
  alert for the same person); the same key returning within the window continues its incident.
  The box height is capped at ``SCENE_CAP`` of the frame height: in a close-up, where one person
  is half the picture tall, 1.5 box heights would cover the whole frame and fold the next person
  who walks in. When both subjects carry an appearance embedding (``Track.embedding``), they
  must also look alike (cosine similarity at least ``MIN_SIMILARITY``), and the most similar of
  the candidates near enough wins;
- a track-following incident whose subjects the tracker still holds for re-identification
  (``FrameContext.held``) does not end until the tracker gives them back or lets them go; the
  end's timestamp is still when the condition stopped;
- after an incident ends, the same (rule, key) cannot start again for ``cooldown_s``;
- at most ``max_starts_per_minute`` starts per rule; extra conditions are suppressed (counted).
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from surveil.rules.base import Condition, FrameContext, Rule
from surveil.types import AlertUpdate, Subject

_BORN_SLACK_S = 1.0  # a re-born identity may appear (tentatively) just before the old one is last matched
SCENE_CAP = 0.2  # folding's yardstick: a box height, but at most this fraction of the frame height
# Folding needs at least this cosine similarity between two embeddings. Lenient on purpose: it only
# vetoes a subject that plainly looks different. On PETS09-S2L1 with the shipped model's embeddings
# (bench/rules_phases_pets.py) 8 % of same-person pairs 1-4 s apart fall below it, and it stops 44 %
# of different-people pairs: distance, time and track age do most of the work.
MIN_SIMILARITY = 0.5


@dataclass
class _Incident:
    id: str
    rule: Rule
    keys: set[Hashable]
    started_at: float  # book clock
    started_wall: float
    subjects: tuple[Subject, ...]
    details: dict
    position: tuple[float, float] | None
    scale: float
    embedding: np.ndarray | None  # the subject's appearance when last seen, if the tracker gives one
    last_seen_at: float  # book clock time a subject was last seen
    last_update_at: float
    published_details: dict
    closing_since: float | None = None  # every key inactive since then (clock, wall, mono, seq)
    closing_wall: float = 0.0
    closing_mono: float = 0.0
    closing_seq: int | None = None
    merged: int = 0
    all_keys: set[Hashable] = field(default_factory=set)  # every key it ever had (for the cooldown)


@dataclass
class _RuleState:
    pending: dict[Hashable, float] = field(default_factory=dict)  # key -> first active time
    suppressed: set[Hashable] = field(default_factory=set)  # over the rate cap until it ends
    cooldown_until: dict[Hashable, float] = field(default_factory=dict)
    starts: deque = field(default_factory=deque)  # start times within the last minute


class IncidentBook:
    def __init__(
        self,
        camera: str,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        on_suppressed: Callable[[str, str], None] = lambda rule, reason: None,
    ):
        self.camera = camera
        self._new_id = new_id
        self._on_suppressed = on_suppressed
        self._open: list[_Incident] = []
        self._by_key: dict[tuple[str, Hashable], _Incident] = {}
        self._rules: dict[str, _RuleState] = {}

    @property
    def open_incidents(self) -> list[tuple[str, str, tuple[Subject, ...]]]:
        """(incident id, rule id, subjects) of every incident in progress (for views and tests)."""
        return [(i.id, i.rule.id, i.subjects) for i in self._open if i.closing_since is None]

    def observe(self, rule: Rule, conditions: Sequence[Condition], ctx: FrameContext) -> list[AlertUpdate]:
        """Apply one evaluation of ``rule``; return the messages it causes, in order."""
        state = self._rules.setdefault(rule.id, _RuleState())
        active = {c.key: c for c in conditions}
        out: list[AlertUpdate] = []
        known = {k: c for k, c in active.items() if (rule.id, k) in self._by_key}
        for key, condition in known.items():  # first, so that folding knows who was seen in this frame
            self._refresh(self._by_key[(rule.id, key)], key, condition, ctx, out)
        for key, condition in active.items():
            if key in known:
                continue
            incident = self._fold(rule, key, condition, ctx)
            if incident is not None:
                self._refresh(incident, key, condition, ctx, out)
            else:
                self._maybe_start(rule, state, key, condition, ctx, out)
        self._forget_inactive(rule, state, active, ctx)
        out += self._close_due(rule, ctx)
        return out

    def close_all(self, ctx: FrameContext, reason: str) -> list[AlertUpdate]:
        """End every open incident now (the stream ended, the rule was removed)."""
        out = []
        for incident in list(self._open):
            if incident.closing_since is None:
                self._mark_closing(incident, ctx)
            incident.details = {**incident.details, "end_reason": reason}
            out.append(self._finish(incident, ctx.now))
        return out

    # ------------------------------------------------------------------ start

    def _maybe_start(
        self,
        rule: Rule,
        state: _RuleState,
        key: Hashable,
        condition: Condition,
        ctx: FrameContext,
        out: list[AlertUpdate],
    ) -> None:
        policy = rule.policy
        if key in state.suppressed or ctx.now < state.cooldown_until.get(key, -math.inf):
            return
        first = state.pending.setdefault(key, ctx.now)
        if ctx.now - first < policy.min_duration_s:
            return
        while state.starts and ctx.now - state.starts[0] >= 60.0:
            state.starts.popleft()
        if policy.max_starts_per_minute is not None and len(state.starts) >= policy.max_starts_per_minute:
            state.suppressed.add(key)
            state.pending.pop(key, None)
            self._on_suppressed(rule.id, "rate_limit")
            return
        state.pending.pop(key, None)
        state.starts.append(ctx.now)
        incident = _Incident(
            id=self._new_id(),
            rule=rule,
            keys={key},
            started_at=ctx.now,
            started_wall=ctx.ts_wall,
            subjects=condition.subjects,
            details=dict(condition.details),
            position=condition.position,
            scale=condition.scale,
            embedding=condition.embedding,
            last_seen_at=ctx.now,
            last_update_at=ctx.now,
            published_details=dict(condition.details),
            all_keys={key},
        )
        self._open.append(incident)
        self._by_key[(rule.id, key)] = incident
        out.append(self._message(incident, "start", ctx))

    def _fold(self, rule: Rule, key: Hashable, condition: Condition, ctx: FrameContext) -> _Incident | None:
        """The incident this new key continues, if any.

        The same key coming back while its incident waits to end (a person stepping out and back
        in) continues it. A new key continues an incident whose subject the tracker has lost or
        only predicts (not one it still sees: that person simply left), last seen within
        ``merge_window_s`` and ``merge_distance`` box heights of where the new key appears, and
        only when the new subject is younger than that loss: a track that already existed while
        the lost one was still seen is somebody else.
        """
        policy = rule.policy
        if policy.merge_window_s <= 0:
            return None
        mine = [i for i in self._open if i.rule is rule]
        returning = next((i for i in mine if key in i.all_keys), None)
        if returning is not None or condition.position is None:
            return returning
        seen_now = {t.track_id for t in ctx.tracks or () if t.missed == 0}
        candidates = []
        for incident in mine:
            if incident.position is None or any(s.track_id in seen_now for s in incident.subjects):
                continue
            if ctx.now - incident.last_seen_at > policy.merge_window_s:
                continue
            if condition.born is not None and condition.born < incident.last_seen_at - _BORN_SLACK_S:
                continue  # the new subject was tracked before the lost one vanished: somebody else
            scale = min(max(incident.scale, condition.scale, 1.0), SCENE_CAP * max(ctx.height, 1))
            distance = math.dist(incident.position, condition.position) / scale
            similarity = _similarity(incident.embedding, condition.embedding)
            if distance <= policy.merge_distance and similarity >= MIN_SIMILARITY:
                candidates.append((-similarity, distance, id(incident), incident))
        if not candidates:
            return None
        best = min(candidates)[-1]
        best.merged += 1
        return best

    # ------------------------------------------------------------------ progress and end

    def _refresh(
        self, incident: _Incident, key: Hashable, condition: Condition, ctx: FrameContext, out: list[AlertUpdate]
    ) -> None:
        if key not in incident.keys:
            incident.keys.add(key)
            incident.all_keys.add(key)
            self._by_key[(incident.rule.id, key)] = incident
        incident.closing_since = None
        if condition.seen or not incident.subjects:  # boxes where the object was seen, never a prediction
            incident.subjects = condition.subjects or incident.subjects
        incident.details = {
            **dict(condition.details),
            **({"merged_identities": incident.merged} if incident.merged else {}),
        }
        if condition.seen:
            incident.last_seen_at = ctx.now
            incident.position, incident.scale = condition.position, condition.scale
            incident.embedding = condition.embedding if condition.embedding is not None else incident.embedding
        interval = incident.rule.policy.update_interval_s
        if (
            interval > 0
            and ctx.now - incident.last_update_at >= interval
            and incident.details != incident.published_details
        ):
            incident.last_update_at = ctx.now
            incident.published_details = dict(incident.details)
            out.append(self._message(incident, "update", ctx))

    def _forget_inactive(self, rule: Rule, state: _RuleState, active: dict, ctx: FrameContext) -> None:
        for key in [k for k in state.pending if k not in active]:
            del state.pending[key]
        state.suppressed &= set(active)
        if len(state.cooldown_until) > 64:  # forget expired cooldowns: track keys never come back
            state.cooldown_until = {k: t for k, t in state.cooldown_until.items() if t > ctx.now}
        for (rule_id, key), incident in list(self._by_key.items()):
            if rule_id != rule.id or key in active:
                continue
            incident.keys.discard(key)
            del self._by_key[(rule_id, key)]
            if not incident.keys and incident.closing_since is None:
                self._mark_closing(incident, ctx)

    @staticmethod
    def _mark_closing(incident: _Incident, ctx: FrameContext) -> None:
        incident.closing_since = ctx.now
        incident.closing_wall, incident.closing_mono, incident.closing_seq = ctx.ts_wall, ctx.ts_mono, ctx.seq

    def _close_due(self, rule: Rule, ctx: FrameContext) -> list[AlertUpdate]:
        due = [
            i
            for i in self._open
            if i.rule is rule
            and i.closing_since is not None
            and ctx.now - i.closing_since >= rule.policy.merge_window_s
            and not self._held(i, ctx)
        ]
        return [self._finish(incident, ctx.now) for incident in due]

    @staticmethod
    def _held(incident: _Incident, ctx: FrameContext) -> bool:
        """The tracker still holds every subject of this track-following incident for re-identification:
        its end waits (its timestamp stays when the condition stopped), and the person coming back under
        the same id continues it."""
        return (
            incident.rule.policy.merge_window_s > 0
            and bool(incident.subjects)
            and all(s.track_id in ctx.held for s in incident.subjects)
        )

    def _finish(self, incident: _Incident, now: float) -> AlertUpdate:
        self._open.remove(incident)
        for key in list(incident.keys):
            self._by_key.pop((incident.rule.id, key), None)
        state = self._rules.setdefault(incident.rule.id, _RuleState())
        for key in incident.all_keys:
            state.cooldown_until[key] = now + incident.rule.policy.cooldown_s
        return self._end_message(incident)

    # ------------------------------------------------------------------ messages

    def _message(self, incident: _Incident, phase: str, ctx: FrameContext) -> AlertUpdate:
        rule = incident.rule
        return AlertUpdate(
            id=AlertUpdate.new_id(),
            incident_id=incident.id,
            phase=phase,
            camera=self.camera,
            rule=rule.id,
            rule_type=rule.type,
            severity=rule.severity,
            ts=ctx.ts_wall,
            ts_mono=ctx.ts_mono,
            started_ts=incident.started_wall,
            frame_seq=ctx.seq,
            zone=rule.zone,
            line=rule.line,
            subjects=incident.subjects,
            details=dict(incident.details),
        )

    def _end_message(self, incident: _Incident) -> AlertUpdate:
        rule = incident.rule
        return AlertUpdate(
            id=AlertUpdate.new_id(),
            incident_id=incident.id,
            phase="end",
            camera=self.camera,
            rule=rule.id,
            rule_type=rule.type,
            severity=rule.severity,
            ts=max(incident.closing_wall, incident.started_wall),
            ts_mono=incident.closing_mono,
            started_ts=incident.started_wall,
            frame_seq=incident.closing_seq,
            zone=rule.zone,
            line=rule.line,
            subjects=incident.subjects,
            details=dict(incident.details),
        )


def _similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine similarity of two appearance embeddings; 1.0 (no veto) when either is unknown or they differ in size."""
    if a is None or b is None or a.shape != b.shape:
        return 1.0
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm > 0 else 1.0
