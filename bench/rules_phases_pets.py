"""Lines, zones and loitering on PETS09-S2L1 over every sampling phase, before and after, in one run.

    .venv/bin/python -m bench.rules_phases_pets [--before fc864a5] [--steps 5 2 1] [--no-model] [--isa avx2]
        [--config my-tracker.yaml]

For each processed rate (``--steps``: every 5th frame = 2 fps, every 2nd = 5 fps, every frame =
10 fps) and each sampling phase (frames 1, 6, 11, ...; 2, 7, 12, ...), the daemon's own analyser
(tracker, rules, incident book) runs on two detectors: the ground-truth boxes themselves and the
shipped model's cached raw detections (bench/pets_detections.py; the demo's
models/pedestrian-mnv2-s8.pt at input 360). Every figure is the mean over the phases with its range.
``--before REV`` runs the same measurement a second time with the ``surveil`` package of that commit
(extracted with ``git archive`` into /tmp; this bench and its scoring stay the current ones), so
the before/after columns come from one run on one machine.

Geometry: the demo's (configs/demo.yaml) and our own, written down here before anything was
measured (not moved after): three more lines, two of them ending at the frame border, one more
intrusion zone and two loitering areas with an 8-s dwell.

The last row of each table is the analyser's own time (tracker, every rule scored here, incident
book; no detector) in ms per processed frame, before and after measured in turn ``--rounds`` times
on this shared machine, the least of the rounds per phase: a ratio to read with the load printed
beside it, not a speed figure.

Truth, from the ground-truth tracks on the same processed frames:
- line crossings: per person, consecutive processed feet positions straddle the segment;
- zone intrusions: bench/zone_alerts_pets.py's visits (its recall, duplicates, false alerts);
- TUD-Campus (MOT15, close-up, 25 fps, exact boxes; not PETS): a zone over the whole picture;
  every incident start per phase at every 1st, 2nd, 5th frame: two people who walk in together
  must be two incidents, no person twice.
- loitering: the zone visits (as for intrusions, with the loitering rule's ``min_frames`` and
  ``exit_frames``; a return is a new visit, as the rule's dwell clock restarts) that last ``dwell_s`` from the first frame inside to the
  last; a start is attributed to the person its box overlaps best (IoU >= 0.5) and to that
  person's stay; found = stays with a start, duplicates = further starts for a stay, false = the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OWN_LINES = {  # name: (a, b), relative; drawn before measuring
    "south_edge": ((0.3, 0.55), (0.3, 1.0)),  # ends at the bottom border
    "east_edge": ((0.7, 0.5), (1.0, 0.5)),  # ends at the right border
    "diagonal": ((0.2, 0.3), (0.55, 0.6)),
}
OWN_ZONES = {
    "west_strip": [[0.0, 0.3], [0.25, 0.3], [0.25, 0.7], [0.0, 0.7]],
    "plaza_centre": [[0.3, 0.4], [0.7, 0.4], [0.7, 0.8], [0.3, 0.8]],
    "east_side": [[0.6, 0.25], [1.0, 0.25], [1.0, 0.75], [0.6, 0.75]],
}
INTRUSION_ZONES = ("lawn_entrance", "north_path", "west_strip")
LOITERING = {
    "east-loitering": ("east_side", 20.0),
    "centre-loiter8": ("plaza_centre", 8.0),
    "east-loiter8": ("east_side", 8.0),
}
ISA_ENV = {  # the analyser is numpy: limit its kernels (and OpenBLAS's) like an AVX2-only camera host
    "native": {},
    "avx2": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"},
}
SHIPPED = ("models/pedestrian-mnv2-s8.pt", 360)


def camera_config(path: Path = REPO / "configs/demo.yaml"):
    """The demo camera with our geometry added and only the rules scored here, and the demo's tracker."""
    from surveil.config import load_config

    config = load_config(path, environ={})
    camera = config.cameras[0]
    zone_type, line_type = type(camera.zones[0]), type(camera.lines[0])
    known = {z.name for z in camera.zones}
    zones = [
        *camera.zones,
        *(zone_type.model_validate({"name": n, "polygon": p}) for n, p in OWN_ZONES.items() if n not in known),
    ]
    lines = [
        *camera.lines,
        *(
            line_type.model_validate({"name": n, "a": a, "b": b, "forward": "fwd", "backward": "bwd"})
            for n, (a, b) in OWN_LINES.items()
        ),
    ]
    template = {r.type: r for r in camera.rules}
    rules = [template["zone_intrusion"].model_copy(update={"id": f"{z}-intrusion", "zone": z}) for z in INTRUSION_ZONES]
    rules += [
        template["loitering"].model_copy(update={"id": i, "zone": z, "dwell_s": d}) for i, (z, d) in LOITERING.items()
    ]
    rules += [
        template["line_crossing"].model_copy(update={"id": f"{ln.name}-crossing", "line": ln.name}) for ln in lines
    ]
    return camera.model_copy(update={"zones": zones, "lines": lines, "rules": rules}), config.tracker


