"""PETS09-S2L1 ground truth replayed through the real analyser, checked against counts computed here.

The MOTChallenge ground truth (19 people, frames 1..795, 10 fps, boxes x0.625 onto the 480x360
video) is fed to :class:`surveil.analysis.analyzer.CameraAnalyzer` in two ways:

- as tracks (``FrameContext(tracks=...)``: the ground-truth id is the track id, the tracker is
  bypassed), compared with counts computed in this file from the boxes alone, with their own
  geometry (OpenCV's point-in-polygon, an explicit cross product): exact equality where the
  definitions coincide;
- as detections through the real tracker, compared with the same ground-truth counts within a
  tolerance (the tracker may swap or re-birth an identity).

Geometry (relative coordinates, feet = bottom centre of the box):
- ``walkway``: a diagonal line across the walkway that nearly everybody walks along, a=(0.55, 0.2)
  -> b=(0.35, 0.95); ``forward`` (from the left of a->b to its right as drawn) is east to west:
  ``westbound``;
- ``plaza_edge``: a horizontal line at y=0.55 from x=0.3 to x=0.98; forward = top to bottom:
  ``southbound``;
- ``plaza``: the patch of walkway in front of the lamp post where people meet and linger,
  x 0.40-0.75, y 0.30-0.55.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from surveil.analysis.analyzer import build_analyzer
from surveil.config import CameraConfig, TrackerConfig
from surveil.evaluation.surveillance import PETS_GT, pets_frame_boxes, read_mot_gt
from surveil.rules.base import FrameContext
from surveil.types import AlertUpdate, Detections, Track

W, H, FPS = 480, 360, 10.0
WALL0 = 1_700_000_000.0
CLASS_NAMES = ["__background__", "person"]
PERSON = 1

WALKWAY = ((0.55, 0.20), (0.35, 0.95))
PLAZA_EDGE = ((0.30, 0.55), (0.98, 0.55))
PLAZA = [[0.40, 0.30], [0.75, 0.30], [0.75, 0.55], [0.40, 0.55]]
DWELL_S = 8.0
INTRUSION_FRAMES = 3

GEOMETRY = {
    "zones": [{"name": "plaza", "polygon": PLAZA}],
    "lines": [
        {
            "name": "walkway",
            "a": list(WALKWAY[0]),
            "b": list(WALKWAY[1]),
            "forward": "westbound",
            "backward": "eastbound",
        },
        {
            "name": "plaza_edge",
            "a": list(PLAZA_EDGE[0]),
            "b": list(PLAZA_EDGE[1]),
            "forward": "southbound",
            "backward": "northbound",
        },
    ],
}

# The definitions coincide with the ones computed here: no dead band, no inertia, no folding.
EXACT_RULES = [
    {"id": "walkway-raw", "type": "line_crossing", "line": "walkway", "band": 0.0},
    {"id": "edge-raw", "type": "line_crossing", "line": "plaza_edge", "band": 0.0},
    {"id": "walkway-band", "type": "line_crossing", "line": "walkway", "band": 0.1},
    {"id": "edge-band", "type": "line_crossing", "line": "plaza_edge", "band": 0.1},
    {
        "id": "plaza-loiter",
        "type": "loitering",
        "zone": "plaza",
        "dwell_s": DWELL_S,
        "min_frames": 1,
        "exit_frames": 1,
        "merge_window_s": 0,
    },
    {
        "id": "plaza-intrusion",
        "type": "zone_intrusion",
        "zone": "plaza",
        "min_frames": INTRUSION_FRAMES,
        "exit_frames": 1,
        "merge_window_s": 0,
    },
    {"id": "plaza-people", "type": "zone_occupancy", "zone": "plaza"},
]
# The shipped defaults (dead band 0.1, zone inertia, identity-swap folding): bounded against the above.
DEFAULT_RULES = [
    {"id": "walkway", "type": "line_crossing", "line": "walkway"},
    {"id": "plaza-loiter", "type": "loitering", "zone": "plaza", "dwell_s": DWELL_S},
    {"id": "plaza-intrusion", "type": "zone_intrusion", "zone": "plaza"},
]


# ---------------------------------------------------------------- ground truth, independently


@dataclass(frozen=True)
class Path_:
    """One ground-truth person: consecutive frame numbers, feet (pixels) and box heights."""

    frames: np.ndarray
    feet: np.ndarray  # (n, 2)
    heights: np.ndarray
    boxes: np.ndarray  # (n, 4) xyxy


@pytest.fixture(scope="module")
def gt_rows(shared_data: Path) -> np.ndarray:
    path = shared_data / PETS_GT
    if not path.is_file():
        pytest.skip(f"PETS09-S2L1 ground truth {path} is absent")
    return read_mot_gt(path)


@cache
def _paths(rows_bytes: bytes, shape: tuple[int, int]) -> dict[int, Path_]:
    rows = np.frombuffer(rows_bytes, np.float64).reshape(shape)
    out = {}
    scale = W / 768.0
    for person in np.unique(rows[:, 1]).astype(int):
        mine = rows[rows[:, 1] == person]
        mine = mine[np.argsort(mine[:, 0])]
        x, y, w, h = (mine[:, k] * scale for k in (2, 3, 4, 5))
        out[person] = Path_(mine[:, 0].astype(int), np.c_[x + w / 2, y + h], h, np.c_[x, y, x + w, y + h])
    return out


def paths(rows: np.ndarray) -> dict[int, Path_]:
    return _paths(rows.tobytes(), rows.shape)


def _side(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance of points p (n, 2) from line a->b; > 0 right of a->b on the image (y down)."""
    d = b - a
    return (d[0] * (p[:, 1] - a[1]) - d[1] * (p[:, 0] - a[0])) / np.hypot(*d)


