"""Why the rules still miss at a low processed rate: the detector, or identity. Every miss and false start, by cause.

    .venv/bin/python -m bench.rules_misses [--steps 5] [--list] [--config configs/demo.yaml] [--weights W --min-size N]

The shipped model's (or ``--weights``') cached detections of PETS09-S2L1 (bench/pets_detections.py) are replayed through the
daemon's analyser with bench/rules_phases_pets.py's geometry and its scoring, every sampling phase. Then every
missed zone visit, missed loitering stay and false start is put in one class, from the ground truth, the
detections at the model's operating threshold ("confident", what the tracker may start a track from) and the
tracker's matched boxes (paired with people one to one at IoU >= 0.5, as CLEAR-MOT matches):

Misses
- ``detector``: no tracker, however good, could have raised it from these detections ("inside": the confident
  box that follows the person, its own anchor in the zone, as the rule sees it).
  - A visit: the person is never confidently detected inside the zone in ``min_frames`` processed frames in a row.
  - A stay: no chain of confident detections of the person inside the zone, with no gap longer than the
    tracker's ``lost_after_s`` (what motion alone bridges), spans ``dwell_s``.
- ``never tracked``: the detections would do, but no confirmed track ever followed the person in the zone.
- ``swap``: the person's track changed inside the stay or visit, and the track they had went on with another
  person (at that frame or the next processed one): identity exchanged inside a group.
- ``re-birth``: the person's track changed and the old one did not go on with anybody: lost, then a new id.
- ``..., no own box``: a swap or re-birth during which, in some processed frame from the person's last frame
  under the old id to their first under the new one, no confident box followed the person alone (none at IoU
  >= 0.5: missed, or one box over them and a neighbour). Without it the change happened while the detector
  gave the person a box of their own: the tracker's association is what failed.
- ``start on a neighbour``: one track followed the person, and its start is attributed to somebody else: in the
  frames that raised it, its box lay on a neighbour (often one box over two people).
- ``tracked``: one track followed the person, and the rule did not start (a rule matter).

False starts (attributed as bench/rules_phases_pets.py does: the person the alerted track followed)
- ``on nobody``: the track followed no person in the frames that raised it.
- ``carried``: the track followed another person earlier in the dwell (or, for an intrusion, in the rule's
  merge window) than the one it is attributed to: a dwell or visit handed from one person to another; ``no own
  box`` as for misses, for either person, from the last frame on the other person to the first on this one.
- ``early``: the person was in the zone, for less than ``dwell_s`` by the ground truth (the detected feet
  crossed the border before the true ones, or the stay ends with the video before the truth's dwell).
- ``elsewhere``: the person was not in the zone by the ground truth.

Each figure is the mean per run over the phases. ``--list`` prints every event with its frame numbers.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from bench.pets_detections import cache_path, pets_detections
from bench.rules_phases_pets import SHIPPED, camera_config, load_detections, loitering_stays, machine, replay
from bench.zone_alerts_pets import FPS, FRAMES, H, Start, W, gt_frames, person_of_track, visits
from surveil.evaluation.surveillance import pair_by_iou
from surveil.geometry import Anchor, box_iou, points_in_polygon, relative_anchors

REPO = Path(__file__).resolve().parents[1]
MISS_CAUSES = (
    "detector",
    "never tracked",
    "swap, no own box",
    "swap",
    "re-birth, no own box",
    "re-birth",
    "start on a neighbour",
    "tracked",
)
FALSE_CAUSES = ("on nobody", "carried, no own box", "carried", "early", "elsewhere")


@dataclass(frozen=True)
class Event:
    phase: int
    rule: str
    kind: str  # "miss" or "false"
    cause: str
    person: int | None
    frames: tuple[int, int]  # the stay/visit (first, last), or the start frame twice

    def line(self) -> str:
        who = "nobody" if self.person is None else f"person {self.person}"
        span = (
            f"frame {self.frames[0]}"
            if self.frames[0] == self.frames[1]
            else f"frames {self.frames[0]}-{self.frames[1]}"
        )
        return f"phase {self.phase} {self.rule}: {self.kind} ({self.cause}), {who}, {span}"


class Scene:
    """One phase's frames, truth, confident detections and the tracker's matched boxes, and questions on them."""

    def __init__(self, gt, found, thresholds, frames: list[int], tracks: dict, camera, max_gap_frames: float):
        self.gt, self.frames, self.tracks = gt, frames, tracks
        self.max_gap_frames = max_gap_frames  # the longest gap a motion tracker bridges (its lost_after_s)
        self._pairs: dict[int, dict[int, int]] = {}
        self.zones = {z.name: np.array(z.polygon, np.float64) for z in camera.zones}
        self.confident = {}
        for n in frames:
            d = found[n]
            keep = d.confidence >= np.asarray(thresholds)[np.clip(d.class_id, 0, len(thresholds) - 1)]
            self.confident[n] = d.xyxy[keep]

    def box_of(self, person: int, n: int) -> np.ndarray | None:
        boxes, ids = self.gt[n]
        at = np.flatnonzero(ids == person)
        return boxes[at[0]] if len(at) else None

    def own_box(self, person: int, n: int) -> np.ndarray | None:
        """The confident box that follows ``person`` alone in frame ``n`` (the best at IoU >= 0.5 with theirs)."""
        box, found = self.box_of(person, n), self.confident[n]
        if box is None or not len(found):
            return None
        iou = box_iou(box[None], found)[0]
        return found[int(iou.argmax())] if iou.max() >= 0.5 else None

    def detected(self, person: int, n: int) -> bool:
        return self.own_box(person, n) is not None

    def detected_inside(self, person: int, zone: str, n: int, anchor: Anchor) -> bool:
        """Whether the person's own box has its anchor in ``zone``: what the rule sees of them, whatever the tracker does."""
        box = self.own_box(person, n)
        if box is None:
            return False
        return bool(points_in_polygon(relative_anchors([box.tolist()], anchor, W, H), self.zones[zone])[0])

    def track_on(self, person: int, n: int) -> int | None:
        """The matched track following ``person`` in frame ``n``, if any (:meth:`pairs`)."""
        return self.pairs(n).get(person)

    def person_under(self, track: int, n: int) -> int | None:
        """The person a matched track follows in frame ``n``, if any (:meth:`pairs`)."""
        return next((p for p, t in self.pairs(n).items() if t == track), None)

    def pairs(self, n: int) -> dict[int, int]:
        """{person: track} in frame ``n``: people and matched tracks paired one to one at IoU >= 0.5
        (:func:`pair_by_iou`)."""
        if n not in self._pairs:
            boxes, people = self.gt[n]
            matched = self.tracks.get(n, {})
            ids = list(matched)
            tracked = np.stack([matched[i] for i in ids]) if ids else np.zeros((0, 4), np.float32)
            self._pairs[n] = {int(people[row]): ids[col] for row, col in pair_by_iou(boxes, tracked)}
        return self._pairs[n]

    def span(self, first: int, last: int) -> list[int]:
        return [n for n in self.frames if first <= n <= last]