def replay(camera, tracker, detections_at, thresholds, names, frames):
    """Every update, the final line counts, the analyser's ms per frame (the recording below left out) and
    the tracker's matched boxes frame by frame (to attribute an alert to the person its track followed)
    of one pass over ``frames``."""
    from bench.zone_alerts_pets import BLANK, FPS, track_recorder
    from surveil.analysis.analyzer import build_analyzer
    from surveil.types import Frame

    analyzer = build_analyzer(camera, tracker, names, operating_thresholds=thresholds)
    tracks: dict = {}
    now = [0]
    record = track_recorder(lambda: now[0], tracks)
    recording = [0.0]

    def observe(ctx, found) -> None:
        started = time.perf_counter()
        record(ctx, found)
        recording[0] += time.perf_counter() - started

    analyzer.on_step = observe
    updates = []
    busy = 0.0
    for number in frames:
        now[0] = number
        t = number / FPS
        frame = Frame(camera.name, number, t, 1_700_000_000.0 + t, BLANK)
        detections = detections_at(number)
        started = time.perf_counter()
        found = analyzer.process(analyzer.context(frame, detections))
        busy += time.perf_counter() - started
        updates += [(number, u) for u in found]
    counts = {r.name: dict(r.values) for rule in analyzer.rules for r in rule.state() if r.kind == "lines"}
    return updates, counts, 1000 * (busy - recording[0]) / max(len(frames), 1), tracks


def score_phase(camera, gt, updates, counts, frames, tracks) -> dict[str, float]:
    from bench.demo_rules_pets import gt_crossings
    from bench.zone_alerts_pets import FPS, Start, score, visits

    out: dict[str, float] = {}
    for line in camera.lines:
        crossings = gt_crossings(gt, frames, line)
        for direction in (line.forward, line.backward):
            out[f"line {line.name} {direction} truth"] = crossings[direction]
            out[f"line {line.name} {direction} counted"] = counts[line.name][direction]
    zones = {z.name: z for z in camera.zones}
    for rule in (r for r in camera.rules if r.type == "zone_intrusion"):
        one = camera.model_copy(update={"zones": [zones[rule.zone]], "rules": [rule]})
        starts = [
            Start(n, u.zone, np.array(u.subjects[0].xyxy, np.float32), u.subjects[0].track_id)
            for n, u in updates
            if u.rule == rule.id and u.phase == "start"
        ]
        merge = int(rule.merge_window_s * FPS)
        truth = visits(gt, frames, one)
        s = score(truth, starts, gt, merge_frames=merge)
        t = score(truth, starts, gt, merge_frames=merge, tracks=tracks, min_frames=rule.min_frames)
        out |= {
            f"zone {rule.zone} recall": s.recall,
            f"zone {rule.zone} duplicates": s.duplicates,
            f"zone {rule.zone} false": s.false,
            f"zone {rule.zone} recall by track": t.recall,
            f"zone {rule.zone} false by track": t.false,
        }
    for rule in (r for r in camera.rules if r.type == "loitering"):
        one = camera.model_copy(update={"zones": [zones[rule.zone]], "rules": [rule]})
        stays = loitering_stays(gt, frames, one)
        starts = [
            Start(n, u.zone, np.array(u.subjects[0].xyxy, np.float32), u.subjects[0].track_id)
            for n, u in updates
            if u.rule == rule.id and u.phase == "start"
        ]
        merge = int(rule.merge_window_s * FPS)
        s = score(stays, starts, gt, merge_frames=merge)
        t = score(stays, starts, gt, merge_frames=merge, tracks=tracks, min_frames=rule.min_frames)
        out |= {
            f"loiter {rule.id} stays": s.visits,
            f"loiter {rule.id} found": s.hit,
            f"loiter {rule.id} duplicates": s.duplicates,
            f"loiter {rule.id} false": s.false,
            f"loiter {rule.id} found by track": t.hit,
            f"loiter {rule.id} false by track": t.false,
        }
    return out


