"""Zone alerts on real surveillance footage, scored against ground-truth tracks.

    .venv/bin/python -m bench.zone_alerts_pets [--weights models/pedestrian-mnv2.pt] [--min-size 800] [--step 5]

PETS09-S2L1 (795 frames, 10 fps) has a ground-truth track for every person. The bench runs the
daemon's own per-camera analyser (``surveil.analysis.analyzer``: tracker, zone_intrusion rules, incident
book) with the zone_intrusion rules of configs/demo.yaml, processing every ``step``-th frame
(step 5 = 2 fps, what a 2-core CPU sustains), once for each of the ``step`` sampling phases
(frames 1, 6, 11, ...; 2, 7, 12, ...; ...), and reports each figure as the mean over the phases
with its range. Two detectors: the ground-truth boxes themselves ("oracle": isolates tracking
and rules) and the shipped model (raw detections down to its low score floor, computed once by
bench/pets_detections.py and cached).

Truth, per phase: a *visit* of a person to a zone starts when the person's ground-truth feet have
been inside for ``min_frames`` consecutive processed frames and ends after ``exit_frames``
processed frames outside (or when the person leaves the scene); stepping back in within the rule's
``merge_window_s`` of having left continues the same visit (the daemon folds such a return into
the incident still waiting to end, and so does the truth). Each incident start is attributed
to the ground-truth person whose box overlaps the alerted box best (IoU >= 0.5) and to that
person's visit of the zone open at that frame (or ending at most ``merge_window_s`` earlier).
``--attribution track`` attributes it instead to the person the alerted *track* followed in the
frames that raised the alert (its last ``min_frames`` matched frames up to the start; per frame
IoU >= 0.5 with a person's box, identity by majority, as CLEAR-MOT associates): one start frame in
which two people walking side by side share a box then no longer makes a true alert count as a
false one and a miss.
- recall: visits with at least one start;
- duplicates: further starts attributed to an already alerted visit (one alert per person per visit
  is the goal: identity swaps inside walking groups are what make them);
- false: starts matching no person, or a person who is not on a visit of that zone.
A second zone set (``--extra-zones``, zones a user might draw on this plaza) is scored the same way.
Every phase at 2, 5 and 10 fps, lines, zones and loitering on geometry of our own too, before and
after in one run: bench/rules_phases_pets.py (issue 17).
The last line is machine-readable:
    zone-alerts detector=shipped fps=2 phases=5 recall=0.xx duplicates=N false=N
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from surveil.analysis.analyzer import StepObserver, build_analyzer
from surveil.config import CameraConfig, TrackerConfig, load_config
from surveil.evaluation.surveillance import PETS_GT, pets_frame_boxes, read_mot_gt
from surveil.geometry import box_iou, points_in_polygon, relative_anchors
from surveil.rules.base import FrameContext
from surveil.types import AlertUpdate, Detections, Frame

REPO = Path(__file__).resolve().parents[1]
FPS, FRAMES, W, H = 10.0, 795, 480, 360
BLANK = np.zeros((H, W, 3), np.uint8)
EXTRA_ZONES = {  # zones a user might draw where groups walk together (the id-swap test)
    "east_side": [[0.6, 0.25], [1.0, 0.25], [1.0, 0.75], [0.6, 0.75]],
    "plaza_centre": [[0.3, 0.4], [0.7, 0.4], [0.7, 0.8], [0.3, 0.8]],
}


@dataclass
class Score:
    visits: int = 0
    hit: int = 0
    alerts: int = 0
    duplicates: int = 0
    false: int = 0

    @property
    def recall(self) -> float:
        return self.hit / max(self.visits, 1)


def demo_camera(extra: bool) -> CameraConfig:
    camera = load_config(REPO / "configs/demo.yaml", environ={}).cameras[0]
    rules = [r for r in camera.rules if r.type == "zone_intrusion"]
    zones = [z for z in camera.zones if z.name in {r.zone for r in rules}]
    if extra:
        zones = [type(zones[0]).model_validate({"name": n, "polygon": p}) for n, p in EXTRA_ZONES.items()]
        rules = [
            type(rules[0]).model_validate({**rules[0].model_dump(), "id": f"{n}-intrusion", "zone": n})
            for n in EXTRA_ZONES
        ]
    return camera.model_copy(update={"zones": zones, "rules": rules, "lines": []})


def gt_frames(shared: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rows = read_mot_gt(shared / PETS_GT)
    return {n: pets_frame_boxes(rows, n)[:2] for n in range(1, FRAMES + 1)}


def visits(gt, frames: list[int], camera: CameraConfig) -> list[tuple[int, str, int, int]]:
    """(person, zone, first frame, last frame inside) of every true visit in the processed frames.

    ``frames``: the PETS frame numbers processed, ascending, at any spacing (every step-th frame
    here; the frames the real pipeline happened to take in bench/zone_alerts_pipeline.py): the
    rule's ``min_frames`` and ``exit_frames`` count processed frames, its ``merge_window_s`` is
    taken as frame numbers / FPS, as a camera playing the clip in real time stamps them."""
    rule: Any = camera.rules[0]  # zone_intrusion or loitering: anchor, min_frames, exit_frames, merge_window_s
    found = []
    for zone in camera.zones:
        streak: dict[int, list] = {}  # person -> [inside run, outside run, visit start or None, last inside frame]
        for number in frames:
            boxes, ids = gt[number]
            inside = points_in_polygon(relative_anchors(boxes, rule.anchor, W, H), np.array(zone.polygon))
            for person, is_in in zip(ids.tolist(), inside.tolist()):
                s = streak.setdefault(person, [0, 0, None, None])
                s[0], s[1] = (s[0] + 1, 0) if is_in else (0, s[1] + 1)
                if is_in:
                    s[3] = number
                if s[2] is None and s[0] >= rule.min_frames:
                    s[2] = number
                if s[2] is not None and s[1] >= rule.exit_frames:
                    found.append((person, zone.name, s[2], s[3], number))
                    s[2] = None
            for person in [p for p in streak if p not in set(ids.tolist())]:
                s = streak.pop(person)
                if s[2] is not None:
                    found.append((person, zone.name, s[2], s[3], number))
        found += [(p, zone.name, s[2], s[3], FRAMES) for p, s in streak.items() if s[2] is not None]
    return _join_returns(sorted(found), gap_frames=int(rule.merge_window_s * FPS))


def _join_returns(found: list[tuple[int, str, int, int, int]], gap_frames: int) -> list[tuple[int, str, int, int]]:
    """A person who is back in (again ``min_frames`` inside) within the rule's merge window after
    leaving (``exit_frames`` outside) is still on the same visit, as the daemon's incident book has it."""
    joined: list[tuple[int, str, int, int, int]] = []
    for visit in found:
        last = joined[-1] if joined else None
        if last and last[:2] == visit[:2] and visit[2] - last[4] <= gap_frames:
            joined[-1] = (*last[:3], visit[3], visit[4])
        else:
            joined.append(visit)
    return [v[:4] for v in joined]


