"""Trackers on MOT15 public detections, every frame and every 3rd and 5th frame, scored with motmetrics.

    .venv/bin/python -m bench.track_mot [--data ../shared/data/MOT15] [--jobs 2]
    .venv/bin/python -m bench.track_mot --trackers surveil surveil+reid --thresholds 0.3   # issue 17 before/after
    .venv/bin/python -m bench.track_mot --pets-shipped    # identity switches on the shipped model's detections

Every sampling phase (issue 17): at step k the tracker is run k times, on frames 1+o, 1+o+k, ...
for o = 0..k-1, and each figure is the MEAN over phases with the RANGE (min-max) beside it.

`surveil+reid` is `surveil` (the same settings) given each public detection's appearance embedding,
computed once by the shipped detector's ``TorchDetector.embed_boxes`` on the sequence's images
(network input ``--embed-min-size``, 360 by default: PETS09-S2L1's video is 480x360, and the CPU is
shared) and cached under var/cache/ (keyed by the checkpoint's SHA-256 and that size). TUD-Stadtmitte has no images in the
shared data: there `surveil+reid` gets no embeddings and is `surveil` (motion only). Tracker update
time (ms per processed frame, the update call only) is printed per tracker: the machine is shared,
so the ratio between trackers measured in the same run is the figure, with the `uptime` load.

`--pets-shipped`: PETS09-S2L1 with the shipped model's own detections (bench/pets_detections.py's
cache, with embeddings, per-class operating thresholds as the daemon uses them), scored against the
MOT15 ground truth scaled to the 480x360 video: identity switches at steps 1 and 5 (every phase),
re-identification off (`reid_window_s` 0, `appearance_weight` 0, no embeddings) and on (defaults),
and the tracker's update CPU time per frame (process time, least disturbed by the machine's load)
off and on measured in turn for ``--rounds`` rounds.

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
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.images import read_bgr

# motmetrics 1.4.0 calls np.asfarray, which NumPy 2 removed; put it back before importing motmetrics
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]

import motmetrics as mm

from surveil.config import TrackerConfig
from surveil.detection.embedding import DEFAULT_KIND, EMBEDDING_KINDS
from surveil.geometry import box_iou
from surveil.tracking import SeesFrameEdges, make_tracker
from surveil.types import Detections

SEQUENCES = ("PETS09-S2L1", "TUD-Stadtmitte", "TUD-Campus", "PETS09-S3-MF1")
RAW_SCORE_SEQUENCES = {"PETS09-S3-MF1"}  # scores already 0-1; the others are ACF scores / 100
STEPS = (1, 3, 5)
TRACKERS = ("surveil", "surveil+reid", "bytetrack", "ocsort", "sort", "iou-v1")
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BIRTH_MARGIN = 0.1
LOST_S = (1.0, 2.0, 3.0)  # lost-track buffers swept for the package's trackers, in seconds
DEFAULT_FPS = 7.0
ISA_ENV: dict[str, dict[str, str]] = {  # as bench.rules_phases_pets: what numpy (X86_V3) and OpenBLAS (Haswell) may use
    "native": {},
    "avx2": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"},
}
REPO = Path(__file__).resolve().parents[1]
TRACKER_SETTINGS: dict[str, float] = {}  # --set: tracker options of surveil+reid (set before the workers fork)


@dataclass(frozen=True)
class Sequence:
    name: str
    fps: float
    frames: int
    dets: dict[int, tuple[np.ndarray, np.ndarray]]  # frame -> (xyxy (N, 4), score (N,))
    gt: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # frame -> (ids, xyxy, counted (bool))
    emb: dict[int, np.ndarray] | None = None  # frame -> (N, D) unit appearance of the public detections
    size: tuple[int, int] | None = None  # (width, height) of the pictures, when known


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
    info = sequence_info(folder)
    fps = float(info.get("framerate", DEFAULT_FPS))
    frames = int(info.get("seqlength", max(det[:, 0].max(), gt[:, 0].max())))
    scores = det[:, 6] if name in RAW_SCORE_SEQUENCES else det[:, 6] / 100.0
    scores = np.clip(scores, 0.0, 1.0).astype(np.float32)
    dets = {int(f): (_xyxy(det[det[:, 0] == f]), scores[det[:, 0] == f]) for f in np.unique(det[:, 0])}
    gts = {
        int(f): (gt[gt[:, 0] == f][:, 1].astype(int), _xyxy(gt[gt[:, 0] == f]), gt[gt[:, 0] == f][:, 6] != 0)
        for f in np.unique(gt[:, 0])
    }
    return Sequence(name, fps, frames, dets, gts, size=picture_size(folder, info))


def sequence_info(folder: Path) -> dict[str, str]:
    """The ``[Sequence]`` section of the sequence's seqinfo.ini, keys lower-cased (configparser's way);
    empty when there is none."""
    path = folder / "seqinfo.ini"
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    parser.read(path)
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


def picture_size(folder: Path, info: dict[str, str]) -> tuple[int, int] | None:
    """(width, height) from seqinfo.ini (``info``), else from the sequence's first image; None when neither exists."""
    if "imwidth" in info and "imheight" in info:
        return int(info["imwidth"]), int(info["imheight"])
    for images in (folder / "img1", folder / "img"):
        first = min(images.glob("*.jpg"), default=None) if images.is_dir() else None
        if first is not None:
            import cv2

            image = cv2.imread(str(first))
            if image is not None:
                return int(image.shape[1]), int(image.shape[0])
    return None


