"""Does the checkpoint's operating threshold still hold under a faster runtime?

    .venv/bin/python -m bench.operating_threshold [--config configs/train-pedestrian.yaml] [--min-sizes 720 800]

The shipped checkpoint stores one score threshold per class: the one that maximised F1 on its
validation split, found by ``surveil train`` with the eager fp32 model. A runtime that computes
in lower precision (OpenVINO bf16) moves scores a little, so the F1-optimal threshold may move
too. This bench rebuilds the same validation split from the training config (same data, same
``val_fraction`` and seed; PETS09-S2L1 is not in it) and, for the eager model and each other
runtime, prints the F1-optimal threshold, the best F1, and the F1 at the checkpoint's stored
threshold. If F1 at the stored threshold is within a hair of the runtime's own best, the stored
threshold stands for that runtime.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
from pathlib import Path

from bench.images import read_bgr
from surveil.config import DetectorConfig
from surveil.detection.checkpoints import read_checkpoint
from surveil.detection.factory import OnnxDetector
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation.metrics import Prediction, Target, evaluate
from surveil.training.train import DEFAULTS, _read_yaml, load_splits

REPO = Path(__file__).resolve().parents[1]


def training_config(config_path: Path) -> dict:
    """The training config as ``surveil train`` reads it (defaults, then the file)."""
    config = dict(DEFAULTS)
    config.update(_read_yaml(config_path))
    return config


def validation_split(config_path: Path):
    return load_splits(training_config(config_path)).val


def runtimes(config: DetectorConfig, cache: Path):
    yield "torch eager (as trained)", lambda: TorchDetector(config, optimize=False)
    if importlib.util.find_spec("openvino") is None:
        print("(openvino not installed: only the eager model)")
        return
    for precision in ("fp32", "bf16"):
        cfg = config.model_copy(update={"backend": "openvino", "openvino_precision": precision})
        yield f"openvino {precision}", lambda cfg=cfg: OnnxDetector(cfg, "openvino", cache)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs/train-pedestrian.yaml")
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"))
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[720, 800])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    val = validation_split(args.config)
    images = [read_bgr(sample.image_path) for sample in val.samples]
    targets = [Target(sample.boxes, sample.labels) for sample in val.samples]
    stored = dict(read_checkpoint(args.weights).get("score_thresholds", {}))
    names = list(val.label_map)
    print(
        f"validation split: {len(images)} images, {sum(len(t.boxes) for t in targets)} boxes; stored thresholds {stored}"
    )
    print("| runtime | input | class | best F1 | at threshold | F1 at the stored threshold | AP50 |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        for min_size in args.min_sizes:
            config = DetectorConfig(
                weights=args.weights,
                device="cpu",
                min_size=min_size,
                batch_size=1,
                threads=args.threads,
                low_score_floor=0.01,
                score_threshold=0.01,
            )
            for name, make in runtimes(config, Path(cache)):
                detector = make()
                found = [detector.detect([image])[0] for image in images]
                predictions = [Prediction(d.xyxy, d.confidence, d.class_id) for d in found]
                report = evaluate(predictions, targets, names, score_thresholds=stored)
                for cls in report.classes:
                    print(
                        f"| {name} | {min_size} | {cls.name} | {cls.best_f1:.3f} | {cls.best_threshold:.3f} "
                        f"| {cls.f1:.3f} (at {cls.threshold:.3f}) | {cls.ap50:.3f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
