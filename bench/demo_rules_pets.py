"""The demo's rules on the PETS09-S2L1 video, checked against its ground truth.

    .venv/bin/python -m bench.demo_rules_pets [--step 5] [--min-size 800]

Runs every rule of configs/demo.yaml through the daemon's analyser on the real video frames
(decoded here) with the shipped model's raw detections (cached by bench/pets_detections.py),
processing every ``step``-th frame for each sampling phase, and sets beside it what the
ground-truth tracks say, computed independently here from the ground-truth boxes:
- line crossings: per person, the feet's side of the line on the processed frames flips and the
  step between the two positions passes through the segment;
- loitering: people whose feet stay in the zone for at least ``dwell_s`` seconds;
- frame rules (stream_health, camera_tamper): the real video is neither frozen nor tampered
  with, so every incident they raise is a false alarm.

Every phase at 2, 5 and 10 fps, lines, zones and loitering on geometry of our own too, before and
after in one run: bench/rules_phases_pets.py (issue 17).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from bench.zone_alerts_pets import FPS, FRAMES, REPO, H, W, gt_frames
from surveil.analysis.analyzer import build_analyzer
from surveil.config import load_config
from surveil.evaluation.surveillance import PETS_VIDEO
from surveil.geometry import points_in_polygon, relative_anchors, segments_cross, signed_side
from surveil.types import Frame
from surveil.video.clips import read_clip


def video_frames(shared: Path) -> list[np.ndarray]:
    return [frame.image for frame in read_clip(shared / PETS_VIDEO)]


def gt_crossings(gt, frames: list[int], line) -> Counter:
    a, b = np.array(line.a) * [W, H], np.array(line.b) * [W, H]
    last: dict[int, np.ndarray] = {}
    counts: Counter = Counter({line.forward: 0, line.backward: 0})
    for number in frames:
        boxes, ids = gt[number]
        feet = relative_anchors(boxes, "bottom_center", W, H) * [W, H]
        for person, point in zip(ids.tolist(), feet):
            before = last.get(person)
            if before is not None and segments_cross(tuple(before), tuple(point), tuple(a), tuple(b)):
                side = signed_side(point[None], tuple(a), tuple(b))[0]
                if side != 0:
                    counts[line.forward if side > 0 else line.backward] += 1
            last[person] = point
    return counts


def gt_loiterers(gt, frames: list[int], zone, dwell_s: float) -> set[int]:
    since: dict[int, int] = {}
    found = set()
    for number in frames:
        boxes, ids = gt[number]
        inside = points_in_polygon(relative_anchors(boxes, "bottom_center", W, H), np.array(zone.polygon))
        present = {int(i) for i, yes in zip(ids, inside) if yes}
        since = {p: since.get(p, number) for p in present}
        found |= {p for p, first in since.items() if (number - first) / FPS >= dwell_s}
    return found


def run_phase(camera, images, detections, thresholds, names, frames):
    analyzer = build_analyzer(
        camera, load_config(REPO / "configs/demo.yaml", environ={}).tracker, names, operating_thresholds=thresholds
    )
    updates = []
    for number in frames:
        t = number / FPS
        frame = Frame(camera.name, number, t, 1_700_000_000.0 + t, images[number - 1])
        updates += analyzer.process(analyzer.context(frame, detections[number]))
    updates += analyzer.close(FRAMES / FPS, 1_700_000_000.0 + FRAMES / FPS, reason="end of video")
    counts = {r.name: r.values for rule in analyzer.rules for r in rule.state() if r.kind == "lines"}
    return updates, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--weights", type=Path, default=REPO / "models/pedestrian-mnv2.pt")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--step", type=int, default=5)
    args = parser.parse_args()
    from bench.pets_detections import pets_detections  # here: the truth helpers above serve other benches too

    camera = load_config(REPO / "configs/demo.yaml", environ={}).cameras[0]
    line = camera.lines[0]
    loiter = next(r for r in camera.rules if r.type == "loitering")
    zone = next(z for z in camera.zones if z.name == loiter.zone)
    gt = gt_frames(args.shared_data)
    images = video_frames(args.shared_data)
    detections, thresholds, names = pets_detections(args.weights, args.shared_data, args.min_size)
    print(f"configs/demo.yaml rules on PETS09-S2L1, {FPS / args.step:g} processed fps, shipped model @ {args.min_size}")
    print(
        f"| phase | {line.name} {line.forward} (gt / ours) | {line.name} {line.backward} (gt / ours) | "
        f"{loiter.id} people (gt / ours) | starts by rule | frame-rule incidents |"
    )
    print("|---|---|---|---|---|---|")
    for phase in range(1, args.step + 1):
        frames = list(range(phase, FRAMES + 1, args.step))
        updates, counts = run_phase(camera, images, detections, thresholds, names, frames)
        truth = gt_crossings(gt, frames, line)
        loiterers = gt_loiterers(gt, frames, zone, loiter.dwell_s)
        starts = Counter(u.rule for u in updates if u.phase == "start")
        ours_loitering = starts.get(loiter.id, 0)
        frame_rules = sum(n for rule, n in starts.items() if rule.endswith(("-stream", "-tamper")))
        print(
            f"| {phase} | {truth[line.forward]} / {counts[line.name][line.forward]} | "
            f"{truth[line.backward]} / {counts[line.name][line.backward]} | {len(loiterers)} / {ours_loitering} | "
            f"{dict(sorted(starts.items()))} | {frame_rules} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