# --- trackers: each factory returns step(xyxy, scores, now) -> (ids, xyxy) of the tracks matched now

Setting = tuple[tuple[str, float], ...]  # (("T", 0.3), ("A", 0.4), ("L", 1.0)): one point of a tracker's sweep


def settings(kind: str, thresholds: list[float]) -> list[Setting]:
    """The sweep of one tracker: T (score threshold), A (ByteTrack's activation), L (lost buffer, s)."""
    if kind in ("surveil", "surveil+reid", "iou-v1"):
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


def surveil_config(threshold: float, options: dict[str, float]) -> TrackerConfig:
    """The `surveil` tracker at score threshold T: the defaults' relation of high, birth and low scores,
    each of which ``options`` may override."""
    derived = {
        "high_score": threshold,
        "low_score": min(TrackerConfig().low_score, threshold),
        "birth_score": min(1.0, threshold + BIRTH_MARGIN),
    }
    return TrackerConfig.model_validate({"kind": "surveil", **derived, **options})  # an option given with --set wins


def _ours(
    kind: str, setting: Setting, size: tuple[int, int] | None = None, options: dict[str, float] | None = None
) -> Callable:
    """Our tracker at ``setting``; ``options`` (tracker options) default to ``--set``'s for surveil+reid only."""
    threshold = dict(setting)["T"]
    if options is None:
        options = TRACKER_SETTINGS if kind == "surveil+reid" else {}
    if kind in ("surveil", "surveil+reid"):
        config = surveil_config(threshold, options)
    else:
        config = TrackerConfig.model_validate({"kind": kind})
    tracker = make_tracker(config, "bench")
    if size is not None and isinstance(tracker, SeesFrameEdges):  # as the daemon's analyser tells it
        tracker.set_frame_size(*size)

    def step(xyxy, scores, now, embedding=None):
        if kind == "iou-v1":
            keep = scores >= threshold
            xyxy, scores = xyxy[keep], scores[keep]
        embedding = embedding if kind == "surveil+reid" else None
        given = Detections.from_arrays(xyxy, scores, np.zeros(len(scores)), embedding)
        started = time.perf_counter()
        out = tracker.update(given, now)
        step.seconds += time.perf_counter() - started  # type: ignore[attr-defined]
        tracks = [t for t in out if t.missed == 0]
        return np.array([t.track_id for t in tracks], int), np.array([t.xyxy for t in tracks], np.float32).reshape(
            -1, 4
        )

    step.seconds = 0.0  # type: ignore[attr-defined]
    return step