def miss_cause(scene: Scene, person: int, zone: str, frames: list[int], rule, dwell_s: float | None) -> str:
    """The class of a missed visit (``dwell_s`` None) or stay over ``frames``, the processed frames it spans."""
    seen = [n for n in frames if scene.detected_inside(person, zone, n, rule.anchor)]
    if dwell_s is None:
        if not _has_run(frames, set(seen), rule.min_frames):
            return "detector"
    elif not _chain_spans(seen, scene.max_gap_frames, dwell_s * FPS):
        return "detector"
    ids = [(n, t) for n in frames if (t := scene.track_on(person, n)) is not None]
    if not ids:
        return "never tracked"
    for (was, before), (n, after) in pairwise(ids):
        if after != before:
            later = [m for m in scene.frames if m >= n][:2]
            went_on = any(scene.person_under(before, m) not in (None, person) for m in later)
            alone = all(scene.detected(person, m) for m in scene.span(was, n))
            return ("swap" if went_on else "re-birth") + ("" if alone else ", no own box")
    return "tracked"


def _has_run(frames: list[int], good: set[int], length: int) -> bool:
    run = 0
    for n in frames:
        run = run + 1 if n in good else 0
        if run >= length:
            return True
    return False


def _chain_spans(seen: list[int], max_gap: float, span: float) -> bool:
    """Whether consecutive ``seen`` frame numbers, broken where two lie more than ``max_gap`` apart, reach ``span``."""
    start = None
    for previous, n in zip([None, *seen], seen):
        if previous is None or n - previous > max_gap:
            start = n
        if start is not None and n - start >= span:
            return True
    return False


