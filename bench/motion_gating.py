"""Motion gating (``cameras[].motion``) on real footage: detector calls saved and alerts kept.

    .venv/bin/python -m bench.motion_gating [--weights models/pedestrian-mnv2.pt] [--min-size 800]

Two clips, both processed by the daemon's own per-camera analyser (``surveil.analysis.analyzer``) with the
zone_intrusion rules of configs/demo.yaml, gating off and on, and the gate seeing exactly the
frames the detector thread would take (every ``step``-th frame):

- quiet: ~80 s made from the shipped PETS video (configs/media/pets2009-s2l1.mp4): its median
  frame (no people) with light sensor noise (sigma 2 grey levels), and three short stretches of
  the real video pasted back (``surveil.tools.bench.quiet_clip``: ``surveil bench --quiet-cameras``
  plays the same clip through the daemon's pipeline). Detections: the shipped model's cached ones
  (bench/pets_detections.py) on the real frames, and the model run once on the median frame for
  every still frame. Printed: detector calls and the alert list (frame, zone, box) both ways.
- busy: the PETS video itself; zone-alert recall, duplicates and false alerts scored against the
  ground truth exactly as bench/zone_alerts_pets.py does, mean over the ``step`` sampling phases.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bench.pets_detections import pets_detections
from bench.zone_alerts_pets import FPS, FRAMES, demo_camera, gt_frames, run, score, summary, visits
from surveil.config import DetectorConfig, MotionConfig, TrackerConfig
from surveil.tools.bench import QUIET_PASTES as PASTES
from surveil.tools.bench import quiet_clip
from surveil.types import Detections
from surveil.video.clips import read_clip
from surveil.video.motion import MotionGate, MotionSettings, motion_settings

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO / "configs/media/pets2009-s2l1.mp4"
EMPTY = Detections.empty()


def read_video(path: Path) -> list[np.ndarray]:
    return [frame.image for frame in read_clip(path)]


def gated(detections_at, images, settings: MotionSettings | None, calls: list[int]):
    """``detections_at`` behind a motion gate fed the frames in processing order; counts calls."""
    gate = MotionGate(settings) if settings else None

    def at(number: int) -> Detections:
        if gate is not None and not gate.should_detect(images[number], number / FPS):
            return EMPTY
        calls[0] += 1
        found = detections_at(number)
        if gate is not None:
            gate.detected(len(found))
        return found

    return at


def quiet(args, real, found, thresholds, names, camera, tracker, settings) -> None:
    from surveil.detection.torch_detector import TorchDetector

    frames, source, median = quiet_clip(real)
    detector = TorchDetector(
        DetectorConfig(weights=str(args.weights), device="cpu", min_size=args.min_size, low_score_floor=0.1, threads=2)
    )
    still = detector.detect([median])[0]
    print(
        f"quiet clip: {len(frames)} frames ({len(frames) / FPS:g} s), {sum(n is not None for n in source)} of them real "
        f"PETS frames in {len(PASTES)} stretches; the model finds {int((still.confidence >= 0.5).sum())} objects "
        f"(score >= 0.5) on the median frame"
    )
    images = {i + 1: small(f) for i, f in enumerate(frames)}
    detections_at = lambda n: found[source[n - 1]] if source[n - 1] else still  # noqa: E731
    print("| step | processed fps | gating | detector calls | alerts | alert list (clip frame, zone) |")
    print("|---|---|---|---|---|---|")
    for step in args.steps:
        numbers = list(range(1, len(frames) + 1, step))
        results = {}
        for label, s in (("off", None), ("on", settings)):
            calls = [0]
            starts = run(gated(detections_at, images, s, calls), thresholds, names, numbers, camera, tracker)
            results[label] = (calls[0], [(n, z, tuple(np.round(b).astype(int).tolist())) for n, z, b, _ in starts])
            listed = ", ".join(f"({n}, {z})" for n, z, _ in results[label][1])
            print(f"| {step} | {FPS / step:g} | {label} | {calls[0]} | {len(starts)} | {listed} |")
        same = results["off"][1] == results["on"][1]
        print(
            f"motion-gating quiet step={step} calls_off={results['off'][0]} calls_on={results['on'][0]} "
            f"ratio={results['off'][0] / max(results['on'][0], 1):.2f} same_alerts={same}",
            flush=True,
        )


def busy(args, real, found, thresholds, names, camera, tracker, settings, gt) -> None:
    images = {i + 1: small(f) for i, f in enumerate(real)}
    print(
        "| step | processed fps | gating | detector calls (mean per phase) | true visits | alerts | recall | duplicates | false |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for step in args.steps:
        out = {}
        for label, s in (("off", None), ("on", settings)):
            scores, calls_all = [], []
            for phase in range(1, step + 1):
                numbers = list(range(phase, FRAMES + 1, step))
                calls = [0]
                starts = run(gated(found.__getitem__, images, s, calls), thresholds, names, numbers, camera, tracker)
                scores.append(score(visits(gt, numbers, camera), starts, gt, merge_frames=int(4 * FPS)))
                calls_all.append(calls[0])
            m = summary(scores)
            out[label] = m
            print(
                f"| {step} | {FPS / step:g} | {label} | {np.mean(calls_all):.1f} | {m['visits'][0]:.1f} | {m['alerts'][0]:.1f} | "
                f"{m['recall'][0]:.3f} | {m['duplicates'][0]:.1f} | {m['false'][0]:.1f} |",
                flush=True,
            )
        print(
            f"motion-gating busy step={step} recall_off={out['off']['recall'][0]:.3f} recall_on={out['on']['recall'][0]:.3f}"
        )


def small(image: np.ndarray) -> np.ndarray:
    """What the gate looks at is 160 px wide anyway: keep memory small (identical motion decisions)."""
    h, w = image.shape[:2]
    return cv2.resize(image, (160, round(h * 160 / w)), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--weights", type=Path, default=REPO / "models/pedestrian-mnv2.pt")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[1, 5], help="process every step-th frame (1 = 10 fps, 5 = 2 fps)"
    )
    parser.add_argument("--threshold", type=int, default=25)
    parser.add_argument("--min-area", type=float, default=0.002)
    parser.add_argument("--keepalive-s", type=float, default=2.0)
    parser.add_argument("--idle-keepalive-s", type=float, default=10.0)
    args = parser.parse_args()
    motion = MotionConfig(
        enabled=True,
        threshold=args.threshold,
        min_area=args.min_area,
        keepalive_s=args.keepalive_s,
        idle_keepalive_s=args.idle_keepalive_s,
    )
    settings = motion_settings(motion, TrackerConfig())
    print(
        f"motion gate: threshold {args.threshold}, min_area {args.min_area}, keepalive {args.keepalive_s} s while something "
        f"may be tracked, {args.idle_keepalive_s} s on an empty scene; tracker defaults (lost_after_s 3)"
    )
    real = read_video(VIDEO)
    found, thresholds, names = pets_detections(args.weights, args.shared_data, args.min_size)
    camera, tracker = demo_camera(False), TrackerConfig()
    quiet(args, real, found, thresholds, names, camera, tracker, settings)
    busy(args, real, found, thresholds, names, camera, tracker, settings, gt_frames(args.shared_data))


if __name__ == "__main__":
    main()
