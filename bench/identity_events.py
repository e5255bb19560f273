"""Where the tracker's identity errors come from: every match it makes on MOT15 public detections, by stage.

    .venv/bin/python -m bench.identity_events [--steps 5] [--threshold 0.3] [--set OPTION=VALUE ...]

bench/track_mot.py's sequences, detections and `surveil` settings (as bench/identity_headroom.py), every
sampling phase. The tracker runs as in the daemon; a subclass only records, in every update, which track
took which detection and how (it changes no decision). Each detection is paired with a ground-truth
person (IoU >= 0.5, one to one), and each match is put in one row:

- ``confirmed, IoU`` / ``confirmed, centre``: a confirmed track took a high-score detection by IoU with its
  predicted box (at least ``iou_threshold``) or, failing that, by centre distance; ``seen`` if the track
  was matched in the previous update, ``lost`` if not.
- ``rescue, ...``: a track seen in the previous update took a low-score detection (ByteTrack's second stage).
- ``tentative, ...``: a track not yet confirmed took a detection.
- ``re-attached``: a lost or dormant track was given back by appearance (only with embeddings).

Columns: ``right`` (the detection's person is the one the track's previous match covered), ``wrong`` (another
person: an identity change), ``wrong, own box`` (of those, the track's previous person had a detection of
their own in this frame: the association, not the detector, failed), ``wrong, lasting`` (the track then
stayed on the new person for at least three processed frames: the changes IDF1 pays for), and ``frames kept``
(processed frames the track followed the new person from the change on). Matches of a detection or track
that covers nobody are counted apart (``with a false box``). A last line counts each new track started for
somebody whom an earlier track had followed, by what became of that earlier track: gone on with another
person, lost but still kept (not matched), dropped, or matched to a box on nobody. Counts are summed over
every phase and the four sequences; every figure is machine-independent.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.identity_headroom import _checked
from bench.identity_headroom import get_args_parser as headroom_parser
from bench.track_mot import EMPTY_BOX, SEQUENCES, Sequence, _overrides, load_sequence, surveil_config
from surveil.config import TrackerConfig
from surveil.evaluation.surveillance import pair_by_iou
from surveil.geometry import box_iou
from surveil.tracking import surveil_options
from surveil.tracking.bytetrack import ByteTracker, _TrackState
from surveil.types import Detections

LASTING = 3  # processed frames on the new person that make an identity change "lasting"
STAGES = (
    "confirmed, IoU, seen",
    "confirmed, IoU, lost",
    "confirmed, centre, seen",
    "confirmed, centre, lost",
    "rescue, IoU",
    "rescue, centre",
    "tentative, IoU",
    "tentative, centre",
    "re-attached",
)
COLUMNS = ("right", "wrong", "wrong, own box", "wrong, lasting", "frames kept", "with a false box")


@dataclass(frozen=True)
class Match:
    """One track taking one detection in one update."""

    track_id: int
    detection: int
    stage: str  # one of STAGES, or "birth"


class RecordingTracker(ByteTracker):
    """The `surveil` tracker, recording each update's matches in ``matches`` (its decisions unchanged)."""

    matches: list[Match]

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list:
        self.matches = []
        self._seen_before = {t.track_id for t in self._tracks if t.missed == 0}
        return super().update(detections, now, confident)

    def _match(
        self, tracks: list[int], dets: list[int], detections: Detections, iou_min: float, lost_ok: bool
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        before = {t: self._tracks[t].motion.box() for t in tracks}  # the predicted boxes the stage compared
        matches, left_tracks, left_dets = super()._match(tracks, dets, detections, iou_min, lost_ok)
        for t_index, d_index in matches:
            track = self._tracks[t_index]
            by_iou = float(box_iou(before[t_index][None], detections.xyxy[d_index][None])[0, 0]) >= iou_min
            low = bool(detections.confidence[d_index] < self.high_score)
            self.matches.append(Match(track.track_id, d_index, self._stage(track, by_iou, low)))
        return matches, left_tracks, left_dets

    def _stage(self, track: _TrackState, by_iou: bool, low: bool) -> str:
        """``track`` as it was before this match (hits not yet counted)."""
        how = "IoU" if by_iou else "centre"
        if track.hits < self.min_hits:
            return f"tentative, {how}"
        if low:
            return f"rescue, {how}"
        return f"confirmed, {how}, {'seen' if track.track_id in self._seen_before else 'lost'}"

    def _reattach(self, detections: Detections, candidates: list[int], now: float) -> list[int]:
        waiting = {t.track_id for t in self._tracks if t.missed > 0}
        left = super()._reattach(detections, candidates, now)
        for d_index in set(candidates) - set(left):
            for track in self._tracks:
                if (
                    track.track_id in waiting
                    and track.missed == 0
                    and np.array_equal(track.xyxy, detections.xyxy[d_index])
                ):
                    self.matches.append(Match(track.track_id, d_index, "re-attached"))
        return left

    def _births(self, detections: Detections, candidates: list[int], now: float) -> None:
        first = self._next_id
        super()._births(detections, candidates, now)
        self.matches += [Match(first + n, d, "birth") for n, d in enumerate(candidates)]


Frame = tuple[int, list[Match], dict, dict]  # frame, matches, {detection: person}, {kept track id: missed}


def record(seq: Sequence, k: int, offset: int, config: TrackerConfig) -> list[Frame]:
    """Per processed frame: (frame, the tracker's matches, {detection index: person id}, {id: missed} of every
    track the tracker keeps after the update)."""
    tracker = RecordingTracker("bench", **surveil_options(config))
    if seq.size is not None:
        tracker.set_frame_size(*seq.size)
    frames = []
    for frame in range(1 + offset, seq.frames + 1, k):
        xyxy, scores = seq.dets.get(frame, (EMPTY_BOX, np.zeros(0, np.float32)))
        gt_ids, gt_boxes, _ = seq.gt.get(frame, (np.zeros(0, int), EMPTY_BOX, np.zeros(0, bool)))
        tracker.update(Detections.from_arrays(xyxy, scores, np.zeros(len(scores))), (frame - 1) / seq.fps)
        people = {int(d): int(gt_ids[p]) for d, p in pair_by_iou(xyxy, gt_boxes)}
        kept = {t.track_id: t.missed for t in tracker._tracks}
        frames.append((frame, list(tracker.matches), people, kept))
    return frames


def tally(frames: list[Frame]) -> Counter:
    """The table's cells, keyed (stage, column), from one run's ``record``."""
    cells: Counter = Counter()
    last_person: dict[int, int | None] = {}  # track id -> the person its previous match covered
    trail: dict[int, list[int | None]] = {}  # track id -> person of each later match (for "lasting")
    changes: list[tuple[str, int, int, int]] = []  # (stage, track id, person, index into its trail)
    holder: dict[int, int] = {}  # person -> the track that covered them last
    for _, matches, people, kept in frames:
        for match in matches:
            person = people.get(match.detection)
            if match.stage == "birth":
                if person is not None and person in holder:
                    cells["birth for a tracked person", _old_track(holder[person], person, last_person, kept)] += 1
            else:
                previous = last_person.get(match.track_id)
                if person is None or previous is None:
                    cells[match.stage, "with a false box"] += 1
                elif person == previous:
                    cells[match.stage, "right"] += 1
                else:
                    cells[match.stage, "wrong"] += 1
                    cells[match.stage, "wrong, own box"] += previous in people.values()
                    changes.append((match.stage, match.track_id, person, len(trail.get(match.track_id, []))))
            if person is not None:
                holder[person] = match.track_id
                last_person[match.track_id] = person
            elif match.track_id not in last_person:
                last_person[match.track_id] = None
            trail.setdefault(match.track_id, []).append(person)
    for stage, track_id, person, start in changes:
        run = 0
        for later in trail[track_id][start:]:
            if later != person:
                break
            run += 1
        cells[stage, "frames kept"] += run
        cells[stage, "wrong, lasting"] += run >= LASTING
    return cells


def _old_track(track_id: int, person: int, last_person: dict, kept: dict) -> str:
    """What became of the track that followed ``person`` before a new one started for them."""
    if last_person.get(track_id) != person:
        return "old track on another person"
    if track_id not in kept:
        return "old track dropped"
    return "old track lost, kept" if kept[track_id] > 0 else "old track matched elsewhere"


BIRTH_COLUMNS = (
    "old track on another person",
    "old track lost, kept",
    "old track dropped",
    "old track matched elsewhere",
)


def main(args: argparse.Namespace) -> None:
    options = _overrides(args.set)
    config = surveil_config(args.threshold, options)
    sequences = [load_sequence(Path(args.data), name) for name in SEQUENCES]
    for k in args.steps:
        total: Counter = Counter()
        wrong_by_sequence = {}
        for seq in sequences:
            cells: Counter = Counter()
            for offset in range(k):
                cells += tally(record(seq, k, offset, config))
            total += cells
            wrong_by_sequence[seq.name] = sum(v for (_, col), v in cells.items() if col == "wrong")
        print(
            f"\nstep {k}, tracker `surveil`, T={args.threshold:g}, options {options or 'default'}; summed over {k} phases\n"
        )
        print("| match | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
        for stage in STAGES:
            if any(total[stage, col] for col in COLUMNS):
                print(f"| {stage} | " + " | ".join(str(total[stage, col]) for col in COLUMNS) + " |")
        births = " | ".join(f"{col} {total['birth for a tracked person', col]}" for col in BIRTH_COLUMNS)
        print(f"\nnew track for a person a track followed before: {births}")
        print("wrong matches by sequence: " + ", ".join(f"{n} {w}" for n, w in wrong_by_sequence.items()))


def get_args_parser() -> argparse.ArgumentParser:
    """bench.identity_headroom's options (same data, threshold and ``--set``), at step 5 unless told."""
    parser = headroom_parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.set_defaults(steps=[5])
    return parser


if __name__ == "__main__":
    main(_checked(get_args_parser().parse_args()))