def _segments_intersect(p, q, a, b) -> bool:
    def orient(u, v, w):
        return (v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0])

    return orient(a, b, p) * orient(a, b, q) <= 0 and orient(p, q, a) * orient(p, q, b) <= 0


def gt_crossings(rows: np.ndarray, line, band: float = 0.0) -> dict[str, dict[int, int]]:
    """Per person and direction: changes of the feet's side of the line segment.

    A sample within ``band`` box heights of the line says nothing, except the first of a path: a
    person who appears on the line came from the side their first point lies on, however slightly.
    A crossing is a change of side between two consecutive informative samples whose connecting
    segment meets the line segment. With ``band=0`` that is every step p[k-1] -> p[k] that crosses
    the segment.
    """
    a, b = (np.array(v) * [W, H] for v in line)
    out: dict[str, dict[int, int]] = {"forward": {}, "backward": {}}
    for person, path in paths(rows).items():
        s = _side(path.feet, a, b)
        keep = np.abs(s) > band * np.maximum(path.heights, 1.0)
        keep[0] = s[0] != 0
        feet, sides = path.feet[keep], np.sign(s[keep])
        for k in np.flatnonzero(sides[1:] != sides[:-1]) + 1:
            if _segments_intersect(feet[k - 1], feet[k], a, b):
                direction = "forward" if sides[k] > 0 else "backward"
                out[direction][person] = out[direction].get(person, 0) + 1
    return out


def gt_inside(rows: np.ndarray, polygon) -> dict[int, np.ndarray]:
    """Per person: feet inside the polygon, frame by frame (OpenCV's test; no point lies on an edge)."""
    contour = (np.array(polygon, np.float32) * [W, H]).astype(np.float32).reshape(-1, 1, 2)
    out = {}
    for person, path in paths(rows).items():
        tests = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) for x, y in path.feet])
        assert not np.any(tests == 0), f"person {person} stands exactly on the zone's edge: ambiguous"
        out[person] = tests > 0
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive True values."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _now(frame: int) -> float:
    return (frame - 1) / FPS


def gt_stays(
    rows: np.ndarray, polygon, *, dwell_s: float | None = None, min_frames: int = 1
) -> list[tuple[int, int, int | None]]:
    """(person, frame the incident starts, frame it ends or None at the end of the video) for every
    stay of consecutive frames inside that lasts ``dwell_s`` seconds (loitering) or ``min_frames``
    frames (intrusion). It ends on the first frame outside, or the frame after the person's last."""
    last_frame = int(rows[:, 0].max())
    out = []
    inside = gt_inside(rows, polygon)
    for person, path in paths(rows).items():
        for start, end in _runs(inside[person]):
            frames = path.frames[start:end]
            if dwell_s is not None:
                long_enough = [f for f in frames if _now(f) - _now(frames[0]) >= dwell_s]
                first = long_enough[0] if long_enough else None
            else:
                first = frames[min_frames - 1] if len(frames) >= min_frames else None
            if first is not None:
                stop = int(frames[-1]) + 1
                out.append((person, int(first), None if stop > last_frame else stop))
    return sorted(out)


# ---------------------------------------------------------------- the analyser


@dataclass
class Replay:
    updates: list[AlertUpdate] = field(default_factory=list)
    closing: list[AlertUpdate] = field(default_factory=list)  # ends forced by analyser.close()
    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # latest published state
    occupancy: dict[int, int] = field(default_factory=dict)  # frame -> persons in the plaza (published)

    def of(self, rule: str, phase: str | None = None) -> list[AlertUpdate]:
        return [u for u in self.updates + self.closing if u.rule == rule and (phase is None or u.phase == phase)]


