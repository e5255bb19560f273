"""Trackers on MOT15 public detections, every frame and every 3rd and 5th frame, scored with motmetrics.

    .venv/bin/python -m bench.track_mot [--data ../shared/data/MOT15] [--jobs 2]

Sequences PETS09-S2L1, TUD-Stadtmitte, TUD-Campus and PETS09-S3-MF1 (public detections from each
sequence's det file). Scores: the ACF detections of the first three range from about -0.5 to 139
and are divided by 100; PETS09-S3-MF1's are already 0-1; all are then clipped to [0, 1]. Frame rate
from each sequence's seqinfo.ini (7 where there is none). Feeding every k-th frame, a tracker sees
frames 1, 1+k, ... with their true times and is scored on those frames only.

Trackers, side by side in one run: ours (`surveil`), the previous one (`iou-v1`), and the
`trackers` package's ByteTrack, OC-SORT and SORT (`pip install 'surveil[bench]'`). Each runs at
every setting of its own sweep (score threshold T in 0.1-0.8, plus the knobs below); the table shows
each at its one setting with the best mean MOTA + IDF1 over 4 sequences x 3 steps, the same setting
for every sequence and step.

- `surveil`: TrackerConfig defaults except high_score = T, birth_score = T + 0.1 (the defaults'
  relation; defaults are 0.3 / 0.4), low_score = min(0.1, T). Gets all detections; splits them itself.
- `iou-v1`: TrackerConfig defaults (kind iou-v1); gets only the detections scoring at least T.
- `bytetrack`: ByteTrackTracker(high_conf_det_threshold=T, track_activation_threshold=A,
  lost_track_buffer=30 x L, frame_rate=processed fps, other arguments at the package defaults:
  minimum_iou_threshold 0.1, minimum_consecutive_frames 2) with A in {T, T + 0.1} and the lost-track
  buffer L in {1, 2, 3} seconds (the package counts lost_track_buffer in 30-fps frames and scales it
  by frame_rate, so 30 x L is L seconds at any processed rate). Gets all detections: those under T
  feed its second (low-score) association, which is what ByteTrack is for; no pre-filter.
- `ocsort`: OCSORTTracker(high_conf_det_threshold=T, lost_track_buffer=30 x L, frame_rate=processed
  fps, other arguments at the defaults), L in {1, 2, 3} s. Gets all detections (it drops those under
  T itself).
- `sort`: SORTTracker(track_activation_threshold=T, lost_track_buffer=30 x L, frame_rate=processed
  fps, other arguments at the defaults), L in {1, 2, 3} s. SORT has no low-score stage, so it gets
  only the detections scoring at least T.

The package's trackers get `timestamp` = the frame's time in seconds ((frame - 1) / fps) with
frame_rate = fps / k, so their Kalman step is one processed frame and their lost buffer is counted in
seconds. Their output rows with tracker_id -1 (detections not, or not yet, on a confirmed track) are
dropped, as ours drops tentative tracks.

Scoring (motmetrics, IoU >= 0.5): only tracks matched in the current frame (missed == 0 for ours;
the package's trackers return only detections, so their confirmed rows are exactly that). Ground-truth rows with flag 0 are don't-care: they are
dropped, and so is every tracker box overlapping one of them at IoU >= 0.5 (neither FP nor TP).
The last lines are one per (tracker, sequence, step):
`tracker=NAME seq=SEQ step=K MOTA=0.xxx IDF1=0.xxx IDsw=N`.
"""

from __future__ import annotations

import argparse
import configparser
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# motmetrics 1.4.0 calls np.asfarray, which NumPy 2 removed; put it back before importing motmetrics
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)

import motmetrics as mm

from surveil.config import TrackerConfig
from surveil.geometry import box_iou
from surveil.tracking import make_tracker
from surveil.types import Detections

SEQUENCES = ("PETS09-S2L1", "TUD-Stadtmitte", "TUD-Campus", "PETS09-S3-MF1")
RAW_SCORE_SEQUENCES = {"PETS09-S3-MF1"}  # scores already 0-1; the others are ACF scores / 100
STEPS = (1, 3, 5)
TRACKERS = ("surveil", "bytetrack", "ocsort", "sort", "iou-v1")
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BIRTH_MARGIN = 0.1
LOST_S = (1.0, 2.0, 3.0)  # lost-track buffers swept for the package's trackers, in seconds
DEFAULT_FPS = 7.0


@dataclass(frozen=True)
class Sequence:
    name: str
    fps: float
    frames: int
    dets: dict[int, tuple[np.ndarray, np.ndarray]]  # frame -> (xyxy (N, 4), score (N,))
    gt: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # frame -> (ids, xyxy, counted (bool))


