"""How much IDF1 the tracker loses to identity on MOT15 public detections, and what the detections allow.

    .venv/bin/python -m bench.identity_headroom [--steps 1 3 5] [--threshold 0.3] [--set OPTION=VALUE ...]

bench/track_mot.py's sequences, detections, `surveil` settings (high_score T, birth_score T + 0.1,
low_score min(0.1, T), `--set` on top) and scoring, every sampling phase. Three IDF1 figures on the
same frames, each the mean over phases with the range:

- **tracker**: what the tracker returned, as bench.track_mot scores it.
- **tracker's boxes, true identities**: the same boxes, each one that covers a ground-truth person
  (IoU >= 0.5, one to one) relabelled with that person's id; the others (false positives) keep an id
  of their own. What the tracker would score without a single identity error, so the difference from
  "tracker" is what identity costs and the rest is coverage (boxes not returned, or returned wrongly).
- **detections, true identities**: every detection the tracker may use (scoring at least low_score)
  that covers a person, labelled with that person's id, except each person's first ``min_hits`` - 1
  sightings (an online tracker returns nobody before it confirms them); no false positives. Roughly
  the best a tracker returning this frame's detections could score. It is not a strict bound: a
  tracker may return a low-score box that this oracle would have dropped as a first sighting.

So "detections" - "tracker" is the tracker's whole headroom on these detections, and "tracker's boxes"
- "tracker" the part of it that is identity. Every figure is machine-independent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench.track_mot import (
    EMPTY_BOX,
    SEQUENCES,
    STEPS,
    Output,
    Sequence,
    _ours,
    _overrides,
    _phases,
    load_sequence,
    score,
    surveil_config,
    track,
)
from surveil.config import TrackerConfig
from surveil.evaluation.surveillance import pair_by_iou

FIGURES = ("tracker", "tracker's boxes, true identities", "detections, true identities")


def true_identities(seq: Sequence, outputs: list[Output]) -> list[Output]:
    """``outputs`` with every box that covers a person relabelled with the person's id; the other boxes
    get ``-1 - id`` (negative, so no person's id, and still one per track)."""
    relabelled = []
    for frame, ids, boxes in outputs:
        gt_ids, gt_boxes, _ = seq.gt.get(frame, (np.zeros(0, int), EMPTY_BOX, np.zeros(0, bool)))
        new_ids = -1 - np.asarray(ids, int)
        for box, person in pair_by_iou(boxes, gt_boxes):
            new_ids[box] = gt_ids[person]
        relabelled.append((frame, new_ids, boxes))
    return relabelled


def detections_oracle(seq: Sequence, k: int, offset: int, low_score: float, min_hits: int) -> list[Output]:
    """Every detection scoring at least ``low_score`` that covers a person, with the person's id, from the
    person's ``min_hits``-th sighting on, on frames 1 + offset, 1 + offset + k, ..."""
    sightings: dict[int, int] = {}
    outputs = []
    for frame in range(1 + offset, seq.frames + 1, k):
        xyxy, scores = seq.dets.get(frame, (EMPTY_BOX, np.zeros(0, np.float32)))
        xyxy = xyxy[scores >= low_score]
        gt_ids, gt_boxes, _ = seq.gt.get(frame, (np.zeros(0, int), EMPTY_BOX, np.zeros(0, bool)))
        ids, boxes = [], []
        for box, person in pair_by_iou(xyxy, gt_boxes):
            person_id = int(gt_ids[person])
            sightings[person_id] = sightings.get(person_id, 0) + 1
            if sightings[person_id] >= min_hits:
                ids.append(person_id)
                boxes.append(xyxy[box])
        outputs.append((frame, np.array(ids, int), np.array(boxes, np.float32).reshape(-1, 4)))
    return outputs


def headroom(seq: Sequence, k: int, offset: int, make: Callable[[], Callable], config: TrackerConfig) -> tuple:
    """The three IDF1 figures (``FIGURES``) of one sequence, step and phase."""
    outputs = track(seq, make(), k, offset)
    oracle = detections_oracle(seq, k, offset, config.low_score, config.min_hits)
    return tuple(score(seq, out)[1] for out in (outputs, true_identities(seq, outputs), oracle))


def main(args: argparse.Namespace) -> None:
    options = _overrides(args.set)
    setting = (("T", args.threshold),)
    sequences = [load_sequence(Path(args.data), name) for name in SEQUENCES]
    config = surveil_config(args.threshold, options)
    print(f"tracker `surveil`, T={args.threshold:g}, options {options or 'default'}; IDF1, mean over phases (range)\n")
    print("| step | sequence | " + " | ".join(FIGURES) + " |\n|---|---|---|---|---|")
    for k in args.steps:
        per_phase: dict[int, list[tuple]] = {o: [] for o in range(k)}  # phase -> (tracker, boxes, oracle) per sequence
        for seq in sequences:
            make = partial(_ours, "surveil", setting, seq.size, options)
            cells = [headroom(seq, k, o, make, config) for o in range(k)]
            for o, cell in enumerate(cells):
                per_phase[o].append(cell)
            print(f"| {k} | {seq.name} | " + " | ".join(_phases([c[j] for c in cells]) for j in range(3)) + " |")
        means = [[float(np.mean([c[j] for c in per_phase[o]])) for o in range(k)] for j in range(3)]
        print(f"| {k} | **mean of {len(sequences)}** | " + " | ".join(f"**{_phases(m)}**" for m in means) + " |")
        gap, identity = np.mean(means[2]) - np.mean(means[0]), np.mean(means[1]) - np.mean(means[0])
        print(f"headroom step={k}: tracker {np.mean(means[0]):.3f}, of which identity {identity:.3f}, total {gap:.3f}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/MOT15", help="MOT15 folder (relative to the repo root)")
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS), help="every k-th frame (1-50)")
    parser.add_argument("--threshold", type=float, default=0.3, help="the tracker's high_score T (0-1)")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a tracker option")
    return parser


def _checked(args: argparse.Namespace) -> argparse.Namespace:
    problems = [f"--steps {k}: expected 1-50" for k in args.steps if not 1 <= k <= 50]
    problems += [f"--threshold {args.threshold}: expected 0-1"] if not 0 <= args.threshold <= 1 else []
    problems += [f"--data {args.data}: no such folder"] if not Path(args.data).is_dir() else []
    if problems:
        print("; ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    return args


if __name__ == "__main__":
    main(_checked(get_args_parser().parse_args()))