class Start(NamedTuple):
    """An incident start: the PETS frame it came on, its zone, its subject's box and track."""

    number: int
    zone: str
    box: np.ndarray
    track_id: int


TrackBoxes = dict[int, dict[int, np.ndarray]]  # PETS frame number -> {track id: box} of the tracks matched in it


def matched_boxes(ctx: FrameContext) -> dict[int, np.ndarray]:
    """{track id: box} of the tracks the analyser's tracker matched to a detection in this step."""
    return {t.track_id: np.array(t.xyxy, np.float32) for t in ctx.tracks or () if t.missed == 0}


def track_recorder(current: Callable[[], int], into: TrackBoxes) -> StepObserver:
    """An analyser's ``on_step`` that notes, frame by frame (``current()``: the frame's number), the box of
    every track its tracker matched to a detection."""

    def observe(ctx: FrameContext, updates: list[AlertUpdate]) -> None:
        if not ctx.is_tick:  # a status tick does not move the tracker
            into[current()] = matched_boxes(ctx)

    return observe


def run(
    detections_at, thresholds, class_names, frames, camera, tracker, tracks: TrackBoxes | None = None
) -> list[Start]:
    """Every incident start; ``tracks``, when given, receives the tracker's boxes frame by frame."""
    analyzer = build_analyzer(camera, tracker, class_names, operating_thresholds=thresholds)
    now = [0]
    if tracks is not None:
        analyzer.on_step = track_recorder(lambda: now[0], tracks)
    starts = []
    for number in frames:
        now[0] = number
        t = number / FPS
        frame = Frame("pets", number, t, 1_700_000_000.0 + t, BLANK)
        for update in analyzer.process(analyzer.context(frame, detections_at(number))):
            if update.phase == "start":
                subject = update.subjects[0]
                zone = update.zone or ""  # a zone_intrusion update always names its zone
                starts.append(Start(number, zone, np.array(subject.xyxy, np.float32), subject.track_id))
    return starts