def replay(rows: np.ndarray, rules: list[dict], *, through_tracker: bool = False) -> Replay:
    camera = CameraConfig.model_validate({"name": "pets", "url": "pets.avi", **GEOMETRY, "rules": rules})
    result = Replay()

    def on_state(camera_name: str, report, previous) -> None:
        result.counts[(report.kind, report.name)] = dict(report.values)

    analyser = build_analyzer(camera, TrackerConfig(), CLASS_NAMES, on_state=on_state)
    image = np.zeros((H, W, 3), np.uint8)
    first_seen: dict[int, float] = {}
    hits: dict[int, int] = {}
    last = int(rows[:, 0].max())
    for frame in range(1, last + 1):
        now = _now(frame)
        boxes, ids, _scored = pets_frame_boxes(rows, frame)
        if through_tracker:
            detections = Detections.from_arrays(boxes, np.full(len(boxes), 0.9), np.full(len(boxes), PERSON))
            tracks = None
        else:
            detections, tracks = Detections.empty(), []
            for box, person in zip(boxes, ids.tolist()):
                first_seen.setdefault(person, now)
                hits[person] = hits.get(person, 0) + 1
                tracks.append(
                    Track(
                        person,
                        "pets",
                        PERSON,
                        tuple(float(v) for v in box),
                        1.0,
                        first_seen[person],
                        now,
                        hits[person],
                        0,
                    )
                )
            tracks = tuple(tracks)
        ctx = FrameContext(
            camera="pets",
            now=now,
            ts_wall=WALL0 + now,
            ts_mono=now,
            seq=frame,
            width=W,
            height=H,
            image=image,
            detections=detections,
            confident=np.ones(len(detections), bool),
            tracks=tracks,
        )
        result.updates += analyser.process(ctx)
        if ("zones", "plaza") in result.counts:
            result.occupancy[frame] = result.counts[("zones", "plaza")]["person"]
    end = _now(last) + 1 / FPS
    result.closing = analyser.close(end, WALL0 + end)
    return result


@pytest.fixture(scope="module")
def exact(gt_rows: np.ndarray) -> Replay:
    return replay(gt_rows, EXACT_RULES)


def _per_direction(updates: list[AlertUpdate], forward: str, backward: str) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {"forward": {}, "backward": {}}
    names = {forward: "forward", backward: "backward"}
    for u in updates:
        if u.phase == "start":
            person = u.subjects[0].track_id
            bucket = out[names[u.details["direction"]]]
            bucket[person] = bucket.get(person, 0) + 1
    return out


def _totals(per_person: dict[str, dict[int, int]]) -> dict[str, int]:
    return {direction: sum(people.values()) for direction, people in per_person.items()}


def _incidents(updates: list[AlertUpdate]) -> list[tuple[int, int, int | None]]:
    """(first subject, start frame, end frame or None when closed at the end) per incident."""
    starts = {u.incident_id: u for u in updates if u.phase == "start"}
    ends = {u.incident_id: u for u in updates if u.phase == "end"}
    assert set(starts) == set(ends), "every incident that starts ends (the replay closes the analyser)"
    out = []
    for incident, start in starts.items():
        end = ends[incident]
        stopped = end.details.get("end_reason") == "stopped"
        out.append((start.subjects[0].track_id, start.frame_seq, None if stopped else end.frame_seq))
    return sorted(out)


# ---------------------------------------------------------------- exact agreement


LINES = {"walkway": (WALKWAY, "westbound", "eastbound"), "plaza_edge": (PLAZA_EDGE, "southbound", "northbound")}


@pytest.mark.parametrize(
    ("rule", "line", "band"),
    [
        ("walkway-raw", "walkway", 0.0),
        ("edge-raw", "plaza_edge", 0.0),
        ("walkway-band", "walkway", 0.1),
        ("edge-band", "plaza_edge", 0.1),
    ],
)
def test_line_crossings_per_person_and_direction(gt_rows, exact: Replay, rule: str, line: str, band: float):
    geometry, forward, backward = LINES[line]
    expected = gt_crossings(gt_rows, geometry, band=band)
    got = _per_direction(exact.of(rule), forward, backward)
    assert got == expected
    assert sum(_totals(expected).values()) > 0, "the line is crossed in the video"


def test_line_totals_published_as_state(gt_rows, exact: Replay):
    """The retained counts (both directions, whatever `directions` alerts on) match the gt, dead band included."""
    for line, (geometry, forward, backward) in LINES.items():
        expected = _totals(gt_crossings(gt_rows, geometry, band=0.1))
        assert exact.counts[("lines", line)] == {forward: expected["forward"], backward: expected["backward"]}