def _rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1).astype(
        np.float32
    )


def load_sequence(root: Path, name: str) -> Sequence:
    folder = root / name
    det_path = next(p for p in (folder / "det" / "det.txt", folder / "det.txt") if p.is_file())
    det, gt = _rows(det_path), _rows(folder / "gt" / "gt.txt")
    fps, frames = DEFAULT_FPS, int(max(det[:, 0].max(), gt[:, 0].max()))
    info = folder / "seqinfo.ini"
    if info.is_file():
        parser = configparser.ConfigParser()
        parser.read(info)
        fps = float(parser["Sequence"].get("frameRate", DEFAULT_FPS))
        frames = int(parser["Sequence"].get("seqLength", frames))
    scores = det[:, 6] if name in RAW_SCORE_SEQUENCES else det[:, 6] / 100.0
    scores = np.clip(scores, 0.0, 1.0).astype(np.float32)
    dets = {int(f): (_xyxy(det[det[:, 0] == f]), scores[det[:, 0] == f]) for f in np.unique(det[:, 0])}
    gts = {
        int(f): (gt[gt[:, 0] == f][:, 1].astype(int), _xyxy(gt[gt[:, 0] == f]), gt[gt[:, 0] == f][:, 6] != 0)
        for f in np.unique(gt[:, 0])
    }
    return Sequence(name, fps, frames, dets, gts)


# --- trackers: each factory returns step(xyxy, scores, now) -> (ids, xyxy) of the tracks matched now

Setting = tuple[tuple[str, float], ...]  # (("T", 0.3), ("A", 0.4), ("L", 1.0)): one point of a tracker's sweep


def settings(kind: str, thresholds: list[float]) -> list[Setting]:
    """The sweep of one tracker: T (score threshold), A (ByteTrack's activation), L (lost buffer, s)."""
    if kind in ("surveil", "iou-v1"):
        return [(("T", t),) for t in thresholds]
    if kind == "bytetrack":
        return [
            (("T", t), ("A", round(min(1.0, t + d), 3)), ("L", lost))
            for t in thresholds
            for d in (0.0, BIRTH_MARGIN)
            for lost in LOST_S
        ]
    return [(("T", t), ("L", lost)) for t in thresholds for lost in LOST_S]


def describe(setting: Setting) -> str:
    names = {"T": "T", "A": "activation", "L": "lost_s"}
    return " ".join(f"{names[k]}={v:g}" for k, v in setting)


def _ours(kind: str, setting: Setting) -> Callable:
    threshold = dict(setting)["T"]
    default = TrackerConfig()
    if kind == "surveil":
        config = TrackerConfig(
            kind=kind,
            high_score=threshold,
            low_score=min(default.low_score, threshold),
            birth_score=min(1.0, threshold + BIRTH_MARGIN),
        )
    else:
        config = TrackerConfig(kind=kind)
    tracker = make_tracker(config, "bench")

    def step(xyxy, scores, now):
        if kind == "iou-v1":
            keep = scores >= threshold
            xyxy, scores = xyxy[keep], scores[keep]
        tracks = [
            t for t in tracker.update(Detections.from_arrays(xyxy, scores, np.zeros(len(scores))), now) if t.missed == 0
        ]
        return np.array([t.track_id for t in tracks], int), np.array([t.xyxy for t in tracks], np.float32).reshape(
            -1, 4
        )

    return step


def _package(kind: str, setting: Setting, frame_rate: float) -> Callable:
    import supervision as sv
    from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

    knobs = dict(setting)
    threshold, buffer = knobs["T"], round(30 * knobs["L"])  # lost_track_buffer: 30-fps frames, scaled by frame_rate
    if kind == "bytetrack":
        tracker = ByteTrackTracker(
            frame_rate=frame_rate,
            high_conf_det_threshold=threshold,
            track_activation_threshold=knobs["A"],
            lost_track_buffer=buffer,
        )
    elif kind == "ocsort":
        tracker = OCSORTTracker(frame_rate=frame_rate, high_conf_det_threshold=threshold, lost_track_buffer=buffer)
    else:
        tracker = SORTTracker(frame_rate=frame_rate, track_activation_threshold=threshold, lost_track_buffer=buffer)

    def step(xyxy, scores, now):
        if kind == "sort":  # no low-score stage: SORT would match every detection it is given
            keep = scores >= threshold
            xyxy, scores = xyxy[keep], scores[keep]
        given = sv.Detections(xyxy=xyxy.copy(), confidence=scores.copy(), class_id=np.zeros(len(scores), int))
        out = tracker.update(given, timestamp=now)
        confirmed = out.tracker_id >= 0 if out.tracker_id is not None else np.zeros(len(out), bool)
        return np.asarray(out.tracker_id[confirmed], int), np.asarray(out.xyxy[confirmed], np.float32).reshape(-1, 4)

    return step