def loitering_stays(gt, frames: list[int], camera) -> list[tuple[int, str, int, int]]:
    """The zone visits (bench/zone_alerts_pets.py: entering after ``min_frames``, leaving after ``exit_frames``
    processed frames; a return is a new visit, as the rule's dwell clock restarts) that last ``dwell_s`` from
    the first frame inside to the last; each as (person, zone, frame its dwell is reached, last frame inside)."""
    from bench.zone_alerts_pets import FPS, visits

    rule = camera.rules[0]
    step = frames[1] - frames[0] if len(frames) > 1 else 1
    unjoined = camera.model_copy(update={"rules": [rule.model_copy(update={"merge_window_s": 0.0})]})
    out = []
    for person, zone, entered, last in visits(gt, frames, unjoined):  # the dwell restarts after leaving
        first = entered - (rule.min_frames - 1) * step
        reached = next((n for n in frames if n >= first and (n - first) / FPS >= rule.dwell_s), None)
        if reached is not None and reached <= last:
            out.append((person, zone, reached, last))
    return out


def measure(args) -> dict:
    """{detector: {step: [per-phase figures]}} with the ``surveil`` package now on sys.path."""
    from bench.zone_alerts_pets import FRAMES, gt_frames
    from surveil.types import Detections

    camera, tracker = camera_config(args.config)
    gt = gt_frames(args.shared_data)
    names = ["__background__", "pedestrian"]

    def oracle(n):
        return Detections.from_arrays(gt[n][0], np.ones(len(gt[n][0])), np.ones(len(gt[n][0])))

    sources = {"ground-truth boxes": (oracle, None, names)}
    if args.detections:
        found, thresholds, class_names = load_detections(args.detections)
        sources[f"{Path(SHIPPED[0]).name} @ {SHIPPED[1]}"] = (found.__getitem__, thresholds, class_names)
    result: dict = {}
    for label, (detections_at, thresholds, class_names) in sources.items():
        for step in args.steps:
            phases = []
            for phase in range(1, step + 1):
                frames = list(range(phase, FRAMES + 1, step))
                updates, counts, ms, tracks = replay(camera, tracker, detections_at, thresholds, class_names, frames)
                phases.append({**score_phase(camera, gt, updates, counts, frames, tracks), "analyser ms per_frame": ms})
            result.setdefault(label, {})[str(step)] = phases
            print(f"  {label} every {step}: done", file=sys.stderr, flush=True)
    return {
        "pets": result,
        "simd": numpy_simd(),
        "tud": {str(k): [tud_starts(args.shared_data, k, p) for p in range(1, k + 1)] for k in (1, 2, 5)},
    }


