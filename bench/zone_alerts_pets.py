"""Zone alerts on real surveillance footage, scored against ground-truth tracks.

    .venv/bin/python bench/zone_alerts_pets.py [--weights models/pedestrian-mnv2.pt] [--steps 1 2 5 10]

PETS09-S2L1 (795 frames, 10 fps) has a ground-truth track for every person. With the zones of
configs/demo.yaml, a *true intrusion* is a (person, zone) pair whose ground-truth feet stay in the
zone for `min_frames` consecutive processed frames. The daemon's own tracker and zone rule then
run on (a) the ground-truth boxes themselves ("oracle detector": isolates tracking and rules) and
(b) the shipped model's detections, processing every `step`-th frame (step 5 = 2 fps, what a
2-core CPU sustains). Each alert is attributed to the ground-truth person whose box overlaps the
alerted box best (IoU >= 0.5).

Reported per run: true intrusions, alerts, recall (true intrusions alerted at least once),
duplicates (extra alerts for an already alerted person and zone) and false alerts (matching no
person). The product goal is one alert per person per zone: recall 1, duplicates 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml

from surveil.config import DetectorConfig
from surveil.evaluation.surveillance import PETS_GT, PETS_VIDEO, pets_frame_boxes, read_mot_gt
from surveil.geometry import anchor_point, box_iou
from surveil.rules import FrameInfo, Zone, ZoneIntrusionRule, points_in_polygon
from surveil.tracker import IouTracker
from surveil.types import Detections

REPO = Path(__file__).resolve().parents[1]
FPS = 10.0
W, H = 480, 360


def demo_zones() -> tuple[list[Zone], int]:
    config = yaml.safe_load((REPO / "configs/demo.yaml").read_text().replace("${", "$"))
    zones = config["cameras"][0]["zones"]
    return [Zone(z["name"], np.array(z["polygon"], float), frozenset()) for z in zones], zones[0].get("min_frames", 3)


def gt_by_frame(shared: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rows = read_mot_gt(shared / PETS_GT)
    return {int(n): pets_frame_boxes(rows, int(n))[:2] for n in np.unique(rows[:, 0])}


def true_intrusions(gt, frames: list[int], zones: list[Zone], min_frames: int) -> set[tuple[int, str]]:
    streak: dict[tuple[int, str], int] = {}
    found = set()
    for number in frames:
        boxes, ids = gt.get(number, (np.zeros((0, 4)), np.zeros(0, int)))
        feet = np.array([anchor_point(b, "bottom_center") for b in boxes]).reshape(-1, 2) / [W, H]
        for zone in zones:
            inside = points_in_polygon(feet, zone.polygon)
            present = {int(i) for i, yes in zip(ids, inside) if yes}
            for key in list(streak):
                if key[1] == zone.name and key[0] not in present:
                    streak[key] = 0
            for person in present:
                key = (person, zone.name)
                streak[key] = streak.get(key, 0) + 1
                if streak[key] >= min_frames:
                    found.add(key)
    return found


def run_rules(detections_at, gt, frames, zones, min_frames, max_center_distance=0.6):
    tracker = IouTracker("pets", min_hits=2, max_missed=15, max_center_distance=max_center_distance)
    names = ["__background__", "person"]
    rules = [ZoneIntrusionRule("pets", zone, min_frames, names) for zone in zones]
    alerts = []
    for number in frames:
        dets = detections_at(number)
        tracks = tracker.update(dets, now=number / FPS)
        info = FrameInfo("pets", W, H, number / FPS, number / FPS, number)
        for rule in rules:
            for event in rule.evaluate(info, tracks):
                alerts.append((number, event.zone, np.array(event.xyxy, np.float32)))
    return attribute(alerts, gt)


def attribute(alerts, gt) -> list[tuple[int | None, str]]:
    out = []
    for number, zone, box in alerts:
        boxes, ids = gt.get(number, (np.zeros((0, 4), np.float32), np.zeros(0, int)))
        iou = box_iou(box[None], boxes)[0] if len(boxes) else np.zeros(0)
        out.append((int(ids[iou.argmax()]) if len(iou) and iou.max() >= 0.5 else None, zone))
    return out


def score(truth: set, attributed: list) -> dict:
    seen: dict[tuple[int, str], int] = {}
    false = 0
    for person, zone in attributed:
        if person is None:
            false += 1
        else:
            seen[(person, zone)] = seen.get((person, zone), 0) + 1
    hit = {k for k in seen if k in truth}
    duplicates = sum(n - 1 for n in seen.values())
    return {"true": len(truth), "alerts": len(attributed), "recall": len(hit) / max(len(truth), 1),
            "duplicates": duplicates, "false": false + sum(1 for k in seen if k not in truth)}


def model_detections(weights: str, frames: set[int], shared: Path, min_size: int):
    from surveil.detector import TorchDetector

    detector = TorchDetector(DetectorConfig(weights=weights, device="cpu", min_size=min_size))
    capture = cv2.VideoCapture(str(shared / PETS_VIDEO))
    out, number = {}, 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        number += 1
        if number in frames:
            out[number] = detector.detect([image])[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"))
    parser.add_argument("--min-size", type=int, default=640)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--model-step", type=int, default=5, help="frame step for the (slow) model run; 0 = skip it")
    args = parser.parse_args()
    gt = gt_by_frame(args.shared_data)
    zones, min_frames = demo_zones()
    print("| detector | tracker | processed fps | true intrusions | alerts | recall | duplicates | false alerts |")
    print("|---|---|---|---|---|---|---|---|")

    def row(label, step, result, tracker="IoU + centre distance"):
        print(f"| {label} | {tracker} | {FPS / step:g} | {result['true']} | {result['alerts']} | {result['recall']:.2f} | {result['duplicates']} | {result['false']} |")

    for step in args.steps:
        frames = list(range(1, 796, step))
        truth = true_intrusions(gt, frames, zones, min_frames)
        oracle = lambda n: Detections.from_arrays(gt[n][0], np.ones(len(gt[n][0])), np.ones(len(gt[n][0])))  # noqa: E731
        row("ground-truth boxes", step, score(truth, run_rules(oracle, gt, frames, zones, min_frames)))
        row("ground-truth boxes", step, score(truth, run_rules(oracle, gt, frames, zones, min_frames, 0.0)), tracker="IoU only")
    if args.model_step:
        step = args.model_step
        frames = list(range(1, 796, step))
        truth = true_intrusions(gt, frames, zones, min_frames)
        found = model_detections(args.weights, set(frames), args.shared_data, args.min_size)
        label = f"{Path(args.weights).name} @ {args.min_size}"
        row(label, step, score(truth, run_rules(lambda n: found[n], gt, frames, zones, min_frames)))
        iou_only = run_rules(lambda n: found[n], gt, frames, zones, min_frames, max_center_distance=0.0)
        row(label, step, score(truth, iou_only), tracker="IoU only")


if __name__ == "__main__":
    main()