def _package(kind: str, setting: Setting, frame_rate: float) -> Callable:
    import supervision as sv
    from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

    knobs = dict(setting)
    tracker: Any
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

    def step(xyxy, scores, now, embedding=None):
        if kind == "sort":  # no low-score stage: SORT would match every detection it is given
            keep = scores >= threshold
            xyxy, scores = xyxy[keep], scores[keep]
        given = sv.Detections(xyxy=xyxy.copy(), confidence=scores.copy(), class_id=np.zeros(len(scores), int))
        started = time.perf_counter()
        out = tracker.update(given, timestamp=now)
        step.seconds += time.perf_counter() - started  # type: ignore[attr-defined]
        ids = out.tracker_id if out.tracker_id is not None else np.full(len(out), -1)
        confirmed = ids >= 0
        return np.asarray(ids[confirmed], int), np.asarray(out.xyxy[confirmed], np.float32).reshape(-1, 4)

    step.seconds = 0.0  # type: ignore[attr-defined]
    return step


def make_step(kind: str, setting: Setting, frame_rate: float, size: tuple[int, int] | None = None) -> Callable:
    if kind in ("surveil", "surveil+reid", "iou-v1"):
        return _ours(kind, setting, size)
    return _package(kind, setting, frame_rate)


# --- scoring


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


Result = tuple[float, float, float, float]  # MOTA, IDF1, ID switches, tracker ms per processed frame


Output = tuple[int, np.ndarray, np.ndarray]  # (frame, ids (M,), xyxy (M, 4)): what a tracker returned for one frame
EMPTY_BOX = np.zeros((0, 4), np.float32)


def run_one(task: tuple[str, Setting, Sequence, int, int]) -> tuple[str, Setting, str, int, int, Result]:
    kind, setting, seq, k, offset = task
    step = make_step(kind, setting, seq.fps / k, seq.size)
    outputs = track(seq, step, k, offset)
    mota, idf1, switches = score(seq, outputs)
    ms = 1000 * step.seconds / max(len(outputs), 1)  # type: ignore[attr-defined]
    return kind, setting, seq.name, k, offset, (mota, idf1, switches, ms)


def track(seq: Sequence, step: Callable, k: int, offset: int) -> list[Output]:
    """Feed frames 1 + offset, 1 + offset + k, ... to ``step``; what it returned, frame by frame."""
    outputs = []
    for frame in range(1 + offset, seq.frames + 1, k):
        xyxy, scores = seq.dets.get(frame, (EMPTY_BOX, np.zeros(0, np.float32)))
        embedding = None if seq.emb is None else seq.emb.get(frame)
        ids, boxes = step(xyxy, scores, (frame - 1) / seq.fps, embedding)
        outputs.append((frame, ids, boxes))
    return outputs


def score(seq: Sequence, outputs: list[Output]) -> tuple[float, float, float]:
    """MOTA, IDF1 and ID switches of ``outputs`` against the ground truth of the same frames."""
    acc = mm.MOTAccumulator(auto_id=True)
    for frame, ids, boxes in outputs:
        gt_ids, gt_boxes, counted = seq.gt.get(frame, (np.zeros(0, int), EMPTY_BOX, np.zeros(0, bool)))
        ignored = gt_boxes[~counted]
        if len(ignored) and len(boxes):
            dont_care = (box_iou(boxes, ignored) >= 0.5).any(axis=1)
            ids, boxes = ids[~dont_care], boxes[~dont_care]
        distances = mm.distances.iou_matrix(_xywh(gt_boxes[counted]), _xywh(boxes), max_iou=0.5)
        acc.update(gt_ids[counted].tolist(), ids.tolist(), distances)
    row = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x").loc["x"]
    return float(row["mota"]), float(row["idf1"]), float(row["num_switches"])


def _phases(values: list[float], digits: int = 3) -> str:
    """Mean over phases and the range, e.g. ``0.612 (0.598-0.630)``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def with_embeddings(seq: Sequence, root: Path, weights: Path, min_size: int, kind: str) -> Sequence:
    """``seq`` with its public detections' appearance of ``kind`` (cached), or as is where there are no images."""
    images = _image_source(root, seq.name)
    if images is None:
        return seq
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = REPO / "var" / "cache" / f"mot15-emb-{seq.name}-{digest}-{min_size}-{kind}.npz"
    if not path.exists():
        _embed(seq, images, weights, min_size, path, kind)
    data = np.load(path)
    return replace(seq, emb={int(f): data[f"f{f}"] for f in seq.dets if f"f{f}" in data})