def false_cause(scene: Scene, start, person: int | None, rule, zone_visits: list, dwell_s: float | None) -> str:
    """The class of a false start; ``zone_visits``: every visit to the zone, of any length (person, zone, first,
    last inside)."""
    if person is None:
        return "on nobody"
    window = dwell_s if dwell_s is not None else rule.merge_window_s
    earlier = [n for n in scene.frames if start.number - window * FPS <= n < start.number]
    under = [(n, q) for n in earlier if (q := scene.person_under(start.track_id, n)) is not None]
    others = [(n, q) for n, q in under if q != person]
    if others:
        was, other = others[-1]
        handed = next((n for n, q in under if n > was and q == person), start.number)
        alone = all(scene.detected(p, m) for m in scene.span(was, handed) for p in (other, person))
        return "carried" + ("" if alone else ", no own box")
    open_visit = any(v[0] == person and v[2] <= start.number <= v[3] for v in zone_visits)
    return "early" if open_visit else "elsewhere"


def identity_changes(scene: Scene) -> Counter:
    """Every change of the track following a person (from one matched track to another, across frames without
    one too), counted as ``alone`` or ``no own box`` as for misses; ``alone`` ones that are half of a flip (the
    person's next or previous change swaps the same two tracks back, within two processed frames) also count
    as ``flip``."""
    changes: Counter = Counter()
    people = sorted({int(p) for n in scene.frames for p in scene.gt[n][1]})
    for person in people:
        ids = [(n, t) for n in scene.frames if (t := scene.track_on(person, n)) is not None]
        moves = [(was, n, before, after) for (was, before), (n, after) in pairwise(ids) if after != before]
        for k, (was, n, before, after) in enumerate(moves):
            if not all(scene.detected(person, m) for m in scene.span(was, n)):
                changes["no own box"] += 1
                continue
            changes["alone"] += 1
            near = [moves[j] for j in (k - 1, k + 1) if 0 <= j < len(moves)]
            if any({m[2], m[3]} == {before, after} and len(scene.span(min(n, m[1]), max(n, m[1]))) <= 3 for m in near):
                changes["flip"] += 1
    return changes


def phase_events(phase: int, step: int, camera, tracker, gt, found, thresholds, names) -> list[Event]:

    frames = list(range(phase, FRAMES + 1, step))
    updates, _, _, tracks = replay(camera, tracker, found.__getitem__, thresholds, names, frames)
    scene = Scene(gt, found, thresholds, frames, tracks, camera, tracker.lost_after_s * FPS)
    changes = identity_changes(scene)
    events = [Event(phase, "identity", "change", cause, None, (0, 0)) for cause, k in changes.items() for _ in range(k)]
    zones = {z.name: z for z in camera.zones}
    for rule in (r for r in camera.rules if r.type in ("zone_intrusion", "loitering")):
        one = camera.model_copy(update={"zones": [zones[rule.zone]], "rules": [rule]})
        dwell = rule.dwell_s if rule.type == "loitering" else None
        truth = loitering_stays(gt, frames, one) if dwell is not None else visits(gt, frames, one)
        merge = int(rule.merge_window_s * FPS)
        starts = [
            Start(n, u.zone, np.array(u.subjects[0].xyxy, np.float32), u.subjects[0].track_id)
            for n, u in updates
            if u.rule == rule.id and u.phase == "start"
        ]
        attributed = [(s, person_of_track(s, gt, tracks, merge, rule.min_frames)) for s in starts]
        for person, zone, first, last in truth:
            if any(p == person and first - merge <= s.number <= last + merge for s, p in attributed):
                continue
            entered = first - (rule.min_frames - 1) * step if dwell is None else _entry(gt, frames, one, person, first)
            span = scene.span(entered, last)
            cause = miss_cause(scene, person, zone, span, rule, dwell)
            followed = {scene.track_on(person, n) for n in span}
            if cause == "tracked" and any(s.track_id in followed and p != person for s, p in attributed):
                cause = "start on a neighbour"
            events.append(Event(phase, rule.id, "miss", cause, person, (entered, last)))
        any_length = visits(
            gt, frames, one.model_copy(update={"rules": [rule.model_copy(update={"merge_window_s": 0.0})]})
        )
        for start, owner in attributed:
            hit = any(v[0] == owner and v[2] - merge <= start.number <= v[3] + merge for v in truth)
            if not hit:
                cause = false_cause(scene, start, owner, rule, any_length, dwell)
                events.append(Event(phase, rule.id, "false", cause, owner, (start.number, start.number)))
    return events


