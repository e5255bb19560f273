"""Deterministic synthetic scenes with the exact incidents they must cause.

A :class:`Scenario` is a small script: a camera's zones, lines and rules (the same typed config
the daemon reads), objects drawn as filled rectangles that follow piecewise-linear paths in time,
view effects (``dark``, ``blur``, ``shift``, ``frozen``) and stream outages (``down``), plus the
incidents the analyser must report: ``(rule id, phase, subject object name or None, time)``.

Frames are rendered on a textured background (seeded smooth noise and a gradient) with a little
per-frame sensor noise, so the frame-level rules (tamper, frozen stream) see a realistic image.
Every frame carries its scenario time, burnt into its first two pixels like a camera's
on-screen clock; :class:`ScriptedDetector` reads it back and returns the scripted boxes of that
moment, so a test stays behind the :class:`surveil.detection.torch_detector.Detector` interface:

    detections = detector.detect([frame.image])[0]
    updates = analyzer.process(analyzer.context(frame, detections))

A frozen stream repeats an earlier image, clock included, so the detector sees what a real one
would: the same picture again. :func:`run_scenario` drives a real :class:`CameraAnalyzer` (real
tracker, real rules, an incident book with deterministic ids) through a scenario and returns what
came out, with track ids mapped back to the scripted objects' names.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from surveil.analysis.analyzer import CameraAnalyzer
from surveil.analysis.incidents import IncidentBook
from surveil.config import CameraConfig, TrackerConfig
from surveil.geometry import box_iou
from surveil.rules import build_geometry, build_rules
from surveil.tracking import make_tracker
from surveil.types import AlertUpdate, Detections, Frame, Track

CLASS_NAMES = ["__background__", "person", "car", "backpack"]
WIDTH, HEIGHT = 320, 240
WALL0 = 1_705_316_400.0  # Monday 2024-01-15 12:00 Europe/Berlin
TRACK_RULE_TYPES = frozenset({"zone_intrusion", "loitering", "line_crossing", "abandoned_object"})
_MAGIC = (0x5A, 0xA5, 0x5A)

Interval = tuple[float, float]


def _inside(t: float, intervals: Sequence[Interval]) -> bool:
    return any(t0 <= t < t1 for t0, t1 in intervals)


@dataclass(frozen=True)
class Obj:
    """A scripted object: its box's bottom centre follows ``path`` [(t, x, y), ...] in pixels.

    It exists from the first key time to the last (absent before and after). While it exists the
    detector reports it with ``score``, except inside ``misses`` (drawn, not detected) and inside
    ``scores`` intervals [(t0, t1, score)], which override the score.
    """

    name: str
    cls: str
    path: tuple[tuple[float, float, float], ...]
    size: tuple[float, float] = (20.0, 48.0)  # width, height in pixels
    score: float = 0.9
    misses: tuple[Interval, ...] = ()
    scores: tuple[tuple[float, float, float], ...] = ()
    colour: tuple[int, int, int] = (40, 40, 220)

    def __post_init__(self) -> None:
        times = [p[0] for p in self.path]
        if not self.path or times != sorted(times):
            raise ValueError(f"{self.name}: path key times must be given in order")

    def box_at(self, t: float) -> tuple[float, float, float, float] | None:
        times = [p[0] for p in self.path]
        if t < times[0] - 1e-9 or t > times[-1] + 1e-9:
            return None
        x = float(np.interp(t, times, [p[1] for p in self.path]))
        y = float(np.interp(t, times, [p[2] for p in self.path]))
        w, h = self.size
        return (x - w / 2, y - h, x + w / 2, y)

    def detected_score(self, t: float) -> float | None:
        if self.box_at(t) is None or _inside(t, self.misses):
            return None
        for t0, t1, score in self.scores:
            if t0 <= t < t1:
                return score
        return self.score


def person(name: str, *path: tuple[float, float, float], **kw: Any) -> Obj:
    return Obj(name, "person", tuple(path), **kw)


def car(name: str, *path: tuple[float, float, float], **kw: Any) -> Obj:
    return Obj(name, "car", tuple(path), size=(60.0, 30.0), colour=(200, 60, 40), **kw)


def bag(name: str, *path: tuple[float, float, float], **kw: Any) -> Obj:
    return Obj(name, "backpack", tuple(path), size=(16.0, 16.0), colour=(30, 200, 230), **kw)


def jitter(
    t0: float, t1: float, x: float, y: float, amplitude: float, period: float = 0.2, axis: str = "y"
) -> list[tuple[float, float, float]]:
    """Key points that hop between ``y - amplitude`` and ``y + amplitude`` (or along x) every ``period``."""
    points, k = [], 0
    while t0 + k * period <= t1 + 1e-9:
        offset = -amplitude if k % 2 == 0 else amplitude
        points.append((t0 + k * period, x + offset, y) if axis == "x" else (t0 + k * period, x, y + offset))
        k += 1
    return points


@dataclass(frozen=True)
class Effect:
    """A view effect over [t0, t1): dark, blur, shift (view moved), frozen (last image repeated), down (no frames)."""

    kind: str
    t0: float
    t1: float
    reason: str = "timeout"  # down only

    def __post_init__(self) -> None:
        if self.kind not in ("dark", "blur", "shift", "frozen", "down"):
            raise ValueError(f"unknown effect {self.kind!r}")


@dataclass(frozen=True)
class Expected:
    """One alert update the scenario must cause; ``details`` (if given) must be a subset of the update's."""

    rule: str
    phase: str
    subject: str | None
    t: float
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Observed:
    rule: str
    phase: str
    subject: str | None
    t: float  # scenario time of the update (its ts minus the scenario's wall-clock origin)
    incident: int  # 1, 2, ... in order of each incident id's first appearance
    details: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: tuple[dict[str, Any], ...]
    objects: tuple[Obj, ...] = ()
    zones: tuple[dict[str, Any], ...] = ()
    lines: tuple[dict[str, Any], ...] = ()
    effects: tuple[Effect, ...] = ()
    duration: float = 20.0
    fps: float = 5.0
    expected: tuple[Expected, ...] = ()
    tolerance_s: float = 0.3  # |observed t - expected t| allowed for every update
    wall0: float = WALL0  # wall-clock time of scenario time 0
    tracker: dict[str, Any] = field(default_factory=dict)  # TrackerConfig overrides
    states: dict[tuple[str, str, str], tuple[dict[str, int], ...]] = field(
        default_factory=dict
    )  # every value reported, in order
    suppressed: int = 0  # rate-capped starts expected
    seed: int = 7

    def camera_config(self) -> CameraConfig:
        return CameraConfig(
            name="cam", url="synthetic.mp4", zones=list(self.zones), lines=list(self.lines), rules=list(self.rules)
        )

    def with_fps(self, fps: float) -> Scenario:
        return dataclasses.replace(self, fps=fps)

    def effect_at(self, kind: str, t: float) -> Effect | None:
        return next((e for e in self.effects if e.kind == kind and e.t0 <= t < e.t1), None)

    def detections_at(self, t: float) -> tuple[Detections, list[str]]:
        boxes, scores, classes, names = [], [], [], []
        for obj in self.objects:
            score = obj.detected_score(t)
            if score is not None:
                boxes.append(obj.box_at(t))
                scores.append(score)
                classes.append(CLASS_NAMES.index(obj.cls))
                names.append(obj.name)
        return Detections.from_arrays(boxes, scores, classes), names