def _image_source(root: Path, name: str) -> Callable[[int], tuple[np.ndarray, float]] | None:
    """frame number -> (BGR image, its scale from the detections' pixels); None when there are no images."""

    folder = root / name
    for sub, pattern in (("img1", "{:06d}.jpg"), ("img", "frame_{:04d}.jpg")):
        if (folder / sub).is_dir():
            images = folder / sub

            def from_file(n: int, images: Path = images, pattern: str = pattern) -> tuple[np.ndarray, float]:
                return read_bgr(images / pattern.format(n)), 1.0

            return from_file
    if name == "PETS09-S2L1":  # the video is the same sequence at 480x360 (boxes x 0.625)
        from surveil.evaluation.surveillance import PETS_VIDEO
        from surveil.video.clips import read_clip

        frames = {f.index + 1: f.image for f in read_clip(root.parent / PETS_VIDEO)}
        return lambda n: (frames[n], 480 / 768)
    return None


def _embed(seq: Sequence, images: Callable, weights: Path, min_size: int, path: Path, kind: str) -> None:
    from surveil.config import DetectorConfig
    from surveil.detection.torch_detector import TorchDetector

    config = DetectorConfig(weights=str(weights), device="cpu", threads=2, min_size=min_size)
    detector = TorchDetector(config, embedding_kind=kind)
    rows, started = {}, time.monotonic()
    for i, (frame, (xyxy, _)) in enumerate(sorted(seq.dets.items())):
        image, scale = images(frame)
        rows[f"f{frame}"] = detector.embed_boxes([image], [xyxy * scale])[0]
        if i % 100 == 99:
            print(
                f"  {seq.name}: embedded {i + 1} frames, {(time.monotonic() - started) / (i + 1):.2f} s/frame",
                flush=True,
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **rows)  # type: ignore[arg-type]  # numpy's stub reads **rows as allow_pickle


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    sequences = [load_sequence(Path(args.data), name) for name in SEQUENCES]
    if "surveil+reid" in args.trackers:
        sequences = [
            with_embeddings(s, Path(args.data), Path(args.weights), args.embed_min_size, args.embedding_kind)
            for s in sequences
        ]
    TRACKER_SETTINGS.update(_overrides(args.set))
    sweeps = {kind: settings(kind, args.thresholds) for kind in args.trackers}
    tasks = [
        (kind, st, seq, k, o)
        for kind in args.trackers
        for st in sweeps[kind]
        for seq in sequences
        for k in STEPS
        for o in range(k)
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, tasks, chunksize=4))
    runs: dict[tuple, list[Result]] = {}
    for kind, st, name, k, _, result in results:
        runs.setdefault((kind, st, name, k), []).append(result)
    best = {kind: _best(kind, sweeps[kind], runs, sequences) for kind in args.trackers}
    _table(args.trackers, best, runs, sequences)
    print(f"\n{len(tasks)} runs in {time.perf_counter() - started:.0f} s with {args.jobs} processes; {_machine()}\n")
    for kind in args.trackers:
        for s in sequences:
            for k in STEPS:
                cell = runs[kind, best[kind], s.name, k]
                m, i, sw = (float(np.mean([c[j] for c in cell])) for j in range(3))
                print(
                    f"tracker={kind} seq={s.name} step={k} MOTA={m:.3f} IDF1={i:.3f} IDsw={sw:.1f} phases={len(cell)}"
                )


def _best(kind: str, sweep: list[Setting], runs: dict, sequences: list[Sequence]) -> Setting:
    def quality(st: Setting) -> float:
        cells = [c for s in sequences for k in STEPS for c in runs[kind, st, s.name, k]]
        return float(np.mean([c[0] + c[1] for c in cells]) / 2)

    ranked = sorted(sweep, key=quality, reverse=True)
    top = "; ".join(f"{describe(st)}: {quality(st):.3f}" for st in ranked[:3])
    print(f"{kind}: {len(ranked)} settings; best mean (MOTA+IDF1)/2 over phases: {top}")
    return ranked[0]