def _entry(gt, frames: list[int], camera, person: int, reached: int) -> int:
    """The first frame of the stay whose dwell is reached at ``reached`` (its visit's first frame inside)."""
    rule = camera.rules[0]
    unjoined = camera.model_copy(update={"rules": [rule.model_copy(update={"merge_window_s": 0.0})]})
    step = frames[1] - frames[0] if len(frames) > 1 else 1
    firsts = [v[2] for v in visits(gt, frames, unjoined) if v[0] == person and v[2] <= reached]
    return max(firsts) - (rule.min_frames - 1) * step


def table(events: list[Event], rules: list[str], phases: int) -> list[str]:
    """Causes down, rules across, each cell the mean per run; the last column is every rule together."""
    count = Counter((e.rule, e.kind, e.cause) for e in events)
    out = ["| cause | " + " | ".join(rules) + " | all |", "|---|" + "---|" * (len(rules) + 1)]
    for kind, causes in (("miss", MISS_CAUSES), ("false", FALSE_CAUSES)):
        for cause in causes:
            cells = [count[(rule, kind, cause)] / phases for rule in rules]
            label = f"missed: {cause}" if kind == "miss" else f"false start: {cause}"
            out.append(f"| {label} | " + " | ".join(f"{c:.1f}" for c in [*cells, sum(cells)]) + " |")
    return out


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--steps", type=int, nargs="+", default=[5], help="process every k-th frame (5 = 2 fps)")
    parser.add_argument("--config", type=Path, default=REPO / "configs/demo.yaml", help="its first camera's tracker")
    parser.add_argument("--list", action="store_true", help="print every miss and false start")
    parser.add_argument(
        "--weights", type=Path, default=REPO / SHIPPED[0], help="the detector (default: the shipped one)"
    )
    parser.add_argument("--min-size", type=int, default=SHIPPED[1], help="its input's shorter side")
    args = parser.parse_args()
    if not (args.shared_data / "MOT15/PETS09-S2L1").is_dir():
        parser.exit(2, f"rules_misses: {args.shared_data}/MOT15/PETS09-S2L1 not found (--shared-data)\n")
    pets_detections(args.weights, args.shared_data, args.min_size)  # computed once, cached
    found, thresholds, names = load_detections(cache_path(args.weights, args.min_size, 0.1))
    camera, tracker = camera_config(args.config)
    gt = gt_frames(args.shared_data)
    rules = [r.id for r in camera.rules if r.type in ("zone_intrusion", "loitering")]
    print(machine())
    for step in args.steps:
        events = [
            e for p in range(1, step + 1) for e in phase_events(p, step, camera, tracker, gt, found, thresholds, names)
        ]
        print(
            f"\n**{args.weights.name} @ {args.min_size}, {10 / step:g} processed fps: misses and false starts by cause**"
        )
        print(f"(mean per run over {step} phase(s); {args.config.name}'s tracker)\n")
        print("\n".join(table(events, rules, step)))
        changes = Counter(e.cause for e in events if e.kind == "change")
        print(
            f"\nThe track following a person changed {(changes['alone'] + changes['no own box']) / step:.1f} times per run, "
            f"{changes['no own box'] / step:.1f} of them while the detector gave that person no confident box of their "
            "own (in some processed frame from their last under the old track to their first under the new one); "
            f"{changes['flip'] / step:.1f} of the other {changes['alone'] / step:.1f} are half of a flip that the "
            "same two tracks undo within two processed frames."
        )
        if args.list:
            print("\n" + "\n".join(e.line() for e in events if e.kind != "change"))


if __name__ == "__main__":
    main()