def person_at_start(start: Start, gt) -> int | None:
    """The person whose ground-truth box overlaps the alerted box best at the start frame (IoU >= 0.5)."""
    boxes, ids = gt[start.number]
    iou = box_iou(start.box[None], boxes)[0] if len(boxes) else np.zeros(0)
    return int(ids[iou.argmax()]) if len(iou) and iou.max() >= 0.5 else None


def person_of_track(start: Start, gt, tracks: TrackBoxes, window: int, last: int = 3) -> int | None:
    """The person the alerted track followed in the frames that raised the alert: its ``last`` matched
    frames up to the start (the rule's ``min_frames``), no more than ``window`` frame numbers back.
    Per frame, the person its box overlaps at IoU >= 0.5 (CLEAR-MOT's match); identity by majority
    (ties: the frame nearest the start). A track that swapped people earlier does not carry its old
    identity into the alert; one frame in which two people share a box does not decide it."""
    votes: list[int] = []
    frames_seen = 0
    for number in range(start.number, start.number - window - 1, -1):
        box = tracks.get(number, {}).get(start.track_id)
        if box is None:
            continue
        frames_seen += 1
        boxes, ids = gt.get(number, (np.zeros((0, 4)), np.zeros(0)))
        if len(boxes):
            iou = box_iou(box[None], boxes)[0]
            if iou.max() >= 0.5:
                votes.append(int(ids[iou.argmax()]))
        if frames_seen == last:
            break
    if not votes:
        return None
    return max(dict.fromkeys(votes), key=votes.count)  # dict.fromkeys keeps the nearest-first order for ties


def score(
    truth, starts: list[Start], gt, merge_frames: int, tracks: TrackBoxes | None = None, min_frames: int = 3
) -> Score:
    """``starts`` against the visits ``truth`` of the same processed frames; a start counts for a
    visit open at its frame, or within ``merge_frames`` frame numbers of it. Each start is attributed
    to a person by its box at the start frame, or, given ``tracks``, by its track in the frames that
    raised it (:func:`person_of_track`)."""
    result = Score(visits=len(truth), alerts=len(starts))
    alerted: dict[tuple, int] = {}
    for start in starts:
        number, zone = start.number, start.zone
        person = (
            person_at_start(start, gt)
            if tracks is None
            else person_of_track(start, gt, tracks, merge_frames, min_frames)
        )
        visit = next(
            (
                v
                for v in truth
                if v[0] == person and v[1] == zone and v[2] - merge_frames <= number <= v[3] + merge_frames
            ),
            None,
        )
        if visit is None:
            result.false += 1
        else:
            alerted[visit] = alerted.get(visit, 0) + 1
    result.hit = len(alerted)
    result.duplicates = sum(n - 1 for n in alerted.values())
    return result