def _table(trackers: list[str], best: dict, runs: dict, sequences: list[Sequence]) -> None:
    """MOTA / IDF1 / IDsw per sequence and the means over sequences: mean over phases (range)."""
    print("\nEach cell: mean over every sampling phase (range over phases).\n")
    print(
        "| tracker | setting | step | "
        + " | ".join(f"{s.name} IDF1 / IDsw" for s in sequences)
        + " | mean MOTA | mean IDF1 | update ms/frame |"
    )
    print("|---|---|---|" + "---|" * len(sequences) + "---|---|---|")
    for k in STEPS:
        for kind in trackers:
            cells = [runs[kind, best[kind], s.name, k] for s in sequences]
            text = " | ".join(f"{_phases([c[1] for c in cell])} / {_phases([c[2] for c in cell], 1)}" for cell in cells)
            mota = [float(np.mean([cell[o][0] for cell in cells])) for o in range(k)]
            idf1 = [float(np.mean([cell[o][1] for cell in cells])) for o in range(k)]
            ms = float(np.mean([c[3] for cell in cells for c in cell]))
            print(f"| {kind} | {describe(best[kind])} | {k} | {text} | {_phases(mota)} | {_phases(idf1)} | {ms:.2f} |")


def _machine() -> str:
    from surveil.detection.isa import cpu_flags, flags_summary

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    limit = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    limited = f"numpy limited (NPY_DISABLE_CPU_FEATURES={limit})" if limit else "numpy native"
    return f"CPU {flags_summary(cpu_flags())}; {limited}; shared machine, uptime: {load}"


def pets_shipped(args: argparse.Namespace) -> None:
    """Identity switches on PETS09-S2L1 with the shipped model's detections, re-ID off and on."""
    from bench.pets_detections import pets_detections
    from surveil.evaluation.surveillance import PETS_GT, pets_frame_boxes, read_mot_gt

    shared = Path(args.data).parent
    dets, thresholds, _ = pets_detections(
        Path(args.weights), shared, min_size=args.pets_min_size, embedding_kind=args.embedding_kind
    )
    rows = read_mot_gt(shared / PETS_GT)
    off = TrackerConfig(reid_window_s=0, appearance_weight=0, appearance_veto=0)
    on = TrackerConfig.model_validate(_overrides(args.set))
    print(
        "| re-ID | step | IDsw mean (range) | per phase | IDF1 | MOTA | update ms/frame |\n|---|---|---|---|---|---|---|"
    )
    for k in (1, 5):
        for label, config in (("off", off), ("on", on)):
            res = [_pets_run(dets, thresholds, rows, config, label == "on", k, o, pets_frame_boxes) for o in range(k)]
            sw = [r[2] for r in res]
            print(
                f"| {label} | {k} | {_phases(sw, 1)} | {', '.join(f'{x:.0f}' for x in sw)} | "
                f"{_phases([r[1] for r in res])} | {_phases([r[0] for r in res])} | "
                f"{np.mean([r[3] for r in res]):.2f} |"
            )
    _timing(dets, thresholds, rows, off, on, args.rounds, args.before)
    print(f"\n{_machine()}")


def _timing(dets, thresholds, rows, off: TrackerConfig, on: TrackerConfig, rounds: int, before: str) -> None:
    """Tracker update CPU ms per frame (every frame, phase 0), measured in turn per round: the tracker
    of commit ``before`` (today's, given the same detections without embeddings), re-ID off and ``on``."""
    from surveil.evaluation.surveillance import pets_frame_boxes

    old = _old_tracker(before)
    times: dict[str, list[float]] = {"before": [], "off": [], "on": []}
    for _ in range(rounds):
        for label, config in (("before", off), ("off", off), ("on", on)):
            factory = old if label == "before" else None
            result = _pets_run(dets, thresholds, rows, config, label == "on", 1, 0, pets_frame_boxes, factory)
            times[label].append(result[3])
    print(f"\ntracker update CPU ms per frame, every frame, {rounds} rounds in turn (mean (range)):")
    for label in times:
        ratio = [b / a for a, b in zip(times["before"], times[label])]
        print(f"  {label:6s} {_phases(times[label], 2)} ms; / before per round {_phases(ratio, 2)}")


