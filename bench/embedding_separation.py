"""How well each kind of detection embedding tells people apart: PETS09-S2L1 ground truth, every phase.

    .venv/bin/python -m bench.embedding_separation [--weights models/pedestrian-mnv2.pt] [--min-size 800] [--phases 5]

Every scored ground-truth box of every frame is embedded through the shipped detector
(``TorchDetector.embed_boxes``'s path: the detector's own features, no extra network) in each kind of
:mod:`surveil.detection.embedding`. Pairs of frames 2, 5 and 10 s apart (20, 50, 100 frames) give:

- ``AUC``: the probability that a same-person pair is more similar than a different-person pair;
- ``rank-1``: a person in the first frame is re-identified when the most similar box of the later
  frame is theirs (only people present in both); ``chance``: 1 / the later frame's people, averaged.

The first frames of the pairs are split into the 5 sampling phases of a 2-fps camera (frame
numbers modulo 5); each figure is printed as the mean and range over phases (``--phases K``: the
first K only, and only their frames are embedded, for a busy machine). Nothing
is fitted: PETS09-S2L1 is never in the detector's training data (PETS09-S3-MF1 is, a different scene).
The figures are machine-independent; the load is printed only because the run takes minutes.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection.transform import resize_boxes

from surveil.config import DetectorConfig
from surveil.detection.embedding import EMBEDDING_KINDS, box_embeddings
from surveil.detection.isa import cpu_flags, flags_summary
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation.surveillance import PETS_GT, PETS_VIDEO, pets_frame_boxes, read_mot_gt
from surveil.video.clips import read_clip

REPO = Path(__file__).resolve().parents[1]
GAPS_S = (2, 5, 10)
FPS = 10
PHASES = 5


def embed_all(
    detector: TorchDetector, shared: Path, phases: int = PHASES
) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, np.ndarray]]:
    """{kind: {frame number: (N, D)}} for the scored ground-truth boxes of the frames of the first ``phases``
    phases, and {frame number: their ids}."""
    rows = read_mot_gt(shared / PETS_GT)
    embedded: dict[str, dict[int, np.ndarray]] = {kind: {} for kind in EMBEDDING_KINDS}
    ids: dict[int, np.ndarray] = {}
    model: Any = detector.model
    started = time.monotonic()
    for frame in read_clip(shared / PETS_VIDEO):
        number = frame.index + 1
        if (number - 1) % PHASES >= phases:
            continue
        boxes, track_ids, scored = pets_frame_boxes(rows, number)
        ids[number] = track_ids[scored]
        with torch.inference_mode():
            batch = detector.preprocess([frame.image])
            features = model.backbone(batch.tensors)
            features = OrderedDict([("0", features)]) if isinstance(features, torch.Tensor) else features
            scaled = resize_boxes(torch.as_tensor(boxes[scored]), frame.image.shape[:2], batch.image_sizes[0])
            for kind in EMBEDDING_KINDS:
                rows_ = box_embeddings(model, features, batch.tensors, [scaled], batch.image_sizes, kind)[0]
                embedded[kind][number] = rows_.numpy()
        if number % 200 == 0:
            print(f"  embedded {number} frames, {(time.monotonic() - started) / number:.2f} s/frame", flush=True)
    return embedded, ids


def auc(same: np.ndarray, different: np.ndarray) -> float:
    """P(a same-person similarity > a different-person one), ties counted half (Mann-Whitney)."""
    ordered = np.sort(different)
    below = np.searchsorted(ordered, same, side="left")
    tied = np.searchsorted(ordered, same, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(same) * len(different)))


def phase_figures(rows: dict[int, np.ndarray], ids: dict[int, np.ndarray], phase: int) -> dict[str, float]:
    same: list[float] = []
    different: list[float] = []
    figures: dict[str, float] = {}
    for gap_s in GAPS_S:
        hits, chance, queries = 0, 0.0, 0
        for first in range(1 + phase, max(ids) + 1, PHASES):
            second = first + gap_s * FPS
            if first not in ids or second not in ids or not len(ids[first]) or not len(ids[second]):
                continue
            sim = rows[first] @ rows[second].T
            match = ids[first][:, None] == ids[second][None, :]
            same += sim[match].tolist()
            different += sim[~match].tolist()
            for i in np.flatnonzero(match.any(axis=1)):
                queries += 1
                hits += bool(match[i, sim[i].argmax()])
                chance += 1 / len(ids[second])
        figures[f"rank-1 {gap_s} s"] = hits / max(queries, 1)
        figures[f"chance {gap_s} s"] = chance / max(queries, 1)
    figures["same cos"] = float(np.mean(same))
    figures["different cos"] = float(np.mean(different))
    figures["AUC"] = auc(np.asarray(same), np.asarray(different))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"))
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--phases", type=int, choices=range(1, PHASES + 1), default=PHASES)
    args = parser.parse_args()
    for path in (args.shared_data / PETS_VIDEO, args.shared_data / PETS_GT):
        if not path.is_file():
            raise SystemExit(f"needs {path} (../shared/data)")
    print(f"CPU: {flags_summary(cpu_flags())}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared)")
    config = DetectorConfig(weights=args.weights, device="cpu", min_size=args.min_size, threads=args.threads)
    embedded, ids = embed_all(TorchDetector(config), args.shared_data, args.phases)
    print(f"\n{args.weights}, input {args.min_size}; PETS09-S2L1 ground truth, {sum(map(len, ids.values()))} boxes")
    columns = ["AUC", *(f"rank-1 {g} s" for g in GAPS_S), "same cos", "different cos"]
    print("| kind | D | " + " | ".join(f"{c} mean (range over {args.phases} phases)" for c in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    chance = {}
    for kind in EMBEDDING_KINDS:
        per_phase = [phase_figures(embedded[kind], ids, p) for p in range(args.phases)]
        dim = next(r.shape[1] for r in embedded[kind].values())
        cells = [_cell([f[c] for f in per_phase]) for c in columns]
        print(f"| {kind} | {dim} | " + " | ".join(cells) + " |")
        chance = {g: np.mean([f[f"chance {g} s"] for f in per_phase]) for g in GAPS_S}
    print(
        "rank-1 by chance (a random pick among the later frame's people): "
        + ", ".join(f"{g} s {c:.2f}" for g, c in chance.items())
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


if __name__ == "__main__":
    raise SystemExit(main())
