"""The shipped detector's raw detections on every PETS09-S2L1 frame, computed once and cached.

    .venv/bin/python -m bench.pets_detections [--weights models/pedestrian-mnv2.pt] [--min-size 800] [--runtime torch]

Detections go down to the detector's low score floor (what the daemon's tracker sees), together
with the per-class operating thresholds and each detection's appearance embedding (issue 17). The
cache (``var/cache/``) is keyed by the checkpoint's SHA-256, the input size, the floor, the runtime
(``--runtime``: torch, the model as trained, or openvino-fp32 / openvino-bf16, the daemon's CPU
backends) and the embedding kind, so a new model or setting is never served stale results.
Another embedding kind than the default (``embedding_kind``, torch only) re-embeds the same boxes
through ``TorchDetector.embed_boxes`` (cached beside them).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from surveil.config import DetectorConfig
from surveil.detection.embedding import DEFAULT_KIND
from surveil.evaluation.surveillance import PETS_VIDEO
from surveil.types import Detections
from surveil.video.clips import read_clip

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "openvino-fp32", "openvino-bf16")


def cache_path(
    weights: Path, min_size: int, floor: float, runtime: str = "torch", embedding_kind: str = DEFAULT_KIND
) -> Path:
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    tag = "" if runtime == "torch" else f"-{runtime}"
    return REPO / "var" / "cache" / f"pets-s2l1-{digest}-{min_size}-{floor:g}{tag}-emb-{embedding_kind}.npz"


def pets_detections(
    weights: Path,
    shared: Path,
    min_size: int = 800,
    floor: float = 0.1,
    threads: int = 2,
    runtime: str = "torch",
    embedding_kind: str = DEFAULT_KIND,
) -> tuple[dict[int, Detections], np.ndarray, list[str]]:
    """{frame number (1-based): Detections}, the operating thresholds per class id, and the class names.

    ``runtime``: ``torch`` (the model as trained, the default) or ``openvino-fp32`` / ``openvino-bf16``.
    ``embedding_kind``: the kind of ``Detections.embedding`` (another than the default: torch only).
    """
    path = cache_path(weights, min_size, floor, runtime)
    if not path.exists():
        _compute(weights, shared, min_size, floor, threads, path, runtime)
    if embedding_kind != DEFAULT_KIND:
        if runtime != "torch":
            raise SystemExit(f"embedding kind {embedding_kind}: only with the torch runtime")
        base, path = path, cache_path(weights, min_size, floor, runtime, embedding_kind)
        if not path.exists():
            _re_embed(weights, shared, min_size, threads, base, embedding_kind, path)
    data = np.load(path, allow_pickle=False)
    numbers, boxes, scores, classes = data["frame"], data["xyxy"], data["confidence"], data["class_id"]
    embedding = data["embedding"]
    empty = Detections.from_arrays(np.zeros((0, 4)), [], [], np.zeros((0, embedding.shape[1])))
    out = dict.fromkeys(range(1, int(data["frames"]) + 1), empty)
    for n in np.unique(numbers):
        mask = numbers == n
        out[int(n)] = Detections.from_arrays(boxes[mask], scores[mask], classes[mask], embedding[mask])
    return out, data["thresholds"], [str(x) for x in data["class_names"]]


def _compute(weights: Path, shared: Path, min_size: int, floor: float, threads: int, path: Path, runtime: str) -> None:
    from surveil.detection.factory import create_detector

    backend, _, precision = runtime.partition("-")
    detector = create_detector(
        DetectorConfig.model_validate(
            {
                "weights": str(weights),
                "device": "cpu",
                "min_size": min_size,
                "low_score_floor": floor,
                "threads": threads,
                "backend": backend,
                "openvino_precision": precision or "auto",
            }
        ),
        REPO / "var" / "cache" / "models",
    )
    rows: list[tuple[int, Detections]] = []
    started, number = time.monotonic(), 0
    for frame in read_clip(shared / PETS_VIDEO):
        number = frame.index + 1
        rows.append((number, detector.detect([frame.image])[0]))
        if number % 100 == 0:
            print(f"  detected {number} frames, {(time.monotonic() - started) / number:.2f} s/frame", flush=True)
    thresholds = getattr(detector, "operating_thresholds", None)
    if thresholds is None:
        raise RuntimeError(f"the {runtime} detector reports no operating thresholds to cache")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        frames=number,
        frame=np.concatenate([np.full(len(d), n) for n, d in rows]).astype(np.int32),
        xyxy=np.concatenate([d.xyxy for _, d in rows]),
        confidence=np.concatenate([d.confidence for _, d in rows]),
        class_id=np.concatenate([d.class_id for _, d in rows]),
        embedding=np.concatenate([_embedding(d) for _, d in rows]),
        thresholds=thresholds,
        class_names=np.array(detector.class_names),
    )


def _re_embed(weights: Path, shared: Path, min_size: int, threads: int, base: Path, kind: str, path: Path) -> None:
    """The cache ``base`` with its boxes re-embedded in kind ``kind`` (``TorchDetector.embed_boxes``), saved to ``path``."""
    from surveil.detection.torch_detector import TorchDetector

    data = dict(np.load(base, allow_pickle=False))
    numbers, boxes = data["frame"], data["xyxy"]
    config = DetectorConfig(weights=str(weights), device="cpu", min_size=min_size, threads=threads)
    detector = TorchDetector(config, embedding_kind=kind)
    rows: np.ndarray | None = None
    for frame in read_clip(shared / PETS_VIDEO):
        mask = numbers == frame.index + 1
        if mask.any():
            got = detector.embed_boxes([frame.image], [boxes[mask]])[0]
            rows = np.zeros((len(boxes), got.shape[1]), np.float32) if rows is None else rows
            rows[mask] = got
    data["embedding"] = rows if rows is not None else np.zeros((0, 1), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)


def _embedding(detections: Detections) -> np.ndarray:
    if detections.embedding is None:
        raise SystemExit("the detector gave no embeddings: rebuild its graph (python -m surveil.detection.graph build)")
    return detections.embedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--weights", type=Path, default=REPO / "models/pedestrian-mnv2.pt")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--floor", type=float, default=0.1)
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    args = parser.parse_args()
    dets, thresholds, names = pets_detections(
        args.weights, args.shared_data, args.min_size, args.floor, runtime=args.runtime
    )
    print(
        f"{len(dets)} frames, {sum(len(d) for d in dets.values())} detections; operating thresholds "
        f"{dict(zip(names, thresholds.round(3).tolist()))} ({cache_path(args.weights, args.min_size, args.floor, args.runtime)})"
    )


if __name__ == "__main__":
    main()