def make_step(kind: str, setting: Setting, frame_rate: float) -> Callable:
    if kind in ("surveil", "iou-v1"):
        return _ours(kind, setting)
    return _package(kind, setting, frame_rate)


# --- scoring


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def run_one(task: tuple[str, Setting, Sequence, int]) -> tuple[str, Setting, str, int, float, float, int]:
    kind, setting, seq, k = task
    step = make_step(kind, setting, seq.fps / k)
    acc = mm.MOTAccumulator(auto_id=True)
    empty_box = np.zeros((0, 4), np.float32)
    for frame in range(1, seq.frames + 1, k):
        xyxy, scores = seq.dets.get(frame, (empty_box, np.zeros(0, np.float32)))
        ids, boxes = step(xyxy, scores, (frame - 1) / seq.fps)
        gt_ids, gt_boxes, counted = seq.gt.get(frame, (np.zeros(0, int), empty_box, np.zeros(0, bool)))
        ignored = gt_boxes[~counted]
        if len(ignored) and len(boxes):
            dont_care = (box_iou(boxes, ignored) >= 0.5).any(axis=1)
            ids, boxes = ids[~dont_care], boxes[~dont_care]
        distances = mm.distances.iou_matrix(_xywh(gt_boxes[counted]), _xywh(boxes), max_iou=0.5)
        acc.update(gt_ids[counted].tolist(), ids.tolist(), distances)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x")
    row = summary.loc["x"]
    return kind, setting, seq.name, k, float(row["mota"]), float(row["idf1"]), int(row["num_switches"])


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    sequences = [load_sequence(Path(args.data), name) for name in SEQUENCES]
    sweeps = {kind: settings(kind, args.thresholds) for kind in args.trackers}
    tasks = [(kind, st, seq, k) for kind in args.trackers for st in sweeps[kind] for seq in sequences for k in STEPS]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, tasks, chunksize=4))
    by_key = {(kind, st, name, k): (mota, idf1, sw) for kind, st, name, k, mota, idf1, sw in results}
    best = {}
    for kind in args.trackers:

        def quality(st, kind=kind):
            return (
                np.mean(
                    [by_key[kind, st, s.name, k][0] + by_key[kind, st, s.name, k][1] for s in sequences for k in STEPS]
                )
                / 2
            )

        ranked = sorted(sweeps[kind], key=quality, reverse=True)
        best[kind] = ranked[0]
        top = "; ".join(f"{describe(st)}: {quality(st):.3f}" for st in ranked[:3])
        print(f"{kind}: {len(ranked)} settings; best mean (MOTA+IDF1)/2: {top}")
    print()
    print(
        "| tracker | setting | step | "
        + " | ".join(f"{s.name} MOTA / IDF1 / IDsw" for s in sequences)
        + " | mean MOTA | mean IDF1 |"
    )
    print("|---|---|---|" + "---|" * len(sequences) + "---|---|")
    for k in STEPS:
        for kind in args.trackers:
            cells = [by_key[kind, best[kind], s.name, k] for s in sequences]
            text = " | ".join(f"{m:.3f} / {i:.3f} / {sw}" for m, i, sw in cells)
            means = np.mean([c[0] for c in cells]), np.mean([c[1] for c in cells])
            print(f"| {kind} | {describe(best[kind])} | {k} | {text} | {means[0]:.3f} | {means[1]:.3f} |")
    print(f"\n{len(tasks)} runs in {time.perf_counter() - started:.0f} s with {args.jobs} processes\n")
    for kind in args.trackers:
        for s in sequences:
            for k in STEPS:
                m, i, sw = by_key[kind, best[kind], s.name, k]
                print(f"tracker={kind} seq={s.name} step={k} MOTA={m:.3f} IDF1={i:.3f} IDsw={sw}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default="../shared/data/MOT15", help="MOT15 folder (relative to the repo root by default)"
    )
    parser.add_argument("--trackers", nargs="+", default=list(TRACKERS), choices=TRACKERS)
    parser.add_argument(
        "--thresholds", nargs="+", type=float, default=list(THRESHOLDS), help="score thresholds T swept (every tracker)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