def phases(
    label, detections_at, thresholds, class_names, gt, step, camera, tracker, by_track: bool = False
) -> list[Score]:
    out = []
    for phase in range(1, step + 1):
        frames = list(range(phase, FRAMES + 1, step))
        truth = visits(gt, frames, camera)
        tracks: TrackBoxes | None = {} if by_track else None
        starts = run(detections_at, thresholds, class_names, frames, camera, tracker, tracks)
        out.append(
            score(truth, starts, gt, merge_frames=int(4 * FPS), tracks=tracks, min_frames=camera.rules[0].min_frames)
        )
    return out


def summary(scores: list[Score]) -> dict[str, tuple[float, float, float]]:
    def stat(values):
        return float(np.mean(values)), float(np.min(values)), float(np.max(values))

    return {
        "visits": stat([s.visits for s in scores]),
        "alerts": stat([s.alerts for s in scores]),
        "recall": stat([s.recall for s in scores]),
        "duplicates": stat([s.duplicates for s in scores]),
        "false": stat([s.false for s in scores]),
    }


def row(label: str, zones: str, step: int, s: dict) -> str:
    cell = lambda k, f: f"{s[k][0]:{f}} ({s[k][1]:{f}}–{s[k][2]:{f}})"  # noqa: E731
    return (
        f"| {label} | {zones} | {FPS / step:g} | {cell('visits', '.1f')} | {cell('alerts', '.1f')} | "
        f"{cell('recall', '.2f')} | {cell('duplicates', '.1f')} | {cell('false', '.1f')} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--weights", type=Path, default=REPO / "models/pedestrian-mnv2.pt")
    parser.add_argument("--min-size", type=int, default=800, help="detector input (the demo's)")
    parser.add_argument("--step", type=int, default=5, help="process every step-th frame (5 = 2 fps)")
    parser.add_argument("--tracker", default="surveil", help="tracker kind (surveil, iou-v1)")
    parser.add_argument("--no-model", action="store_true", help="ground-truth boxes only")
    parser.add_argument(
        "--runtime", default="torch", help="detections of: torch (as trained), openvino-fp32, openvino-bf16"
    )
    parser.add_argument(
        "--attribution",
        choices=("start-box", "track"),
        default="start-box",
        help="attribute each start to a person by its box at the start frame, or by its track in the frames that raised it",
    )
    args = parser.parse_args()
    by_track = args.attribution == "track"
    gt = gt_frames(args.shared_data)
    tracker = TrackerConfig(kind=args.tracker)
    print(
        f"Mean over the {args.step} sampling phases (range in brackets); tracker {args.tracker}; attribution {args.attribution}."
    )
    print("| detector | zones | processed fps | true visits | alerts | recall | duplicates | false alerts |")
    print("|---|---|---|---|---|---|---|---|")
    names = ["__background__", "pedestrian"]
    oracle = lambda n: Detections.from_arrays(gt[n][0], np.ones(len(gt[n][0])), np.ones(len(gt[n][0])))  # noqa: E731
    for extra in (False, True):
        camera = demo_camera(extra)
        label = "extra (east_side, plaza_centre)" if extra else "demo (lawn_entrance, north_path)"
        print(
            row(
                "ground-truth boxes",
                label,
                args.step,
                summary(phases("gt", oracle, None, names, gt, args.step, camera, tracker, by_track)),
            ),
            flush=True,
        )
    if args.no_model:
        return
    from bench.pets_detections import pets_detections

    found, thresholds, class_names = pets_detections(
        args.weights, args.shared_data, args.min_size, runtime=args.runtime
    )
    final = None
    for extra in (False, True):
        camera = demo_camera(extra)
        label = "extra (east_side, plaza_centre)" if extra else "demo (lawn_entrance, north_path)"
        s = summary(
            phases("model", found.__getitem__, thresholds, class_names, gt, args.step, camera, tracker, by_track)
        )
        print(row(f"{args.weights.name} @ {args.min_size}", label, args.step, s), flush=True)
        final = final or s
    assert final is not None
    print(
        f"zone-alerts detector=shipped fps={FPS / args.step:g} phases={args.step} recall={final['recall'][0]:.2f} "
        f"duplicates={final['duplicates'][0]:g} false={final['false'][0]:g}"
    )


if __name__ == "__main__":
    main()
