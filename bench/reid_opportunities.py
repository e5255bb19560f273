"""Could the tracker re-identify anybody? Births, waiting tracks and appearance on PETS09-S2L1.

    .venv/bin/python -m bench.reid_opportunities [--step 5]

The daemon's analyser (demo camera, default tracker) replays the shipped demo model's cached
detections (bench/pets_detections.py: ``models/pedestrian-mnv2-s8.pt`` at 360, with embeddings) on
every sampling phase at every ``--step``-th frame. Whenever a detection is about to start a new track
while lost or dormant tracks wait to be re-attached, it notes:

- the best appearance cosine between the detection and any waiting track (re-attaching needs
  ``tracker.reid_similarity``, 0.92 by default);
- for detections that belong to a ground-truth person (IoU >= 0.5), whether that person's own
  track is among the waiting ones (its last box belongs to them), and if so the cosine with it and
  the best cosine with another waiting track.

Machine-independent; the figures behind "re-identification never fires on the demo model" in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def recording_tracker(tracker, person_at, notes: list[dict]):
    """``tracker`` (a ByteTracker) with its re-attach step observed: one note per birth candidate."""
    from surveil.tracking.association import cosine

    original = tracker._reattach

    def observed(detections, candidates, now):
        waiting = [t for t in tracker._tracks if t.missed > 0 and t.hits >= tracker.min_hits]
        waiting = [t for t in waiting if t.appearance is not None]
        similarity = None
        if candidates and waiting and detections.embedding is not None:
            similarity = cosine([t.appearance for t in waiting], detections.embedding[candidates])
        if similarity is not None:
            owners = [person_at(t.last_seen, t.xyxy) for t in waiting]
            for column, index in enumerate(candidates):
                person = person_at(now, detections.xyxy[index])
                own = [row for row, owner in enumerate(owners) if person is not None and owner == person]
                others = [float(similarity[row, column]) for row in range(len(waiting)) if row not in own]
                notes.append(
                    {
                        "best": float(np.nanmax(similarity[:, column])),
                        "person": person,
                        "own": float(similarity[own[0], column]) if own else None,
                        "best_other": max(others, default=None),
                    }
                )
        return original(detections, candidates, now)

    tracker._reattach = observed
    return tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--step", type=int, default=5, help="process every k-th frame (5 = 2 fps)")
    args = parser.parse_args()

    from bench.pets_detections import pets_detections
    from bench.rules_phases_pets import SHIPPED, camera_config
    from bench.zone_alerts_pets import BLANK, FPS, FRAMES, gt_frames
    from surveil.analysis.analyzer import build_analyzer
    from surveil.geometry import box_iou
    from surveil.types import Frame

    gt = gt_frames(args.shared_data)
    found, thresholds, names = pets_detections(REPO / SHIPPED[0], args.shared_data, min_size=SHIPPED[1])
    camera, tracker_config = camera_config()

    def person_at(t: float, box) -> int | None:
        boxes, ids = gt.get(round(t * FPS), (np.zeros((0, 4)), np.zeros(0)))
        if not len(boxes):
            return None
        iou = box_iou(np.asarray([box], np.float64), boxes.astype(np.float64))[0]
        return int(ids[iou.argmax()]) if iou.max() >= 0.5 else None

    notes: list[dict] = []
    for phase in range(1, args.step + 1):
        analyser = build_analyzer(camera, tracker_config, names, operating_thresholds=thresholds)
        recording_tracker(analyser.tracker, person_at, notes)
        for number in range(phase, FRAMES + 1, args.step):
            t = number / FPS
            analyser.process(analyser.context(Frame(camera.name, number, t, 1.7e9 + t, BLANK), found[number]))
    best = np.array([n["best"] for n in notes])
    known = [n for n in notes if n["person"] is not None]
    own = [n for n in known if n["own"] is not None]
    print(f"{SHIPPED[0]} @ {SHIPPED[1]}, every {args.step}th frame, {args.step} phases, tracker defaults")
    print(f"births while tracks waited: {len(notes)}; best cosine with a waiting track: " + quantiles(best))
    print(f"  of which a ground-truth person's: {len(known)}; with that person's own track waiting: {len(own)}")
    if own:
        print("  cosine with their own track: " + quantiles(np.array([n["own"] for n in own])))
        contested = [n for n in own if n["best_other"] is not None]
        print(
            f"  of those with another track waiting too ({len(contested)}), their own track the more alike: "
            f"{sum(1 for n in contested if n['own'] > n['best_other'])}"
        )
    print(
        f"  re-attachable at reid_similarity {tracker_config.reid_similarity}: {int((best >= tracker_config.reid_similarity).sum())}"
    )


def quantiles(values: np.ndarray) -> str:
    q = np.quantile(values, [0.0, 0.5, 0.9, 1.0]) if len(values) else [np.nan] * 4
    return f"min {q[0]:.3f}, median {q[1]:.3f}, 90th percentile {q[2]:.3f}, max {q[3]:.3f}"


if __name__ == "__main__":
    main()
