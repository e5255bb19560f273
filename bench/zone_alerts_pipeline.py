"""Zone-alert recall of the daemon's real pipeline on PETS-video cameras: one camera, then N at once.

    .venv/bin/python -m bench.zone_alerts_pipeline [--cameras 4] [--repeats 1] [--backend auto]

Issue 10, target 2: "Four PETS-video cameras at once on this machine: each >= 2 processed fps, and
zone-alert recall on one of them within 0.05 of the single-camera figure."

Each run is the daemon's pipeline (``surveil.service.pipeline.Pipeline`` as ``surveil bench`` runs it:
capture threads, frame board, detect thread, analysers, the JSON-lines sink; no MQTT) with the
detector of configs/demo.yaml (the shipped model at input 800; ``--backend`` overrides
``detector.backend``, default auto) and C file cameras, each playing the shipped clip
(configs/media/pets2009-s2l1.mp4, 795 frames) once at its own 10 fps (realtime, no loop), all with
the demo's zone_intrusion rules on lawn_entrance and north_path (the zones and rules
bench/zone_alerts_pets.py scores). A run ends when every camera has reached the end of the file
and each of its frames has been processed or dropped. Each repeat is a run with 1 camera, then one
with N; the detector is loaded once.

On the scored camera (cam1) the bench records which frames its analyser processed and every
incident start (frame, zone, alerted box). ``Frame.seq`` counts the frames read from 0, so the
PETS frame number is seq + 1 (frame n of the clip is frame n of the ground truth,
configs/media/README.md); every processed image is checked byte for byte against that frame of
the clip. Scoring is bench/zone_alerts_pets.py's ``visits()`` and ``score()`` (same truth, 4 s
tolerance) over the frames actually processed, whatever their spacing, twice: each start attributed
by its box at the start frame (IoU 0.5), and by its track in the frames that raised it (the person
the track's last ``min_frames`` matched boxes overlapped at IoU 0.5 most often; cam1's tracker
output is recorded for it).

Printed per run: cameras, processed fps per camera (min-max; frames processed over the time from
the start to the camera's end of file), cam1's processed frames, true visits, alerts, and recall,
duplicates and false alerts under each attribution; then, over the repeats, mean and range, and
recall(N cameras, cam1) - recall(1 camera) per repeat. The last line is machine-readable:
    zone-alerts-pipeline cameras=4 repeats=R min_fps=x recall_1=0.xx recall_n=0.xx delta=+0.xx
        track_recall_1=0.xx track_recall_n=0.xx track_delta=+0.xx track_worst_delta=+0.xx
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.zone_alerts_pets import (
    FPS,
    FRAMES,
    Score,
    Start,
    TrackBoxes,
    demo_camera,
    gt_frames,
    matched_boxes,
    score,
    visits,
)
from surveil.evaluation.surveillance import PETS_GT
from surveil.rules.base import FrameContext
from surveil.tools.bench import counter_total
from surveil.types import AlertUpdate
from surveil.video.clips import read_clip

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "configs/media/pets2009-s2l1.mp4"
MERGE_FRAMES = int(4 * FPS)  # as bench/zone_alerts_pets.py attributes starts


def frame_hash(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()


def clip_hashes(path: Path) -> list[bytes]:
    """The hash of every decoded frame of ``path``, in order (index = seq)."""
    return [frame_hash(frame.image) for frame in read_clip(path)]


@dataclass
class Recorder:
    """One analyser's ``on_step``: the PETS frame numbers it processed, the incident starts it emitted and
    the boxes of the tracks it matched, frame by frame."""

    hashes: list[bytes]  # of the clip's frames, by seq
    frames: list[int] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    tracks: TrackBoxes = field(default_factory=dict)  # the tracker's matched boxes, by PETS frame number
    mismatched: list[int] = field(default_factory=list)  # seqs whose image is not that frame of the clip

    def __call__(self, ctx: FrameContext, updates: list[AlertUpdate]) -> None:
        if ctx.seq is not None:  # a frame, not a status tick (ticks pass through: their updates count)
            if ctx.seq >= len(self.hashes) or ctx.image is None or frame_hash(ctx.image) != self.hashes[ctx.seq]:
                self.mismatched.append(ctx.seq)
            self.frames.append(ctx.seq + 1)
            self.tracks[self.frames[-1]] = matched_boxes(ctx)
        for update in updates:
            if update.phase == "start" and update.zone and update.subjects:
                number = ctx.seq + 1 if ctx.seq is not None else (self.frames[-1] if self.frames else 1)
                subject = update.subjects[0]
                self.starts.append(Start(number, update.zone, np.array(subject.xyxy, np.float32), subject.track_id))


@dataclass
class Run:
    cameras: int
    fps: dict[str, float]  # processed frames per second of each camera
    processed: int  # cam1's processed frames
    result: Score  # starts attributed by their box at the start frame
    by_track: Score  # starts attributed by their track over the merge window before them
    mismatched: int
    complete: bool  # every camera reached its end of file and every frame was processed or dropped

    @property
    def fps_range(self) -> tuple[float, float]:
        values = list(self.fps.values()) or [0.0]
        return min(values), max(values)


def pipeline_config(base, camera, cameras: int, workdir: Path):
    cams = [
        camera.model_copy(update={"name": f"cam{i + 1}", "url": str(CLIP), "realtime": True, "loop": False})
        for i in range(cameras)
    ]
    return base.model_copy(
        update={
            "cameras": cams,
            "mqtt": base.mqtt.model_copy(update={"enabled": False}),
            "alerts": base.alerts.model_copy(update={"jsonl_path": str(workdir / f"alerts-{cameras}.jsonl")}),
            "state_dir": str(workdir),
        }
    )


def run_pipeline(config, detector, hashes: list[bytes], timeout_s: float) -> tuple[Recorder, dict[str, float], bool]:
    """Plays every camera's clip to its end: (cam1's recorder, processed fps per camera, complete)."""
    from surveil.service.metrics import Metrics
    from surveil.service.pipeline import Pipeline, build_analyzers

    metrics = Metrics()
    analyzers = build_analyzers(config, detector, metrics)
    recorder = Recorder(hashes)
    analyzers["cam1"].on_step = recorder
    pipeline = Pipeline(config, metrics, detector=detector, analyzers=analyzers)
    names = [c.name for c in config.enabled_cameras]
    started = time.monotonic()
    ended: dict[str, float] = {}
    complete, last_tick = False, 0.0
    pipeline.start()
    try:
        while time.monotonic() - started < timeout_s:
            now = time.monotonic()
            if now - last_tick >= 1.0:  # as the daemon: stall checks, status ticks, gauges
                pipeline.housekeeping(now)
                last_tick = now
            for view in pipeline.camera_views():
                if view.state == "down" and view.reason == "end of file":
                    ended.setdefault(view.name, now)
            if len(ended) == len(names) and _drained(metrics.registry, names):
                complete = True
                break
            time.sleep(0.1)
    finally:
        pipeline.stop()
    processed = counter_total(metrics.registry, "surveil_frames_processed_total")
    fps = {name: processed.get(name, 0.0) / (ended.get(name, time.monotonic()) - started) for name in names}
    return recorder, fps, complete


def _drained(registry, names: list[str]) -> bool:
    """Every frame read was processed or dropped (overwritten on the frame board)."""
    captured = counter_total(registry, "surveil_frames_captured_total")
    done = counter_total(registry, "surveil_frames_processed_total")
    dropped = counter_total(registry, "surveil_frames_dropped_total")
    return all(done.get(n, 0) + dropped.get(n, 0) >= captured.get(n, 0) > 0 for n in names)


def one_run(base, camera, detector, cameras: int, gt, hashes: list[bytes]) -> Run:
    with tempfile.TemporaryDirectory(prefix="zone-alerts-pipeline-") as tmp:
        config = pipeline_config(base, camera, cameras, Path(tmp))
        recorder, fps, complete = run_pipeline(config, detector, hashes, timeout_s=FRAMES / FPS + 120)
    truth = visits(gt, recorder.frames, camera)
    result = score(truth, recorder.starts, gt, merge_frames=MERGE_FRAMES)
    by_track = score(
        truth,
        recorder.starts,
        gt,
        merge_frames=MERGE_FRAMES,
        tracks=recorder.tracks,
        min_frames=camera.rules[0].min_frames,
    )
    return Run(cameras, fps, len(recorder.frames), result, by_track, len(recorder.mismatched), complete)


def print_run(index: int, run: Run) -> None:
    low, high = run.fps_range
    s = run.result
    note = "" if run.complete else " (stopped at the time limit)"
    check = "each = clip frame seq+1" if run.mismatched == 0 else f"{run.mismatched} NOT equal to clip frame seq+1"
    t = run.by_track
    print(
        f"| {index} | {run.cameras} | {low:.2f} - {high:.2f} | {run.processed} ({check}) | {s.visits} | {s.alerts} | "
        f"{s.recall:.3f} | {s.duplicates} | {s.false} | {t.recall:.3f} | {t.duplicates} | {t.false} |{note}",
        flush=True,
    )


def stat(values: list[float], fmt: str) -> str:
    return f"{np.mean(values):{fmt}} ({np.min(values):{fmt}} to {np.max(values):{fmt}})"


def report(pairs: list[tuple[Run, Run]], cameras: int) -> None:
    singles, multis = [p[0] for p in pairs], [p[1] for p in pairs]
    print(f"\nOver {len(pairs)} repeat(s): mean (range)")
    for label, runs in (("1 camera", singles), (f"{cameras} cameras, cam1", multis)):
        print(f"- {label}: processed fps per camera, lowest {stat([r.fps_range[0] for r in runs], '.2f')}")
        for name, scores in (("start box", [r.result for r in runs]), ("track", [r.by_track for r in runs])):
            print(
                f"  - attributed by {name}: recall {stat([s.recall for s in scores], '.3f')}; "
                f"duplicates {stat([s.duplicates for s in scores], '.1f')}; false {stat([s.false for s in scores], '.1f')}"
            )
    deltas = {
        name: [pick(m).recall - pick(s).recall for s, m in pairs]
        for name, pick in (("box", lambda r: r.result), ("track", lambda r: r.by_track))
    }
    for name, values in deltas.items():
        print(f"- recall({cameras} cameras, cam1) - recall(1 camera), attributed by {name}: {stat(values, '+.3f')}")
    print(
        f"zone-alerts-pipeline cameras={cameras} repeats={len(pairs)} min_fps={min(r.fps_range[0] for r in multis):.2f} "
        f"recall_1={np.mean([r.result.recall for r in singles]):.2f} recall_n={np.mean([r.result.recall for r in multis]):.2f} "
        f"delta={np.mean(deltas['box']):+.2f} track_recall_1={np.mean([r.by_track.recall for r in singles]):.2f} "
        f"track_recall_n={np.mean([r.by_track.recall for r in multis]):.2f} track_delta={np.mean(deltas['track']):+.2f} "
        f"track_worst_delta={min(deltas['track']):+.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--cameras", type=int, default=4, help="cameras in the second run of each repeat (default 4)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (1 camera, then N); about 2 x 85 s each")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["torch", "onnxruntime", "openvino", "auto"],
        help="detector.backend (default auto)",
    )
    args = parser.parse_args()
    if not (args.shared_data / PETS_GT).is_file():
        print(
            f"zone_alerts_pipeline: the PETS09-S2L1 ground truth is missing: {args.shared_data / PETS_GT} "
            f"(the project's shared data; --shared-data DIR)",
            file=sys.stderr,
        )
        return 2
    if args.cameras < 1 or args.repeats < 1:
        parser.error("--cameras and --repeats must be at least 1")
    from surveil.config import load_config
    from surveil.detection.factory import resolve_backend
    from surveil.service.pipeline import load_detector

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("surveil").setLevel(logging.WARNING)  # one INFO line per alert would bury the table
    logging.getLogger("surveil.video.source").setLevel(
        logging.ERROR
    )  # "down: end of file", once per camera, is how a run ends
    base = load_config(REPO / "configs/demo.yaml", environ={})
    base = base.model_copy(update={"detector": base.detector.model_copy(update={"backend": args.backend})})
    camera = demo_camera(False)
    gt, hashes = gt_frames(args.shared_data), clip_hashes(CLIP)
    detector = load_detector(base)  # ONNX exports cached in <state_dir>/model-cache, as the daemon does
    d = base.detector
    print(
        f"detector {Path(d.weights).name} on {resolve_backend(d)}, input {d.min_size}, batch {d.batch_size}; clip {CLIP.name} "
        f"({len(hashes)} frames at {FPS:g} fps, played once in real time); zones {', '.join(z.name for z in camera.zones)}"
    )
    print(
        "| run | cameras | processed fps per camera (min - max) | cam1 frames processed | true visits | alerts "
        "| recall (start box) | duplicates | false | recall (track) | duplicates | false |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    pairs = []
    for repeat in range(args.repeats):
        single = one_run(base, camera, detector, 1, gt, hashes)
        print_run(2 * repeat + 1, single)
        multi = one_run(base, camera, detector, args.cameras, gt, hashes)
        print_run(2 * repeat + 2, multi)
        pairs.append((single, multi))
    report(pairs, args.cameras)
    return 0


if __name__ == "__main__":
    sys.exit(main())
