"""`surveil eval` and `surveil export`: argument parsers and entry points."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surveil.detection.input_size import set_input_size
from surveil.evaluation.metrics import BACKGROUND, DEFAULT_SCORE_THRESHOLD, EvalReport, Prediction, Target, evaluate
from surveil.evaluation.predict import bgr_to_tensor, predict, read_image

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
DEFAULT_SHARED_DATA = Path("../shared/data")
CHUNK = 16  # images decoded at a time, so big test sets do not sit in memory as tensors
SYNONYMS = {"pedestrian": "person", "people": "person", "human": "person"}


# ------------------------------------------------------------------------------- eval


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="deployable checkpoint (.pt) written by `surveil train`")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="labelled dataset: a folder or a COCO json")
    source.add_argument("--pets", action="store_true", help="score on the PETS09-S2L1 surveillance test bed instead")
    parser.add_argument(
        "--format", default="auto", choices=["auto", "coco", "voc", "yolo", "mot"], help="dataset format"
    )
    parser.add_argument("--split", default=None, help="dataset split, e.g. test")
    parser.add_argument("--min-size", type=int, default=None, help="detector input: shorter side in pixels")
    parser.add_argument(
        "--max-size", type=int, default=None, help="detector input: longer-side cap (default grows with --min-size)"
    )
    parser.add_argument("--score-threshold", type=float, default=None, help="one operating threshold for all classes "
                        "(default: the checkpoint's per-class score_thresholds, else 0.5)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument(
        "--shared-data", type=Path, default=DEFAULT_SHARED_DATA, help="folder holding the PETS data (--pets)"
    )
    parser.add_argument("--every", type=int, default=5, help="--pets: score every Nth frame")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def eval_main(args: argparse.Namespace) -> int:
    from surveil.detection.checkpoints import ModelLoadError, load_checkpoint_model

    try:
        model, payload = load_checkpoint_model(args.weights)
        if args.min_size is not None:
            set_input_size(model, args.min_size, args.max_size)
        class_names, loaders, targets = _eval_data(args)
    except (ModelLoadError, OSError, ValueError) as exc:
        print(f"surveil eval: {exc}", file=sys.stderr)
        return EXIT_USAGE
    mapping = align_labels(payload["labels"], class_names)
    started = time.perf_counter()
    raw = _predict_chunked(model, loaders, args.batch_size, args.device)
    seconds = time.perf_counter() - started
    predictions = [remap_prediction(p, mapping) for p in raw]
    thresholds = _operating_thresholds(args.score_threshold, payload, mapping, class_names)
    report = evaluate(predictions, targets, class_names, thresholds)
    print(report.format_table())
    if args.json is not None:
        _write_json(args.json, report, args, payload, seconds / max(len(targets), 1))
    return EXIT_OK


def _eval_data(args: argparse.Namespace) -> tuple[list[str], list[Callable[[], torch.Tensor]], list[Target]]:
    """(class names with background, one image loader per image, targets)."""
    if args.pets:
        from surveil.evaluation.surveillance import CLASS_NAMES, load_pets_s2l1

        frames, targets = load_pets_s2l1(args.shared_data, every=args.every)
        return list(CLASS_NAMES), [_frame_loader(f) for f in frames], targets
    from surveil.datasets import load_dataset

    index = load_dataset(args.data, fmt=args.format, split=args.split)
    if not index.samples:
        raise ValueError(f"dataset {args.data} (split {args.split}) has no images")
    names = list(index.class_names)
    names = names if names and names[0] == BACKGROUND else [BACKGROUND, *names]
    targets = [Target(s.boxes, s.labels) for s in index.samples]
    return names, [_path_loader(s.image_path) for s in index.samples], targets


def _frame_loader(frame: np.ndarray) -> Callable[[], torch.Tensor]:
    return lambda: bgr_to_tensor(frame)


def _path_loader(path: Path) -> Callable[[], torch.Tensor]:
    return lambda: read_image(path)


def _predict_chunked(
    model: torch.nn.Module, loaders: list[Callable[[], torch.Tensor]], batch_size: int, device: str
) -> list[Prediction]:
    out: list[Prediction] = []
    for start in range(0, len(loaders), CHUNK):
        images = [load() for load in loaders[start : start + CHUNK]]
        out.extend(predict(model, images, batch_size=batch_size, device=device))
    return out


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return SYNONYMS.get(name, name)


def align_labels(model_labels: list[str], data_names: list[str]) -> dict[int, int]:
    """Model label id -> dataset label id, by class name ('pedestrian' and 'person' are one).

    With one class on each side the two are paired whatever their names. Model classes the
    dataset lacks are dropped from the predictions.
    """
    model_fg = {i: _canonical(n) for i, n in enumerate(model_labels) if i and n not in ("N/A", BACKGROUND)}
    data_fg = {_canonical(n): i for i, n in enumerate(data_names) if i}
    if len(model_fg) == 1 and len(data_fg) == 1:
        return {next(iter(model_fg)): next(iter(data_fg.values()))}
    mapping = {i: data_fg[n] for i, n in model_fg.items() if n in data_fg}
    missing = sorted(set(data_fg) - {model_fg[i] for i in mapping})
    if missing:
        log.warning("the model has no class for dataset classes %s: they can only be missed", missing)
    return mapping


def remap_prediction(pred: Prediction, mapping: dict[int, int]) -> Prediction:
    keep = np.isin(pred.labels, list(mapping))
    labels = np.array([mapping[int(label)] for label in pred.labels[keep]], dtype=np.int64)
    return Prediction(pred.boxes[keep], pred.scores[keep], labels)


def _operating_thresholds(
    override: float | None, payload: dict[str, Any], mapping: dict[int, int], class_names: list[str]
) -> dict[str, float] | float:
    if override is not None:
        return override
    stored = payload.get("score_thresholds") or {}
    if not stored:
        log.info("checkpoint has no score_thresholds: operating threshold %.2f", DEFAULT_SCORE_THRESHOLD)
        return DEFAULT_SCORE_THRESHOLD
    labels = payload["labels"]
    return {class_names[d]: float(stored[labels[m]]) for m, d in mapping.items() if labels[m] in stored}


def _write_json(
    path: Path, report: EvalReport, args: argparse.Namespace, payload: dict[str, Any], sec_per_image: float
) -> None:
    doc = {
        **report.to_dict(),
        "weights": str(args.weights),
        "architecture": payload["architecture"],
        "data": "PETS09-S2L1" if args.pets else str(args.data),
        "split": args.split,
        "min_size": args.min_size,
        "ms_per_image": 1000 * sec_per_image,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


# ----------------------------------------------------------------------------- export


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="deployable checkpoint (.pt) written by `surveil train`")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"], help="export format")
    parser.add_argument(
        "--output", required=True, type=Path, help="file to write; a <output>.json sidecar goes beside it"
    )
    parser.add_argument(
        "--min-size", type=int, default=None, help="bake this input size (shorter side) into the export"
    )
    parser.add_argument("--max-size", type=int, default=None, help="longer-side cap (default grows with --min-size)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 11)")


def export_main(args: argparse.Namespace) -> int:
    from surveil.detection.checkpoints import ModelLoadError
    from surveil.detection.export import ExportError, export_checkpoint, sidecar_path

    try:
        path = export_checkpoint(args.weights, args.format, args.output, args.min_size, args.max_size, args.opset)
    except (ExportError, ModelLoadError, OSError, ValueError) as exc:
        print(f"surveil export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path} and {sidecar_path(path)}")
    return EXIT_OK