# ---------------------------------------------------------------------------- rendering


def background(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A textured view: smooth blobs of every grey level over a gentle gradient (uint8, BGR)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 3.0)
    noise = (noise - noise.mean()) / (noise.std() + 1e-6)
    grey = 128 + 70 * noise + np.linspace(-20, 20, width, dtype=np.float32)[None, :]
    tint = np.stack([grey * 0.95, grey, grey * 1.05], axis=2)
    return np.clip(tint, 0, 255).astype(np.uint8)


def stamp(image: np.ndarray, t: float) -> np.ndarray:
    """Burn scenario time ``t`` (milliseconds, 24 bits) into pixels (0, 0) and (0, 1)."""
    ms = round(t * 1000)
    image[0, 0] = (ms & 255, (ms >> 8) & 255, (ms >> 16) & 255)
    image[0, 1] = _MAGIC
    return image


def read_stamp(image: np.ndarray) -> float:
    if tuple(int(v) for v in image[0, 1]) != _MAGIC:
        raise ValueError("image carries no scenario time stamp (not rendered by tests.support.scenarios)")
    b, g, r = (int(v) for v in image[0, 0])
    return (b | g << 8 | r << 16) / 1000.0


class Renderer:
    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.background = background(scenario.seed)
        self._last: np.ndarray | None = None
        rng = np.random.default_rng(scenario.seed)
        self._noise = [np.rint(rng.normal(0.0, 4.0, self.background.shape)).astype(np.int16) for _ in range(7)]

    def frame_image(self, t: float, index: int) -> np.ndarray:
        """The image delivered at scenario time ``t`` (a repeat of an earlier one while frozen)."""
        if self._last is not None and self.scenario.effect_at("frozen", t) is not None:
            return self._last.copy()
        image = self.background.copy()
        for obj in self.scenario.objects:
            box = obj.box_at(t)
            if box is not None:
                x1, y1, x2, y2 = (round(v) for v in box)
                cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), obj.colour, thickness=-1)
        noise = self._noise[index % len(self._noise)]  # sensor noise: no two consecutive frames are identical
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        image = self._effects(image, t)
        self._last = stamp(image, t)
        return self._last.copy()

    def _effects(self, image: np.ndarray, t: float) -> np.ndarray:
        if self.scenario.effect_at("shift", t) is not None:
            image = np.roll(image, (HEIGHT // 3, WIDTH // 2), axis=(0, 1))
        if self.scenario.effect_at("blur", t) is not None:
            image = cv2.GaussianBlur(image, (0, 0), 4.0)
        if self.scenario.effect_at("dark", t) is not None:
            image = (image.astype(np.float32) * 0.05).astype(np.uint8)
        return image


# ---------------------------------------------------------------------------- detector


class ScriptedDetector:
    """Implements surveil.detection.torch_detector.Detector: each scripted object's box at the time stamped in the image."""

    class_names = CLASS_NAMES

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.last_names: list[str] = []  # object name of each detection of the latest image

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            detections, self.last_names = self.scenario.detections_at(read_stamp(image))
            out.append(detections)
        return out


class NamingTracker:
    """Wraps a real tracker; names each track after the scripted object whose detection it carries."""

    def __init__(self, inner, detector: ScriptedDetector):
        self.inner, self.detector = inner, detector
        self.names: dict[int, str] = {}
        self.swaps: list[tuple[int, str, str]] = []  # (track id, first name, later name)

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list[Track]:
        tracks = self.inner.update(detections, now, confident)
        if len(detections):
            for track in tracks:
                if track.missed:
                    continue
                iou = box_iou(np.asarray([track.xyxy], np.float64), detections.xyxy.astype(np.float64))[0]
                name = self.detector.last_names[int(np.argmax(iou))]
                first = self.names.setdefault(track.track_id, name)
                if first != name:
                    self.swaps.append((track.track_id, first, name))
        return tracks

    def reset(self) -> None:
        self.inner.reset()


# ---------------------------------------------------------------------------- running


@dataclass
class Run:
    scenario: Scenario
    updates: list[AlertUpdate] = field(default_factory=list)
    states: dict[tuple[str, str, str], list[dict[str, int]]] = field(default_factory=dict)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    tracker: NamingTracker | None = None
    analyzer: CameraAnalyzer | None = None

    @property
    def incidents(self) -> list[Observed]:
        numbers: dict[str, int] = {}
        names = self.tracker.names if self.tracker else {}
        out = []
        for u in self.updates:
            number = numbers.setdefault(u.incident_id, len(numbers) + 1)
            subject = None
            if u.rule_type in TRACK_RULE_TYPES and len(u.subjects) == 1:
                subject = names.get(u.subjects[0].track_id, f"track-{u.subjects[0].track_id}")
            out.append(
                Observed(u.rule, u.phase, subject, round(u.ts - self.scenario.wall0, 3), number, dict(u.details))
            )
        return out


def timeline(scenario: Scenario) -> list[tuple[float, str, Effect | None]]:
    """(t, what, effect) in order: 'frame', or 'down' / 'tick' / 'up' around each outage."""
    n = round(scenario.duration * scenario.fps)
    events = []
    for k in range(n + 1):
        t = round(k / scenario.fps, 6)
        if scenario.effect_at("down", t) is None:
            events.append((t, 2, "frame", None))
    for effect in (e for e in scenario.effects if e.kind == "down"):
        events.append((effect.t0, 0, "down", effect))
        tick = effect.t0 + 1.0
        while tick < effect.t1 - 1e-9:
            events.append((tick, 1, "tick", effect))
            tick += 1.0
        events.append((effect.t1, 0, "up", effect))
    return [(t, what, effect) for t, _, what, effect in sorted(events, key=lambda e: (e[0], e[1]))]


def build(scenario: Scenario) -> tuple[CameraAnalyzer, ScriptedDetector, Run]:
    """A real analyser for the scenario's camera: real tracker and rules, deterministic incident ids."""
    camera = scenario.camera_config()
    detector = ScriptedDetector(scenario)
    run = Run(scenario)
    counter = itertools.count(1)
    book = IncidentBook(
        camera.name,
        new_id=lambda: f"incident-{next(counter)}",
        on_suppressed=lambda rule, reason: run.suppressed.append((rule, reason)),
    )
    run.tracker = NamingTracker(make_tracker(TrackerConfig(**scenario.tracker), camera.name), detector)
    zones, lines = build_geometry(camera)

    def on_state(camera_name: str, report, previous: dict[str, int]) -> None:
        run.states.setdefault((report.kind, report.name, report.rule), []).append(dict(report.values))

    analyzer = CameraAnalyzer(
        camera.name,
        run.tracker,
        build_rules(camera, CLASS_NAMES),
        CLASS_NAMES,
        zones=list(zones.values()),
        lines=list(lines.values()),
        book=book,
        on_state=on_state,
    )
    return analyzer, detector, run


def run_scenario(scenario: Scenario, fps: float | None = None) -> Run:
    scenario = scenario if fps is None else scenario.with_fps(fps)
    analyzer, detector, run = build(scenario)
    run.analyzer = analyzer
    renderer = Renderer(scenario)
    for index, (t, what, effect) in enumerate(timeline(scenario)):
        wall = scenario.wall0 + t
        if what == "frame":
            frame = Frame("cam", index, t, wall, renderer.frame_image(t, index))
            detections = detector.detect([frame.image])[0]
            run.updates += analyzer.process(analyzer.context(frame, detections))
        elif what == "tick":
            run.updates += analyzer.tick(t, wall)
        else:
            run.updates += analyzer.stream_changed(what == "up", effect.reason if what == "down" else "", t, wall)
    return run


def mismatches(observed: Sequence[Observed], expected: Sequence[Expected], tolerance_s: float) -> list[str]:
    """Every difference between what came out and what was expected (empty: they match).

    Phases, rules and subjects must match one for one, in order; times within ``tolerance_s``;
    incident ids must group the same way: each expected ``start`` opens a new incident, and an
    ``update`` / ``end`` belongs to the latest incident opened for that (rule, subject).
    """
    problems = []
    if len(observed) != len(expected):
        problems.append(f"{len(observed)} updates, expected {len(expected)}")
    numbers: dict[tuple[str, str | None], int] = {}
    expected_numbers, opened = [], itertools.count(1)
    for e in expected:
        if e.phase == "start":
            numbers[(e.rule, e.subject)] = next(opened)
        expected_numbers.append(numbers.get((e.rule, e.subject), -1))
    for i, (o, e) in enumerate(zip(observed, expected)):
        if (o.rule, o.phase, o.subject) != (e.rule, e.phase, e.subject):
            problems.append(f"#{i}: got {(o.rule, o.phase, o.subject)} expected {(e.rule, e.phase, e.subject)}")
        if abs(o.t - e.t) > tolerance_s + 1e-9:
            problems.append(f"#{i} {e.rule} {e.phase} {e.subject}: at t={o.t}, expected {e.t} +- {tolerance_s}")
        if e.details is not None and any(o.details.get(k) != v for k, v in e.details.items()):
            problems.append(f"#{i} {e.rule} {e.phase}: details {o.details} lack {e.details}")
    got_numbers = [o.incident for o in observed]
    if len(observed) == len(expected) and _canonical(got_numbers) != _canonical(expected_numbers):
        problems.append(f"incident grouping {got_numbers}, expected {expected_numbers}")
    return problems


def _canonical(numbers: Sequence[int]) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(n, len(seen) + 1) for n in numbers]


def describe(observed: Sequence[Observed]) -> str:
    return "\n".join(
        f"  {o.incident:2d} {o.rule:14s} {o.phase:6s} {o.subject!s:8s} t={o.t:7.3f} {o.details}" for o in observed
    )


# ---------------------------------------------------------------------------- the catalogue
#
# Image 320 x 240 at 5 fps unless said otherwise. People are 20 x 48 boxes placed by their feet
# (bottom centre); rows of people keep 50 px apart. Zones: RIGHT is x >= 160, LEFT x < 160, BENCH
# x < 128 (a point on a polygon's left edge is inside, on its right edge outside). The line GATE
# runs y = 120 from x = 64 to x = 256; a->b points right, so its forward side is below it.
# Expected times are worked out by hand in the comments: a walker at 40 px/s that starts at
# x = 121 or 201 is first inside RIGHT / LEFT on the frame 1.0 s after it starts moving.

RIGHT = {"name": "right", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]}
LEFT = {"name": "left", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]}
BENCH = {"name": "bench", "polygon": [[0.0, 0.0], [0.4, 0.0], [0.4, 1.0], [0.0, 1.0]]}
GATE = {"name": "gate", "a": [0.2, 0.5], "b": [0.8, 0.5], "forward": "southbound", "backward": "northbound"}
BERLIN_NIGHT = {"timezone": "Europe/Berlin", "start": "22:00", "end": "06:00", "days": ["mon"]}
MON_2300_BERLIN = 1_705_356_000.0
E = Expected