def _old_tracker(commit: str) -> Callable:
    """A factory of the ``surveil`` ByteTracker as of ``commit`` (its module loaded from git)."""
    import importlib.util
    import tempfile

    source = subprocess.run(
        ["git", "show", f"{commit}:surveil/tracking/bytetrack.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "bytetrack_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("bytetrack_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return lambda: module.ByteTracker("pets")


def _pets_run(dets, thresholds, rows, config, reid, k, offset, frame_boxes, factory=None) -> Result:
    tracker = make_tracker(config, "pets") if factory is None else factory()
    if isinstance(tracker, SeesFrameEdges):
        from bench.zone_alerts_pets import H, W

        tracker.set_frame_size(W, H)  # the video the detections were made on
    acc = mm.MOTAccumulator(auto_id=True)
    seconds, frames = 0.0, range(1 + offset, len(dets) + 1, k)
    for n in frames:
        d = dets[n] if reid else Detections.from_arrays(dets[n].xyxy, dets[n].confidence, dets[n].class_id)
        confident = d.confidence >= thresholds[np.clip(d.class_id, 0, len(thresholds) - 1)]
        started = time.process_time()  # CPU time: on a busy shared machine wall time mostly measures waiting
        tracks = [t for t in tracker.update(d, (n - 1) / 10.0, confident) if t.missed == 0]
        seconds += time.process_time() - started
        boxes, ids, scored = frame_boxes(rows, n)
        mine = np.array([t.xyxy for t in tracks], np.float32).reshape(-1, 4)
        distances = mm.distances.iou_matrix(_xywh(boxes[scored]), _xywh(mine), max_iou=0.5)
        acc.update(ids[scored].tolist(), [t.track_id for t in tracks], distances)
    row = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x").loc["x"]
    return float(row["mota"]), float(row["idf1"]), float(row["num_switches"]), 1000 * seconds / len(frames)


def _overrides(pairs: list[str]) -> dict[str, float]:
    """``--set`` KEY=VALUE pairs as tracker options (validated by TrackerConfig); exit 2 on a bad one."""
    from pydantic import ValidationError

    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or key not in TrackerConfig.model_fields:
                raise ValueError("not a tracker option")
            settings[key] = float(value)
            TrackerConfig.model_validate(settings)
        except ValidationError as exc:
            _bad_setting(pair, exc.errors()[0]["msg"])
        except ValueError as exc:
            _bad_setting(pair, str(exc))
    return settings


def _bad_setting(pair: str, why: str) -> None:
    print(f"--set {pair!r}: expected OPTION=VALUE, a tracker option and its value ({why})", file=sys.stderr)
    raise SystemExit(2)


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
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"), help="detector (embeddings)")
    parser.add_argument(
        "--embed-min-size", type=int, default=360, help="surveil+reid: detector input size for the embeddings"
    )
    parser.add_argument("--pets-shipped", action="store_true", help="only the S2L1 shipped-detector switch table")
    parser.add_argument(
        "--pets-min-size", type=int, default=800, help="--pets-shipped: detector input (360 for the demo's s8 model)"
    )
    parser.add_argument("--before", default="9eb0a0c", help="--pets-shipped: commit of today's tracker (timing)")
    parser.add_argument("--rounds", type=int, default=5, help="--pets-shipped: timing rounds, off and on in turn")
    parser.add_argument("--isa", choices=sorted(ISA_ENV), default="native", help="avx2: numpy/OpenBLAS limited")
    parser.add_argument(
        "--embedding-kind",
        default=DEFAULT_KIND,
        choices=EMBEDDING_KINDS,
        help="surveil+reid and --pets-shipped: the detections' embedding kind",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="a tracker option of surveil+reid and of --pets-shipped's re-ID on row (repeatable)",
    )
    return parser


def _limit_isa(isa: str) -> None:
    """Re-run this process with numpy and OpenBLAS limited to ``isa`` (before they load their kernels)."""
    wanted = ISA_ENV[isa]
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    os.execve(sys.executable, [sys.executable, "-m", "bench.track_mot", *sys.argv[1:]], {**os.environ, **wanted})


if __name__ == "__main__":
    arguments = get_args_parser().parse_args()
    _limit_isa(arguments.isa)
    pets_shipped(arguments) if arguments.pets_shipped else main(arguments)