def numpy_simd() -> list[str]:
    """The SIMD levels numpy dispatches to in this process (after NPY_DISABLE_CPU_FEATURES)."""
    from numpy._core._multiarray_umath import (  # type: ignore[import-not-found]  # numpy ships no stub for it
        __cpu_dispatch__,
        __cpu_features__,
    )

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def tud_starts(shared: Path, step: int, phase: int) -> list[int]:
    """TUD-Campus (25 fps, close-up) exact boxes, a zone_intrusion over the whole picture with the default
    folding: the ground-truth person of every incident start (-1: none overlaps it at IoU >= 0.5)."""
    from surveil.analysis.analyzer import build_analyzer
    from surveil.config import CameraConfig, TrackerConfig
    from surveil.evaluation.surveillance import read_mot_gt
    from surveil.geometry import box_iou
    from surveil.types import Detections, Frame

    rows = read_mot_gt(shared / "MOT15/TUD-Campus/gt/gt.txt")
    camera = CameraConfig.model_validate(
        {
            "name": "tud",
            "url": "tud.mp4",
            "zones": [{"name": "street", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "rules": [{"id": "street-intrusion", "type": "zone_intrusion", "zone": "street", "min_frames": 3}],
        }
    )
    analyzer = build_analyzer(camera, TrackerConfig(), ["__background__", "pedestrian"])
    blank, people = np.zeros((480, 640, 3), np.uint8), []
    for number in range(phase, int(rows[:, 0].max()) + 1, step):
        mine = rows[rows[:, 0] == number]
        boxes = np.clip(np.c_[mine[:, 2:4], mine[:, 2:4] + mine[:, 4:6]], 0, [640, 480, 640, 480]).astype(np.float32)
        found = Detections.from_arrays(boxes, np.ones(len(boxes)), np.ones(len(boxes)))
        for u in analyzer.process(analyzer.context(Frame("tud", number, number / 25, number / 25, blank), found)):
            if u.phase == "start":
                iou = box_iou(np.array([u.subjects[0].xyxy], np.float32), boxes)[0]
                people.append(int(mine[iou.argmax(), 1]) if iou.max() >= 0.5 else -1)
    return people


def load_detections(path: Path):
    """{frame number: Detections}, thresholds, class names from bench/pets_detections.py's cache file,
    read here so that the ``surveil`` of any commit can replay them (embeddings too, when cached)."""
    from surveil.types import Detections

    data = np.load(path, allow_pickle=False)
    embedding = data["embedding"] if "embedding" in data.files else None
    numbers = data["frame"]
    out = {}
    for n in range(1, int(data["frames"]) + 1):
        mask = numbers == n
        rows = None if embedding is None else embedding[mask]
        out[n] = Detections.from_arrays(data["xyxy"][mask], data["confidence"][mask], data["class_id"][mask], rows)
    return out, data["thresholds"], [str(x) for x in data["class_names"]]


def extract(rev: str) -> Path:
    """The ``surveil`` package and the demo config of commit ``rev``, alone, in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"surveil-{rev}-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "surveil", "configs/demo.yaml"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(folder, filter="data")
    return folder


def measure_with(code: Path | None, argv: list[str], isa: str = "native") -> dict:
    """:func:`measure` in a child process whose ``surveil`` and demo config come from ``code`` (None: this
    checkout, and the ``--config`` already in ``argv``; a later ``--config`` wins)."""
    if code is not None:
        argv = [*argv, "--config", str(code / "configs/demo.yaml")]
    prelude = f"import sys; sys.path.insert(0, {str(code)!r}); " if code else ""
    script = prelude + "import runpy; runpy.run_module('bench.rules_phases_pets', run_name='__main__')"
    env = {**os.environ, "PYTHONPATH": "", **ISA_ENV[isa]}
    done = subprocess.run(
        [sys.executable, "-c", script, *argv, "--worker"], cwd=REPO, env=env, check=True, stdout=subprocess.PIPE
    )
    return json.loads(done.stdout)


def cell(values: list[float], fmt: str = ".1f") -> str:
    return f"{np.mean(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def error(phases: list[dict], key: str) -> tuple[float, float]:
    """Mean and worst relative count error of a line direction over the phases."""
    errors = [abs(p[f"{key} counted"] - p[f"{key} truth"]) / max(p[f"{key} truth"], 1) for p in phases]
    return float(np.mean(errors)), float(max(errors))


def tables(results: dict[str, dict], steps: list[int]) -> list[str]:
    labels = list(results)
    first = results[labels[-1]]["pets"]
    out = []
    for detector in first:
        for step in steps:
            rows = {label: results[label]["pets"][detector][str(step)] for label in labels}
            out += [
                "",
                f"**{detector}, {10 / step:g} processed fps** (mean over {step} phase(s), range in brackets; {' → '.join(labels)})",
                "",
            ]
            out += section(rows, labels)
    return out


def section(rows: dict[str, list[dict]], labels: list[str]) -> list[str]:
    keys = rows[labels[-1]][0].keys()
    lines = sorted({k.rsplit(" ", 1)[0] for k in keys if k.startswith("line ")})
    out = ["| line, direction | truth | " + " | ".join(f"counted {lb} | error {lb} (worst)" for lb in labels) + " |"]
    out.append("|---|---|" + "---|---|" * len(labels))
    for key in lines:
        truth = cell([p[f"{key} truth"] for p in rows[labels[-1]]])
        parts = []
        for lb in labels:
            mean, worst = error(rows[lb], key)
            parts.append(f"{cell([p[f'{key} counted'] for p in rows[lb]])} | {mean:.0%} ({worst:.0%})")
        out.append(f"| {key[5:]} | {truth} | " + " | ".join(parts) + " |")
    arrow = " → ".join(labels)
    for kind, figures in (
        ("zone", ("recall", "duplicates", "false", "recall by track", "false by track")),
        ("loiter", ("stays", "found", "duplicates", "false", "found by track", "false by track")),
    ):
        names = list(dict.fromkeys(k.split(" ")[1] for k in keys if k.startswith(f"{kind} ")))
        out += ["", f"| {kind} rule | " + " | ".join(f"{f} ({arrow})" for f in figures) + " |"]
        out.append("|---|" + "---|" * len(figures))
        for name in names:
            fmt = {"recall": ".2f", "recall by track": ".2f"}
            cells = [
                " → ".join(cell([p[f"{kind} {name} {f}"] for p in rows[lb]], fmt.get(f, ".1f")) for lb in labels)
                for f in figures
            ]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    ms = " → ".join(cell([p["analyser ms per_frame"] for p in rows[lb]], ".2f") for lb in labels)
    out += ["", f"Analyser (tracker + these rules + incident book) ms per processed frame, {arrow}: {ms}"]
    return out


def veto_figures(detections: Path, shared: Path) -> list[str]:
    """How folding's appearance veto (cosine >= MIN_SIMILARITY) would treat the shipped model's embeddings:
    the same person 1-4 s apart (a re-birth: must fold) and two people within 4 s (must not)."""
    from bench.zone_alerts_pets import gt_frames
    from surveil.analysis.incidents import MIN_SIMILARITY
    from surveil.geometry import box_iou

    found, thresholds, _ = load_detections(detections)
    gt = gt_frames(shared)
    seen: dict[int, list[tuple[int, np.ndarray]]] = {}
    for n, d in found.items():
        keep = d.confidence >= thresholds[1]
        if d.embedding is None or not keep.any() or not len(gt[n][0]):
            continue
        iou = box_iou(gt[n][0], d.xyxy[keep])
        for i, person in enumerate(gt[n][1].tolist()):
            if iou[i].max() >= 0.5:
                e = d.embedding[keep][iou[i].argmax()]
                seen.setdefault(person, []).append((n, e / np.linalg.norm(e)))
    if not seen:
        return ["", "No embeddings in the detections cache: the appearance veto is not measured."]
    rng = np.random.default_rng(0)
    same, other = [], []
    for person, views in seen.items():
        for n, e in views:
            later = [f for m, f in views if 10 <= m - n <= 40]
            if later:
                same.append(float(e @ later[rng.integers(len(later))]))
            nearby = [f for q, v in seen.items() if q != person for m, f in v if abs(m - n) <= 40]
            if nearby:
                other.append(float(e @ nearby[rng.integers(len(nearby))]))
    return [
        "",
        f"Folding's appearance veto (cosine >= {MIN_SIMILARITY}) on these detections' embeddings (dimension "
        f"{len(next(iter(seen.values()))[0][1])}), matched to ground truth at IoU >= 0.5: the same person 1-4 s "
        f"apart falls below it in {np.mean(np.array(same) < MIN_SIMILARITY):.0%} of {len(same)} pairs (a re-birth "
        f"that would not fold); two different people within 4 s reach it in "
        f"{np.mean(np.array(other) >= MIN_SIMILARITY):.0%} of {len(other)} pairs (the veto does not stop those).",
    ]


def tud_table(results: dict[str, dict]) -> list[str]:
    labels = list(results)
    out = [
        "",
        "**TUD-Campus, exact boxes, zone over the whole picture: incident starts per phase** (8 people; 6 leaves after 9 frames)",
        "",
    ]
    out += ["| every k-th frame | " + " | ".join(f"starts {lb} | people with two starts {lb}" for lb in labels) + " |"]
    out.append("|---|" + "---|---|" * len(labels))
    for step in results[labels[-1]]["tud"]:
        cells = []
        for lb in labels:
            phases = results[lb]["tud"][step]
            cells.append(
                f"{', '.join(str(len(p)) for p in phases)} | {', '.join(str(len(p) - len(set(p))) for p in phases)}"
            )
        out.append(f"| {step} | " + " | ".join(cells) + " |")
    return out


def fastest(runs: list[dict]) -> dict:
    """The first run's figures (every run counts the same) with each phase's analyser time the least of the runs."""
    result = runs[0]
    for detector, by_step in result["pets"].items():
        for step, phases in by_step.items():
            for k, phase in enumerate(phases):
                phase["analyser ms per_frame"] = min(
                    r["pets"][detector][step][k]["analyser ms per_frame"] for r in runs
                )
    return result


def verdicts(results: dict[str, dict], steps: list[int]) -> list[str]:
    """Machine-readable: the worst line count error of any line, direction and phase, per code, detector, rate."""
    out = []
    for label, result in results.items():
        for detector, by_step in result["pets"].items():
            for step in steps:
                phases = by_step[str(step)]
                keys = sorted({k.rsplit(" ", 1)[0] for k in phases[0] if k.startswith("line ")})
                worst = max(error(phases, key)[1] for key in keys)
                out.append(
                    f"line-counts code={label.split()[0]} detector={detector.split()[0]} fps={10 / step:g} worst_error={worst:.2f}"
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 2, 1], help="process every k-th frame (5 = 2 fps)")
    parser.add_argument("--no-model", action="store_true", help="ground-truth boxes only")
    parser.add_argument(
        "--before", metavar="REV", help="also measure the surveil package of this commit (e.g. fc864a5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="measure before and after in turn this often; the least time counts"
    )
    parser.add_argument(
        "--isa", choices=sorted(ISA_ENV), default="native", help="avx2: numpy and OpenBLAS limited to AVX2 (X86_V3)"
    )
    parser.add_argument(
        "--embedding-kind",
        help="the shipped model's detections carry this kind of embedding, before and after alike "
        "(default: the default kind; see surveil.detection.embedding)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--detections", type=Path, help=argparse.SUPPRESS)  # the cache file, for the workers
    parser.add_argument(
        "--config", type=Path, default=REPO / "configs/demo.yaml", help="its first camera and its tracker are measured"
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args)))
        return
    print(machine())
    argv = ["--steps", *map(str, args.steps), "--shared-data", str(args.shared_data), "--config", str(args.config)]
    argv += ["--no-model"] if args.no_model else []
    if not args.no_model:
        from bench.pets_detections import cache_path, pets_detections
        from surveil.detection.embedding import DEFAULT_KIND, EMBEDDING_KINDS

        kind = args.embedding_kind or DEFAULT_KIND
        if kind not in EMBEDDING_KINDS:
            parser.error(f"--embedding-kind must be one of {', '.join(EMBEDDING_KINDS)}")
        pets_detections(REPO / SHIPPED[0], args.shared_data, SHIPPED[1], embedding_kind=kind)  # computed once, cached
        args.detections = cache_path(REPO / SHIPPED[0], SHIPPED[1], 0.1, embedding_kind=kind)
        argv += ["--detections", str(args.detections)]
    code = {"after": None} if not args.before else {f"before {args.before}": extract(args.before), "after": None}
    runs: dict[str, list[dict]] = {label: [] for label in code}
    for _ in range(args.rounds):  # before and after in turn: the load changes under a shared machine
        for label, folder in code.items():
            runs[label].append(measure_with(folder, argv, args.isa))
    results = {label: fastest(found) for label, found in runs.items()}
    for folder in code.values():
        if folder is not None:
            shutil.rmtree(folder)
    print(f"--isa {args.isa}: numpy dispatched to {' '.join(results['after']['simd'])} in the measuring processes")
    print("\n".join(tables(results, args.steps)))
    print("\n".join(tud_table(results)))
    if args.detections:
        print("\n".join(veto_figures(args.detections, args.shared_data)))
    print()
    print("\n".join(verdicts(results, args.steps)))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def machine() -> str:
    """The CPU's vector features and the load: the figures are counts, not speeds, but say where they ran."""
    flags: set[str] = set()
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), flags)
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return (
        f"CPU features: {' '.join(isa) or 'none of avx2/avx512'} (counts do not depend on it; the analyser ms per frame do); load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs (a shared, busy machine)"
    )


if __name__ == "__main__":
    main()