def _intrusion(rule_id: str, **kw: Any) -> dict[str, Any]:
    return {"id": rule_id, "type": "zone_intrusion", "zone": "right", "classes": ["person"], **kw}


def _quick(rule_id: str, **kw: Any) -> dict[str, Any]:
    """Zone intrusion that enters and leaves on one frame, with no identity-swap wait."""
    return _intrusion(rule_id, min_frames=1, exit_frames=1, merge_window_s=0, **kw)


# walks into RIGHT (inside from t=3.0, three frames -> in at 3.4), stands, walks out (outside
# from 11.2, three frames -> out at 11.6)
_P_IN_OUT = person("p1", (0, 41, 150), (6, 281, 150), (8, 281, 150), (14, 41, 150), (18, 41, 150))


def _catalogue() -> list[Scenario]:
    s = []
    s.append(
        Scenario(
            "intrusion_enter_leave_class_filter",
            zones=(RIGHT,),
            rules=(_intrusion("door"), _intrusion("door_any", classes=[])),
            objects=(
                _P_IN_OUT,
                car("c1", (0, 41, 225), (4, 41, 225), (8, 241, 225), (18, 241, 225)),  # inside from 6.4 -> in at 6.8
                person("ghost", (0, 250, 60), (18, 250, 60), score=0.2),  # too weak to start a track
            ),
            duration=18,
            expected=(  # ends are emitted merge_window_s (4 s) after the object left, stamped with the leaving frame
                E("door", "start", "p1", 3.4, {"dwell_s": 0.4}),
                E("door_any", "start", "p1", 3.4),
                E("door_any", "start", "c1", 6.8),
                E("door", "end", "p1", 11.6),
                E("door_any", "end", "p1", 11.6),
            ),
        )
    )
    night = _intrusion("night", merge_window_s=0, schedule=BERLIN_NIGHT)
    s.append(
        Scenario(
            "intrusion_schedule_armed",
            zones=(RIGHT,),
            rules=(night,),
            objects=(_P_IN_OUT,),
            duration=18,
            wall0=MON_2300_BERLIN,
            expected=(E("night", "start", "p1", 3.4), E("night", "end", "p1", 11.6)),
        )
    )
    s.append(
        Scenario(
            "intrusion_schedule_disarmed_by_day",
            zones=(RIGHT,),
            rules=(night,),
            objects=(_P_IN_OUT,),
            duration=18,
            wall0=WALL0,
        )
    )
    s.append(
        Scenario(
            "intrusion_schedule_disarmed_on_other_day",
            zones=(RIGHT,),
            rules=(night,),
            objects=(_P_IN_OUT,),
            duration=18,
            wall0=MON_2300_BERLIN + 86400,
        )
    )  # Tuesday 23:00: the window starts on Mondays only
    s.append(
        Scenario(  # 21:59:55: armed from t=5.0, while p1 has been inside since 3.0
            "intrusion_schedule_becomes_armed",
            zones=(RIGHT,),
            rules=(night,),
            objects=(_P_IN_OUT,),
            duration=18,
            wall0=MON_2300_BERLIN - 3605,
            expected=(E("night", "start", "p1", 5.0, {"dwell_s": 2.0}), E("night", "end", "p1", 11.6)),
        )
    )
    s.append(
        Scenario(  # in at 1.0, out at 5.2 (cooldown to 13.2), in at 8.0 (blocked), out, in at 15.0, out at 19.2
            "intrusion_cooldown",
            zones=(RIGHT,),
            rules=(_quick("door", cooldown_s=8),),
            objects=(
                person(
                    "p1",
                    (0, 121, 150),
                    (2, 201, 150),
                    (4, 201, 150),
                    (6, 121, 150),
                    (7, 121, 150),
                    (9, 201, 150),
                    (10, 201, 150),
                    (12, 121, 150),
                    (14, 121, 150),
                    (16, 201, 150),
                    (18, 201, 150),
                    (20, 121, 150),
                    (21, 121, 150),
                ),
            ),
            duration=21,
            expected=(
                E("door", "start", "p1", 1.0),
                E("door", "end", "p1", 5.2),
                E("door", "start", "p1", 15.0),
                E("door", "end", "p1", 19.2),
            ),
        )
    )
    s.append(
        Scenario(  # p1 inside 1.0-3.0 (2 s < 3 s); p2 inside from 6.0 -> start 9.0, out at 12.2
            "intrusion_min_duration",
            zones=(RIGHT,),
            rules=(_quick("door", min_duration_s=3),),
            objects=(
                person("p1", (0, 121, 150), (2, 201, 150), (4, 121, 150)),
                person("p2", (5, 121, 210), (7, 201, 210), (11, 201, 210), (13, 121, 210), (15, 121, 210)),
            ),
            duration=15,
            expected=(E("door", "start", "p2", 9.0), E("door", "end", "p2", 12.2)),
        )
    )
    rows = (60, 110, 160, 210)
    s.append(
        Scenario(  # 2 fps; four people enter at 1, 3, 5, 7: two starts, two suppressed (until they leave); a
            # fifth enters at 62 s, when the first start is more than a minute old
            "intrusion_rate_cap",
            zones=(RIGHT,),
            rules=(_quick("door", max_starts_per_minute=2),),
            fps=2,
            objects=(
                person(
                    "p1", (0, 121, rows[0]), (2, 201, rows[0]), (9, 201, rows[0]), (11, 121, rows[0])
                ),  # out at 10.5
                *(
                    person(f"p{i + 2}", (t - 1, 121, y), (t + 1, 201, y), (66, 201, y))
                    for i, (t, y) in enumerate(zip((3, 5, 7), rows[1:]))
                ),
                person("p5", (61, 121, rows[0]), (63, 201, rows[0]), (66, 201, rows[0])),
            ),
            duration=66,
            suppressed=2,
            expected=(
                E("door", "start", "p1", 1.0),
                E("door", "start", "p2", 3.0),
                E("door", "end", "p1", 10.5),
                E("door", "start", "p5", 62.0),
            ),
        )
    )
    s.append(
        Scenario(  # in at 1.0, out at 9.2; the dwell time changes every frame, updates at most every 2 s
            "intrusion_update_interval",
            zones=(RIGHT,),
            rules=(_quick("door", update_interval_s=2),),
            objects=(person("p1", (0, 121, 150), (2, 201, 150), (8, 201, 150), (10, 121, 150), (11, 121, 150)),),
            duration=11,
            expected=(
                E("door", "start", "p1", 1.0, {"dwell_s": 0.0}),
                E("door", "update", "p1", 3.0, {"dwell_s": 2.0}),
                E("door", "update", "p1", 5.0, {"dwell_s": 4.0}),
                E("door", "update", "p1", 7.0),
                E("door", "update", "p1", 9.0),
                E("door", "end", "p1", 9.2),
            ),
        )
    )
    # identity swaps: tracks are forgotten 1.5 s after their last detection; merge window 4 s, 1.5 box heights
    lost = {"lost_after_s": 1.5}
    s.append(
        Scenario(  # p1 in at 1.4; undetected 5.0-7.4 (old track dropped at 6.4), a new track inside at 8.0 folds in
            "fold_reborn_in_place",
            zones=(RIGHT,),
            rules=(_intrusion("door"),),
            tracker=lost,
            objects=(
                person(
                    "p1",
                    (0, 121, 150),
                    (2, 201, 150),
                    (10, 201, 150),
                    (12, 121, 150),
                    (18, 121, 150),
                    misses=((5.0, 7.4),),
                ),
            ),
            duration=18,
            expected=(E("door", "start", "p1", 1.4), E("door", "end", "p1", 11.6, {"merged_identities": 1})),
        )
    )
    s.append(
        Scenario(  # p1 vanishes after 4.8 (dropped 6.4); p2 appears 2 box heights away, in at 6.6: its own incident
            "fold_not_when_far",
            zones=(RIGHT,),
            rules=(_intrusion("door"),),
            tracker=lost,
            objects=(
                person("p1", (0, 121, 150), (2, 201, 150), (4.8, 201, 150)),
                person("p2", (6, 300, 150), (18, 300, 150)),
            ),
            duration=18,
            expected=(E("door", "start", "p1", 1.4), E("door", "start", "p2", 6.6), E("door", "end", "p1", 6.4)),
        )
    )
    s.append(
        Scenario(  # undetected 5.0-10.0: the old incident ends (stamped 6.4, sent 10.4), the new track starts one
            "fold_not_when_late",
            zones=(RIGHT,),
            rules=(_intrusion("door"),),
            tracker=lost,
            objects=(person("p1", (0, 121, 150), (2, 201, 150), (18, 201, 150), misses=((5.0, 10.0),)),),
            duration=18,
            expected=(E("door", "start", "p1", 1.4), E("door", "end", "p1", 6.4), E("door", "start", "p1", 10.6)),
        )
    )
    s.append(
        Scenario(  # inside BENCH from 4.325 s (first frame 4.4 at 5 and 10 fps, 4.5 at 2 fps); dwell 8 s -> 12.4;
            # updates every 4 s; outside from 22.675 s (frame 22.7 / 22.8 / 23.0)
            "loitering_dwell",
            zones=(BENCH,),
            tolerance_s=0.3,
            rules=(
                {
                    "id": "loiter",
                    "type": "loitering",
                    "zone": "bench",
                    "classes": ["person"],
                    "dwell_s": 8,
                    "min_frames": 1,
                    "exit_frames": 1,
                    "update_interval_s": 4,
                    "merge_window_s": 0,
                },
            ),
            objects=(person("p1", (0, 301, 150), (5, 101, 150), (22, 101, 150), (27, 301, 150)),),
            duration=28,
            expected=(
                E("loiter", "start", "p1", 12.4, {"dwell_s": 8.0}),
                E("loiter", "update", "p1", 16.4),
                E("loiter", "update", "p1", 20.4),
                E("loiter", "end", "p1", 22.8),
            ),
        )
    )
    gate = {"id": "gate_count", "type": "line_crossing", "line": "gate", "classes": ["person"]}
    s.append(
        Scenario(  # p1 walks down at x=100 (beyond the band from 2.6), p2 up at x=220 (from 7.0); each crossing is
            # an instant: start, then end on the next frame
            "line_both_directions",
            lines=(GATE,),
            rules=(gate, {**gate, "id": "gate_south", "directions": ["southbound"]}),
            objects=(person("p1", (0, 100, 50), (5, 100, 200)), person("p2", (4, 220, 200), (9, 220, 50))),
            duration=12,
            expected=(
                E(
                    "gate_count",
                    "start",
                    "p1",
                    2.6,
                    {"direction": "southbound", "counts": {"southbound": 1, "northbound": 0}},
                ),
                E("gate_south", "start", "p1", 2.6),
                E("gate_count", "end", "p1", 2.8),
                E("gate_south", "end", "p1", 2.8),
                E(
                    "gate_count",
                    "start",
                    "p2",
                    7.0,
                    {"direction": "northbound", "counts": {"southbound": 1, "northbound": 1}},
                ),
                E("gate_count", "end", "p2", 7.2),
            ),
            states={  # each rule counts on its own (its class filter applies), whatever its directions alert on
                ("lines", "gate", "gate_count"): (
                    {"southbound": 0, "northbound": 0},
                    {"southbound": 1, "northbound": 0},
                    {"southbound": 1, "northbound": 1},
                ),
                ("lines", "gate", "gate_south"): (
                    {"southbound": 0, "northbound": 0},
                    {"southbound": 1, "northbound": 0},
                    {"southbound": 1, "northbound": 1},
                ),
            },
        )
    )
    along = [(8 + 0.2 * k, 70 + 6 * k, 120 + (3 if k % 2 else -3)) for k in range(31)]
    s.append(
        Scenario(  # p3 hovers across the line +-4 px (inside the 4.8 px band) for 3 s, then goes on down (5.2);
            # p6 walks along the line, hopping 3 px either side
            "line_jitter_counts_once",
            lines=(GATE,),
            rules=(gate,),
            objects=(person("p3", (0, 150, 60), *jitter(2.0, 5.0, 150, 120, 4), (7, 150, 200)), person("p6", *along)),
            duration=15,
            expected=(
                E("gate_count", "start", "p3", 5.2, {"direction": "southbound"}),
                E("gate_count", "end", "p3", 5.4),
            ),
            states={
                ("lines", "gate", "gate_count"): (
                    {"southbound": 0, "northbound": 0},
                    {"southbound": 1, "northbound": 0},
                )
            },
        )
    )
    s.append(
        Scenario(  # p4 goes round the b end (x=256) of the segment; p5 crosses its extension left of a (x=64)
            "line_around_segment_end",
            lines=(GATE,),
            rules=(gate,),
            objects=(
                person("p4", (0, 160, 60), (3, 300, 60), (6, 300, 200), (9, 160, 200)),
                person("p5", (10, 30, 60), (14, 30, 200)),
            ),
            duration=15,
            states={("lines", "gate", "gate_count"): ({"southbound": 0, "northbound": 0},)},
        )
    )
    crowd = {
        "id": "crowd",
        "type": "crowding",
        "zone": "left",
        "classes": ["person"],
        "min_count": 3,
        "for_s": 3,
        "end_below": 2,
        "end_after_s": 2,
        "update_interval_s": 2,
    }

    def walker(name: str, row: int, enter: float, leave: float | None, end: float) -> Obj:
        """Walks into LEFT from x=201 at ``enter`` (in 1.4 s later, after two frames inside), out from ``leave``."""
        path = [(enter, 201, row), (enter + 2, 121, row)]
        path += [(leave, 121, row), (leave + 2, 201, row)] if leave is not None else []
        return person(name, *path, (end, path[-1][1], row))

    s.append(
        Scenario(  # in: p1 1.4, p2 2.4, p3 3.4 (3 for 3 s -> start 6.4), p4 7.4; out: p4 12.2, p3 15.2 (2 left: not
            # below end_below), p2 18.2 (1 left, for 2 s -> end 20.2)
            "crowding_hysteresis",
            zones=(LEFT,),
            rules=(crowd,),
            objects=(
                walker("p1", 60, 0, None, 23),
                walker("p2", 110, 1, 17, 23),
                walker("p3", 160, 2, 14, 23),
                walker("p4", 210, 6, 11, 23),
            ),
            duration=23,
            expected=(
                E("crowd", "start", None, 6.4, {"count": 3, "peak": 3}),
                E("crowd", "update", None, 8.4, {"count": 4, "peak": 4}),
                E("crowd", "update", None, 12.2, {"count": 3, "peak": 4}),
                E("crowd", "update", None, 15.2, {"count": 2, "peak": 4}),
                E("crowd", "update", None, 18.2, {"count": 1, "peak": 4}),
                E("crowd", "end", None, 20.2),
            ),
        )
    )
    s.append(
        Scenario(  # three inside only from 3.4 to 5.4 (2 s < for_s 3 s)
            "crowding_too_brief",
            zones=(LEFT,),
            rules=(crowd,),
            objects=(
                walker("p1", 60, 0, None, 12),
                walker("p2", 110, 1, None, 12),
                person("p3", (2, 201, 160), (4, 121, 160), (4.4, 121, 160), (6.4, 201, 160)),
            ),
            duration=12,
        )
    )
    zero = {"person": 0, "car": 0, "backpack": 0}
    s.append(
        Scenario(  # in: p1 1.4, c1 3.6, p2 6.4; out: p1 11.2; never an alert
            "zone_occupancy_counts",
            zones=(LEFT,),
            rules=({"id": "occ", "type": "zone_occupancy", "zone": "left"},),
            objects=(
                walker("p1", 60, 0, 10, 14),
                car("c1", (2, 221, 225), (4, 121, 225), (14, 121, 225)),
                walker("p2", 110, 5, None, 14),
            ),
            duration=14,
            states={
                ("zones", "left", "occ"): (
                    zero,
                    {**zero, "person": 1},
                    {**zero, "person": 1, "car": 1},
                    {**zero, "person": 2, "car": 1},
                    {**zero, "person": 1, "car": 1},
                )
            },
        )
    )
    left_bag = {
        "id": "left_bag",
        "type": "abandoned_object",
        "classes": ["backpack"],
        "stationary_s": 5,
        "unattended_radius": 2,
        "merge_window_s": 0,
    }
    s.append(
        Scenario(  # p1 carries b1, puts it down at 4.0 and walks off (beyond 2 heights from 6.6); still for 5 s at
            # 9.0; b1 taken away after 20.0: its track is dropped at 21.6
            "abandoned_left_then_removed",
            rules=(left_bag,),
            tracker=lost,
            objects=(
                person("p1", (0, 40, 150), (4, 160, 150), (8.8, 16, 150)),
                bag("b1", (0, 60, 150), (4, 180, 150), (20, 180, 150)),
            ),
            duration=24,
            expected=(E("left_bag", "start", "b1", 9.0, {"stationary_s": 5.0}), E("left_bag", "end", "b1", 21.6)),
        )
    )
    s.append(
        Scenario(  # p1 stays beside b1 (4.0-14.0), then carries it off: attended throughout; without a radius the
            # bag is abandoned at 9.0 and taken (moved) at 14.2
            "abandoned_attended",
            rules=(left_bag, {**left_bag, "id": "left_bag_any", "unattended_radius": None}),
            objects=(
                person("p1", (0, 40, 150), (4, 160, 150), (14, 160, 150), (18, 280, 150)),
                bag("b1", (0, 60, 150), (4, 180, 150), (14, 180, 150), (18, 300, 150)),
            ),
            duration=19,
            expected=(E("left_bag_any", "start", "b1", 9.0), E("left_bag_any", "end", "b1", 14.2)),
        )
    )
    tamper = {
        "id": "tamper",
        "type": "camera_tamper",
        "for_s": 2,
        "recover_s": 2,
        "learn_s": 2,
        "changed_fraction": 0.5,
    }
    stroller = person("p1", (0, 20, 200), (24, 300, 200))
    for kind, _symptom in (("dark", "dark"), ("blur", "blurred"), ("shift", "changed")):
        s.append(
            Scenario(  # symptom 8.0-13.8 -> start 10.0; clear from 14.0 -> end 16.0
                f"tamper_{kind}",
                rules=(tamper,),
                objects=(stroller,),
                effects=(Effect(kind, 8, 14),),
                duration=24,
                expected=(E("tamper", "start", None, 10.0), E("tamper", "end", None, 16.0)),
            )
        )
    s.append(
        Scenario(
            "tamper_walker_only",
            rules=(tamper,),
            objects=(stroller, person("p2", (4, 300, 120), (20, 20, 120))),
            duration=24,
        )
    )
    health = {"id": "health", "type": "stream_health", "for_s": 3}
    s.append(
        Scenario(  # frames from 6.0 to 15.8 repeat the one of 5.8: frozen since 6.0 -> 9.0; fresh at 16.0
            "stream_frozen",
            rules=(health,),
            objects=(stroller,),
            effects=(Effect("frozen", 6, 16),),
            duration=22,
            expected=(E("health", "start", None, 9.0, {"state": "frozen"}), E("health", "end", None, 16.0)),
        )
    )
    s.append(
        Scenario(  # down 2-4 (shorter than for_s: nothing), down 8-18 -> start at the tick of 11.0, end at 18.0
            "stream_down",
            rules=(health,),
            objects=(stroller,),
            effects=(Effect("down", 2, 4), Effect("down", 8, 18, reason="timeout")),
            duration=22,
            expected=(
                E("health", "start", None, 11.0, {"state": "down", "reason": "timeout"}),
                E("health", "end", None, 18.0),
            ),
        )
    )
    return s


SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _catalogue()}