@pytest.mark.parametrize("line", sorted(LINES))
def test_dead_band_only_removes_back_and_forth(gt_rows, line: str):
    """The dead band differs from raw side changes by design. It can only drop crossings: jitter on
    the line (pairs that cancel out), and a person's last steps while still inside the band (no
    evidence of the side it went to; the first point says where it came from, however near the line).
    So per person the net flow through the line is the same, except by at most one when the path ends
    inside the band."""
    geometry = LINES[line][0]
    a, b = (np.array(v) * [W, H] for v in geometry)
    raw, banded = gt_crossings(gt_rows, geometry, band=0.0), gt_crossings(gt_rows, geometry, band=0.1)
    for person, path in paths(gt_rows).items():
        raw_f, raw_b = raw["forward"].get(person, 0), raw["backward"].get(person, 0)
        band_f, band_b = banded["forward"].get(person, 0), banded["backward"].get(person, 0)
        assert band_f <= raw_f and band_b <= raw_b, f"person {person}"
        in_band = np.abs(_side(path.feet[[-1]], a, b)) <= 0.1 * path.heights[[-1]]
        assert abs((raw_f - raw_b) - (band_f - band_b)) <= int(in_band.sum()), f"person {person}"


def test_loitering_stays(gt_rows, exact: Replay):
    expected = gt_stays(gt_rows, PLAZA, dwell_s=DWELL_S)
    assert expected, "somebody lingers on the plaza"
    assert _incidents(exact.of("plaza-loiter")) == expected
    for start in exact.of("plaza-loiter", "start"):
        assert start.details["dwell_s"] >= DWELL_S


def test_zone_intrusion_stays(gt_rows, exact: Replay):
    expected = gt_stays(gt_rows, PLAZA, min_frames=INTRUSION_FRAMES)
    assert _incidents(exact.of("plaza-intrusion")) == expected


def test_zone_occupancy_between_bounds(gt_rows, exact: Replay):
    """Occupancy has an inertia of 2 frames each way: somebody inside now and in the previous frame
    is surely counted; somebody outside in both is surely not."""
    inside = gt_inside(gt_rows, PLAZA)
    where = {
        person: dict(zip(path.frames.tolist(), inside[person].tolist())) for person, path in paths(gt_rows).items()
    }
    for frame, count in exact.occupancy.items():
        now = [where[p].get(frame) for p in where]
        before = [where[p].get(frame - 1) for p in where]
        low = sum(1 for n, b in zip(now, before) if n and b)
        high = sum(1 for n, b in zip(now, before) if n is not None and (n or b))
        assert low <= count <= high, f"frame {frame}: {count} not in [{low}, {high}]"
    assert max(exact.occupancy.values()) >= 2


# ---------------------------------------------------------------- shipped defaults, bounded


def test_defaults_bounded_by_exact_definitions(gt_rows):
    """Inertia and folding only join stays: never more incidents than the exact definitions, and every
    person who loiters by the exact definition is in a loitering incident with the defaults."""
    defaults = replay(gt_rows, DEFAULT_RULES)
    exact_loiter = gt_stays(gt_rows, PLAZA, dwell_s=DWELL_S)
    exact_intrusion = gt_stays(gt_rows, PLAZA, min_frames=INTRUSION_FRAMES)
    loiter, intrusion = _incidents(defaults.of("plaza-loiter")), _incidents(defaults.of("plaza-intrusion"))
    assert len(loiter) <= len(exact_loiter)
    assert {p for p, _, _ in exact_loiter} <= {s.track_id for u in defaults.of("plaza-loiter") for s in u.subjects}
    assert len(intrusion) <= len(exact_intrusion)
    band = _totals(gt_crossings(gt_rows, WALKWAY, band=0.1))
    assert _totals(_per_direction(defaults.of("walkway"), "westbound", "eastbound")) == band


# ---------------------------------------------------------------- through the real tracker


def test_through_the_tracker(gt_rows):
    """Ground-truth boxes as detections: the tracker's ids replace the gt ids. Counts stay close:
    per direction within 10 % (at least 2) of the gt, loitering incidents within 1."""
    tracked = replay(gt_rows, DEFAULT_RULES, through_tracker=True)
    expected = _totals(gt_crossings(gt_rows, WALKWAY, band=0.1))
    got = _totals(_per_direction(tracked.of("walkway"), "westbound", "eastbound"))
    for direction in ("forward", "backward"):
        assert abs(got[direction] - expected[direction]) <= max(2, 0.1 * expected[direction]), (
            direction,
            got,
            expected,
        )
    loiter = _incidents(tracked.of("plaza-loiter"))
    assert abs(len(loiter) - len(gt_stays(gt_rows, PLAZA, dwell_s=DWELL_S))) <= 1
