"""``surveil train``: fine-tune a Faster R-CNN detector and write a deployable checkpoint.

    surveil train -c configs/train-pedestrian.yaml            # every option is also a flag
    python -m surveil.training.train -c train.yaml --epochs 3
    torchrun --nproc_per_node 2 -m surveil.training.train -c train.yaml   # DistributedDataParallel

Recipe (after torchvision's references/detection): datasets -> transforms that move boxes with
the image -> model with a new head -> freeze policy -> optimiser with linear warm-up then cosine
or step decay -> validation mAP every epoch with early stopping -> full-state checkpoint every
epoch (``--resume``) -> the best epoch's weights, with the F1-optimal score threshold on
validation as operating point, written as a deployable checkpoint (``surveil.detection.checkpoints``).

With ``--cache auto`` (default) and a frozen MobileNetV2 stem, the stem's features are computed
once per image and augmented view (see ``surveil.training.features_cache``): on a CPU this
makes an epoch several times cheaper.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from surveil.datasets import (
    FORMATS,
    DatasetIndex,
    DetectionDataset,
    Sample,
    load_dataset,
    merge_datasets,
    read_rgb,
    split_dataset,
)
from surveil.detection.checkpoints import build_model, save_checkpoint
from surveil.training import features_cache as fc
from surveil.training.architectures import mobilenet_v2_fpn_to_fine_tune, torchvision_to_fine_tune
from surveil.training.transforms import train_transforms

log = logging.getLogger(__name__)

ALIASES = {"fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn_tuned"}
STEM_ARCHITECTURES = ("fasterrcnn_mobilenet_v2_fpn",)

# Every option: (default, help). argparse defaults stay None so that a value from the YAML file
# can be told apart from one given on the command line (command line > file > default).
DEFAULTS: dict[str, Any] = {
    "train_data": [],
    "val_data": [],
    "test_data": [],
    "val_fraction": 0.15,
    "seed": 0,
    "architecture": "fasterrcnn_mobilenet_v2_fpn",
    "backbone_weights": "imagenet",
    "trainable_stages": 1,
    "freeze_bn": True,
    "anchor_sizes": [[32, 64, 128], [192, 320, 512]],
    "aspect_ratios": [1.5, 2.5, 3.5],
    "min_size": 720,
    "max_size": 1280,
    "train_sizes": [480, 608, 736, 864],
    "rpn_post_nms_top_n_train": 1000,
    "rpn_post_nms_top_n_test": 300,
    "box_batch_size_per_image": 256,
    "box_detections_per_img": 100,
    "epochs": 16,
    "batch_size": 4,
    "optimizer": "sgd",
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_iters": 100,
    "lr_schedule": "cosine",
    "lr_steps": [],
    "lr_gamma": 0.1,
    "clip_grad_norm": 10.0,
    "amp": True,
    "patience": 5,
    "early_stop_metric": "map",
    "cache": "auto",
    "cache_dir": None,
    "cache_photometric": 0.3,
    "crop_cells": 0,
    "hflip": True,
    "output_dir": "runs/train",
    "output": None,
    "resume": None,
    "keep_checkpoints": False,
    "device": "auto",
    "workers": 0,
    "threads": None,
    "log_every": 20,
    "max_steps": None,
}

HELP = {
    "train_data": "training dataset, repeatable: [FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...], e.g. yolo:data/PennFudanPed@train or mot:seq*2",
    "val_data": "validation dataset(s), same form; none = a seeded --val-fraction of the training data",
    "test_data": "test dataset(s), scored once at the end with the best weights",
    "val_fraction": "share of the training data held out for validation when no --val-data (a sequence gives its last frames)",
    "seed": "seed for the split, augmentation and sampling",
    "architecture": "fasterrcnn_mobilenet_v2_fpn, fasterrcnn_resnet50_fpn or fasterrcnn_mobilenet_v3_large_fpn",
    "backbone_weights": "imagenet, coco (whole detector, torchvision architectures), none, or a MobileNetV2 state-dict file",
    "trainable_stages": "backbone stages left trainable, from the top (0 = backbone frozen)",
    "freeze_bn": "BatchNorm with frozen statistics and affine parameters (MobileNetV2)",
    "anchor_sizes": "anchor sizes per feature level (MobileNetV2): JSON list of lists",
    "aspect_ratios": "anchor aspect ratios height/width (MobileNetV2): JSON list",
    "min_size": "shorter side of the network input at validation, test and deployment",
    "max_size": "cap on the longer side of the network input",
    "train_sizes": "shorter sides for scale jitter during training: JSON list",
    "rpn_post_nms_top_n_train": "RPN proposals kept per image in training",
    "rpn_post_nms_top_n_test": "RPN proposals kept per image at inference (the main CPU cost lever)",
    "box_batch_size_per_image": "RoIs sampled per image for the box head's loss",
    "box_detections_per_img": "most detections per image",
    "epochs": "training epochs",
    "batch_size": "images per step and process",
    "optimizer": "sgd or adamw",
    "lr": "peak learning rate (scaled by nothing: give the one for your total batch)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "warmup_iters": "steps of linear warm-up from lr/1000",
    "lr_schedule": "cosine or step",
    "lr_steps": "epochs at which the step schedule multiplies the lr by --lr-gamma: JSON list",
    "lr_gamma": "step schedule factor",
    "clip_grad_norm": "clip the gradient norm to this (0 = off)",
    "amp": "mixed precision on CUDA (ignored on CPU)",
    "patience": "stop after this many epochs without a better validation metric (0 = never)",
    "early_stop_metric": "map (COCO mAP@[.5:.95]) or ap50",
    "cache": "auto, on or off: cache the frozen stem's features (MobileNetV2, trainable_stages <= 1)",
    "cache_dir": "keep the feature cache on disk here and reuse it across runs",
    "cache_photometric": "share of cached views with a colour jitter",
    "crop_cells": "random crop of cached features to at most this many 16-px cells per side (0 = off)",
    "hflip": "horizontal flip augmentation",
    "output_dir": "run folder: checkpoint.pt (full state), log.csv, model.pt",
    "output": "deployable checkpoint path (default: OUTPUT_DIR/model.pt)",
    "resume": "full-state checkpoint to continue from (e.g. runs/train/checkpoint.pt)",
    "keep_checkpoints": "also keep each epoch's full state as checkpoint-epochN.pt",
    "device": "auto, cpu, cuda or cuda:N",
    "workers": "data-loading worker processes (uncached path)",
    "threads": "torch CPU threads per process",
    "log_every": "log a progress line every N steps",
    "max_steps": "stop each epoch after this many steps (smoke tests)",
}

PATH_KEYS = ("cache_dir", "output_dir", "output", "resume")
DATA_KEYS = ("train_data", "val_data", "test_data")
JSON_KEYS = ("anchor_sizes", "aspect_ratios", "train_sizes", "lr_steps")
HASH_EXCLUDED = (
    "resume",
    "keep_checkpoints",
    "output",
    "output_dir",
    "cache_dir",
    "device",
    "workers",
    "threads",
    "log_every",
)


class TrainingError(Exception):
    """Training cannot go on; the message says why and what to try."""


# ---------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``surveil train`` options (each is also a key of the ``-c`` YAML file, with '_')."""
    parser.add_argument("-c", "--config", type=Path, help="YAML file of options (keys as below, with '_')")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        helptext = f"{HELP[key]} (default: {default})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif key in DATA_KEYS:
            parser.add_argument(flag, action="append", default=None, metavar="SPEC", help=helptext)
        elif key in JSON_KEYS:
            parser.add_argument(flag, type=json.loads, default=None, metavar="JSON", help=helptext)
        else:
            kind = type(default) if default is not None and not isinstance(default, list) else None
            kind = {"threads": int, "max_steps": int}.get(key, kind)
            parser.add_argument(flag, type=kind, default=None, help=helptext)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """DEFAULTS < the ``-c`` file < explicit flags, as a plain dict (stored in checkpoints)."""
    config = dict(DEFAULTS)
    if getattr(args, "config", None):
        config.update(_read_yaml(Path(args.config)))
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    _check_config(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"{path}: cannot read training config: {exc}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: a training config is a YAML mapping of options")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"{path}: unknown option(s) {', '.join(unknown)}; see `surveil train --help`")
    base = path.resolve().parent
    for key in PATH_KEYS:
        if data.get(key):
            data[key] = str(_relative_to(base, data[key]))
    if data.get("backbone_weights") and str(data["backbone_weights"]) not in ("imagenet", "coco", "none"):
        data["backbone_weights"] = str(_relative_to(base, data["backbone_weights"]))
    for key in DATA_KEYS:
        if key in data:
            data[key] = [_resolve_spec(base, s) for s in _as_list(data[key])]
    return data


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _relative_to(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_spec(base: Path, spec: Any) -> str:
    parsed = parse_data_spec(spec)
    parsed["path"] = str(_relative_to(base, parsed["path"]))
    return format_data_spec(parsed)


def _check_config(config: dict[str, Any]) -> None:
    choices = {
        "optimizer": ("sgd", "adamw"),
        "lr_schedule": ("cosine", "step"),
        "cache": ("auto", "on", "off"),
        "early_stop_metric": ("map", "ap50"),
    }
    for key, allowed in choices.items():
        if config[key] not in allowed:
            raise TrainingError(f"{key} must be one of {', '.join(allowed)}, got {config[key]!r}")
    if not config["train_data"]:
        raise TrainingError("no training data: give --train-data (or train_data: in the -c file)")
    for key in ("epochs", "batch_size"):
        if int(config[key]) < 1:
            raise TrainingError(f"{key} must be >= 1, got {config[key]}")


_SPEC = re.compile(
    rf"^(?:(?P<format>{'|'.join(FORMATS)}|auto):)?(?P<path>.+?)(?:@(?P<split>[^@*%]+))?(?:\*(?P<repeat>\d+))?(?:%(?P<sizes>[\d,]+))?$"
)


def parse_data_spec(spec: Any) -> dict[str, Any]:
    """``[FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...]`` or a mapping {path, format, split, repeat}."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"path", "format", "split", "repeat", "sizes"}
        if unknown or "path" not in spec:
            raise TrainingError(f"dataset entry {spec}: needs `path`, may have format, split, repeat, sizes")
        sizes = [int(v) for v in spec["sizes"]] if spec.get("sizes") else None
        return {
            "path": str(spec["path"]),
            "format": spec.get("format", "auto"),
            "split": spec.get("split"),
            "repeat": int(spec.get("repeat", 1)),
            "sizes": sizes,
        }
    match = _SPEC.match(str(spec))
    if not match:
        raise TrainingError(
            f"cannot read dataset spec {spec!r}; expected [FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...]"
        )
    sizes = [int(v) for v in match["sizes"].split(",")] if match["sizes"] else None
    return {
        "path": match["path"],
        "format": match["format"] or "auto",
        "split": match["split"],
        "repeat": int(match["repeat"] or 1),
        "sizes": sizes,
    }


def format_data_spec(parsed: dict[str, Any]) -> str:
    out = f"{parsed['format']}:{parsed['path']}"
    if parsed.get("split"):
        out += f"@{parsed['split']}"
    if parsed.get("repeat", 1) != 1:
        out += f"*{parsed['repeat']}"
    if parsed.get("sizes"):
        out += "%" + ",".join(str(v) for v in parsed["sizes"])
    return out


def config_sha256(config: dict[str, Any]) -> str:
    relevant = {k: v for k, v in config.items() if k not in HASH_EXCLUDED}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- data


@dataclass
class Splits:
    train: DatasetIndex
    val: DatasetIndex
    test: DatasetIndex | None
    repeats: list[int] = field(default_factory=list)  # per train sample
    sizes: list[list[int] | None] = field(default_factory=list)  # per train sample; None = train_sizes


def load_specs(specs: Sequence[Any]) -> tuple[DatasetIndex, list[int], list[list[int] | None]]:
    indexes, repeats, sizes = [], [], []
    for spec in specs:
        parsed = parse_data_spec(spec)
        index = load_dataset(parsed["path"], parsed["format"], parsed["split"])
        log.info(
            "dataset %s: %d images, %d boxes, %d invalid boxes dropped",
            index.sources[0],
            len(index),
            sum(len(s.boxes) for s in index.samples),
            index.dropped,
        )
        indexes.append(index)
        repeats += [parsed["repeat"]] * len(index)
        sizes += [parsed["sizes"]] * len(index)
    return merge_datasets(indexes), repeats, sizes


def load_splits(config: dict[str, Any]) -> Splits:
    train, repeats, sizes = load_specs(config["train_data"])
    if config["val_data"]:
        val = load_specs(config["val_data"])[0]
    else:
        options = {id(s): (r, z) for s, r, z in zip(train.samples, repeats, sizes)}
        train, val = split_dataset(train, float(config["val_fraction"]), int(config["seed"]))
        repeats = [options[id(s)][0] for s in train.samples]
        sizes = [options[id(s)][1] for s in train.samples]
    test = load_specs(config["test_data"])[0] if config["test_data"] else None
    for name, index in (("val", val), ("test", test)):
        if index is not None and index.class_names != train.class_names:
            raise TrainingError(f"{name} classes {index.class_names} differ from training classes {train.class_names}")
    return Splits(train, val, test, repeats, sizes)


def repeated(items: Sequence[Any], repeats: Sequence[int]) -> list[Any]:
    return [s for s, r in zip(items, repeats) for _ in range(r)]


def collate(batch: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(zip(*batch))


# ---------------------------------------------------------------- model


def arch_kwargs_for(config: dict[str, Any]) -> dict[str, Any]:
    """What the deployable checkpoint needs to rebuild the model (no training-only settings)."""
    kwargs: dict[str, Any] = {
        "min_size": int(config["min_size"]),
        "max_size": int(config["max_size"]),
        "rpn_post_nms_top_n_train": int(config["rpn_post_nms_top_n_train"]),
        "rpn_post_nms_top_n_test": int(config["rpn_post_nms_top_n_test"]),
        "box_batch_size_per_image": int(config["box_batch_size_per_image"]),
        "box_detections_per_img": int(config["box_detections_per_img"]),
    }
    if config["architecture"] == "fasterrcnn_mobilenet_v2_fpn":
        kwargs.update(
            frozen_bn=bool(config["freeze_bn"]),
            anchor_sizes=[[int(s) for s in level] for level in config["anchor_sizes"]],
            aspect_ratios=[float(r) for r in config["aspect_ratios"]],
        )
    return kwargs


def build_for_training(config: dict[str, Any], num_classes: int) -> tuple[nn.Module, str, dict[str, Any]]:
    """(model with pretrained weights and freeze policy applied, architecture name, arch kwargs)."""
    architecture = ALIASES.get(config["architecture"], config["architecture"])
    kwargs = arch_kwargs_for(config)
    weights = config["backbone_weights"]
    if architecture == "fasterrcnn_mobilenet_v2_fpn":
        pretrained: Any = {"imagenet": True, "none": False}.get(str(weights), weights)
        if str(weights) == "coco":
            raise TrainingError("there are no COCO weights for fasterrcnn_mobilenet_v2_fpn; use imagenet or a file")
        model = mobilenet_v2_fpn_to_fine_tune(
            num_classes, pretrained_backbone=pretrained, trainable_stages=int(config["trainable_stages"]), **kwargs
        )
    elif str(weights) == "none":
        model = build_model(architecture, num_classes, **kwargs)
    else:
        try:
            model = torchvision_to_fine_tune(
                architecture,
                num_classes,
                str(weights),
                trainable_backbone_layers=int(config["trainable_stages"]),
                **kwargs,
            )
        except (OSError, RuntimeError) as exc:  # torchvision's download failed (offline)
            raise TrainingError(
                f"cannot load the {weights} weights for {architecture}: {str(exc).splitlines()[0]}. Offline, copy "
                f"torchvision's weight file into {Path(torch.hub.get_dir()) / 'checkpoints'} first."
            ) from None
    return model, architecture, kwargs


def use_cache(config: dict[str, Any], model: nn.Module) -> bool:
    stem_ok = hasattr(model.backbone, "forward_from_stem") and model.backbone.stem_is_frozen()
    if config["cache"] == "on" and not stem_ok:
        raise TrainingError(
            "--cache on needs fasterrcnn_mobilenet_v2_fpn with --trainable-stages 0 or 1 (a frozen stem)"
        )
    return config["cache"] == "on" or (config["cache"] == "auto" and stem_ok)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(config: dict[str, Any], params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))
    return torch.optim.SGD(
        params, lr=float(config["lr"]), momentum=float(config["momentum"]), weight_decay=float(config["weight_decay"])
    )


def lr_factor(step: int, steps_per_epoch: int, config: dict[str, Any]) -> float:
    """Linear warm-up from 1/1000, then cosine to 0 or step decay (by epoch)."""
    warmup = int(config["warmup_iters"])
    if step < warmup:
        alpha = step / warmup
        return 0.001 * (1 - alpha) + alpha
    if config["lr_schedule"] == "step":
        epoch = step // max(1, steps_per_epoch)
        return float(config["lr_gamma"]) ** sum(epoch >= int(m) for m in config["lr_steps"])
    total = max(1, int(config["epochs"]) * steps_per_epoch - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / total)))


# ---------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    info = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    log.info("distributed: rank %d of %d (%s)", info.rank, info.world_size, backend)
    return info


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL wants each process on its own GPU before init
    return device


def broadcast_flag(flag: bool, info: Dist) -> bool:
    if info.world_size == 1:
        return flag
    t = torch.tensor([1 if flag else 0])
    dist.broadcast(t, src=0)
    return bool(t.item())


def reduce_mean(values: dict[str, float], info: Dist) -> dict[str, float]:
    if info.world_size == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}


# ---------------------------------------------------------------- one step, one epoch


@dataclass
class EpochStats:
    loss: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    dropped: int = 0
    seconds: float = 0.0


def check_finite(losses: dict[str, torch.Tensor], total: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(total):
        parts = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        raise TrainingError(
            f"loss is {total.item()} at epoch {epoch}, step {step} ({parts}); training stopped. "
            "Lower --lr, raise --warmup-iters or set --clip-grad-norm, and check the boxes of the data."
        )


@dataclass
class Trainer:
    """What one optimisation step needs; ``module`` is what the forward pass calls (maybe DDP)."""

    config: dict[str, Any]
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    info: Dist
    step: int = 0

    def optimise(self, losses: dict[str, torch.Tensor], epoch: int) -> float:
        total = sum(losses.values())
        check_finite(losses, total, epoch, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        clip = float(self.config["clip_grad_norm"])
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return float(total.item())

    def autocast(self) -> Any:
        if self.device.type == "cuda" and self.config["amp"]:
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()


def _accumulate(stats: EpochStats, losses: dict[str, torch.Tensor], total: float, images: int) -> None:
    stats.loss += total
    for k, v in losses.items():
        stats.parts[k] = stats.parts.get(k, 0.0) + float(v.item())
    stats.steps += 1
    stats.images += images


def _progress(trainer: Trainer, epoch: int, stats: EpochStats, steps_in_epoch: int, start: float) -> None:
    every = int(trainer.config["log_every"])
    if not trainer.info.main or (stats.steps % every and stats.steps != steps_in_epoch):
        return
    elapsed = time.monotonic() - start
    per_step = elapsed / stats.steps
    epochs_left = int(trainer.config["epochs"]) - epoch - 1
    eta_epoch = per_step * (steps_in_epoch - stats.steps)
    eta_total = eta_epoch + per_step * steps_in_epoch * epochs_left
    log.info(
        "epoch %d [%d/%d] loss %.4f lr %.5f | %.2f s/step | epoch ETA %s, run ETA %s (without validation)",
        epoch,
        stats.steps,
        steps_in_epoch,
        stats.loss / stats.steps,
        trainer.optimizer.param_groups[0]["lr"],
        per_step,
        _hms(eta_epoch),
        _hms(eta_total),
    )


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


def train_one_epoch_cached(trainer: Trainer, views: list[list[fc.CachedView]], epoch: int) -> EpochStats:
    """One epoch from cached stem features (trainer.module is a StemDetector, maybe in DDP)."""
    rng = random.Random(int(trainer.config["seed"]) * 7919 + epoch * 104729 + trainer.info.rank)
    batches, dropped = fc.epoch_batches(
        views, int(trainer.config["batch_size"]), int(trainer.config["crop_cells"]), rng
    )
    steps = _limit(len(batches), trainer.config)
    stats, start = EpochStats(dropped=dropped), time.monotonic()
    trainer.module.train()
    for batch in batches[:steps]:
        stems, sizes, targets = fc.collate_views(batch)
        stems = stems.to(trainer.device)
        targets = [{k: v.to(trainer.device) for k, v in t.items()} for t in targets]
        with trainer.autocast():
            losses = trainer.module(stems, sizes, targets)
        total = trainer.optimise(losses, epoch)
        _accumulate(stats, losses, total, len(batch))
        _progress(trainer, epoch, stats, steps, start)
    stats.seconds = time.monotonic() - start
    return stats


def train_one_epoch_images(trainer: Trainer, loader: Any, epoch: int) -> EpochStats:
    """One epoch on augmented images through the whole model (trainer.module: the detector, maybe in DDP)."""
    steps = _limit(len(loader), trainer.config)
    stats, start = EpochStats(), time.monotonic()
    trainer.module.train()
    for n, (images, targets) in enumerate(loader):
        if n >= steps:
            break
        stats.dropped += sum(int(t["num_dropped"]) for t in targets)
        images = [img.to(trainer.device) for img in images]
        targets = [
            {"boxes": t["boxes"].as_subclass(torch.Tensor).to(trainer.device), "labels": t["labels"].to(trainer.device)}
            for t in targets
        ]
        with trainer.autocast():
            losses = trainer.module(images, targets)
        total = trainer.optimise(losses, epoch)
        _accumulate(stats, losses, total, len(images))
        _progress(trainer, epoch, stats, steps, start)
    stats.seconds = time.monotonic() - start
    return stats


def _limit(steps: int, config: dict[str, Any]) -> int:
    return min(steps, int(config["max_steps"])) if config.get("max_steps") else steps


# ---------------------------------------------------------------- evaluation


def targets_of(samples: Sequence[Sample]) -> list[Any]:
    from surveil.evaluation.metrics import Target

    return [Target(s.boxes, s.labels) for s in samples]


def predictions_of(detections: list[dict[str, torch.Tensor]]) -> list[Any]:
    from surveil.evaluation.metrics import Prediction

    return [
        Prediction(d["boxes"].cpu().numpy(), d["scores"].cpu().numpy(), d["labels"].cpu().numpy()) for d in detections
    ]


def predict_samples(model: nn.Module, samples: Sequence[Sample], device: torch.device) -> list[Any]:
    """Full-model predictions on image files (the uncached path, and the test set)."""
    from surveil.evaluation.predict import predict

    out = []
    for s in samples:  # one image in memory at a time
        image = torch.from_numpy(read_rgb(s.image_path)).permute(2, 0, 1).float().div_(255.0)
        out += predict(model, [image], batch_size=1, device=device)
    return out


def score(predictions: list[Any], samples: Sequence[Sample], labels: list[str]) -> Any:
    from surveil.evaluation.metrics import evaluate

    return evaluate(predictions, targets_of(samples), labels, score_thresholds=0.5)


def summary(report: Any) -> dict[str, Any]:
    best = [c.best_f1 for c in report.classes if c.support]
    return {"map": report.map, "ap50": report.ap50, "best_f1": float(np.mean(best)) if best else None}


# ---------------------------------------------------------------- checkpoints and log


def save_state(path: Path, trainer: Trainer, epoch: int, config: dict[str, Any], progress: dict[str, Any]) -> None:
    """Full training state; loads with torch.load(weights_only=True)."""
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "epoch": epoch,
        "step": trainer.step,
        "config": config,
        **progress,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path, trainer: Trainer) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["lr_scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.step = int(state["step"])
    return state


CSV_FIELDS = [
    "epoch",
    "step",
    "lr",
    "loss",
    "loss_classifier",
    "loss_box_reg",
    "loss_objectness",
    "loss_rpn_box_reg",
    "val_map",
    "val_ap50",
    "val_best_f1",
    "images",
    "dropped_boxes",
    "train_seconds",
    "val_seconds",
]


def append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


# ---------------------------------------------------------------- the run


@dataclass
class Progress:
    best_metric: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    best_model: dict[str, torch.Tensor] | None = None
    best_val: dict[str, Any] = field(default_factory=dict)
    seconds_per_epoch: list[float] = field(default_factory=list)

    def as_state(self) -> dict[str, Any]:
        return {
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_model": self.best_model,
            "best_val": self.best_val,
            "seconds_per_epoch": self.seconds_per_epoch,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        return cls(
            state["best_metric"],
            state["best_epoch"],
            state["bad_epochs"],
            state.get("best_model"),
            state.get("best_val", {}),
            list(state.get("seconds_per_epoch", [])),
        )

    def update(self, metric: float, epoch: int, model: nn.Module, val: dict[str, Any]) -> bool:
        """Record an epoch's validation; True when it is the best so far."""
        if metric > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_epochs, self.best_val = metric, epoch, 0, val
            self.best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return True
        self.bad_epochs += 1
        return False


@dataclass
class Data:
    """The training data in the form the chosen path consumes."""

    views: list[list[fc.CachedView]] | None = None  # cached path: this process's shard
    loader: Any = None  # image path
    val_views: list[fc.CachedView] | None = None


def prepare_data(config: dict[str, Any], splits: Splits, model: nn.Module, cached: bool, info: Dist) -> Data:
    train_samples = repeated(splits.train.samples, splits.repeats)
    seed = int(config["seed"])
    if cached:
        cache_dir = Path(config["cache_dir"]) if config["cache_dir"] else None
        sizes = [z or list(config["train_sizes"]) for z in repeated(splits.sizes, splits.repeats)]
        per_rank = len(train_samples) // info.world_size
        mine = fc.shard(list(zip(train_samples, sizes)), info.rank, info.world_size)[:per_rank]
        unique = list({id(s): (s, z) for s, z in mine}.values())  # a repeated sample is cached once
        computed = fc.build_views(
            model,
            [s for s, _ in unique],
            [z for _, z in unique],
            bool(config["hflip"]),
            float(config["cache_photometric"]),
            seed,
            cache_dir,
        )
        by_id = {id(s): v for (s, _), v in zip(unique, computed)}
        views = [by_id[id(s)] for s, _ in mine]
        val_views = None
        if info.main and splits.val.samples:
            val = fc.build_views(model, splits.val.samples, [int(config["min_size"])], False, 0.0, seed, cache_dir)
            val_views = [v[0] for v in val]
        log.info("feature cache: %d training views, %.0f MB", sum(map(len, views)), fc.cache_bytes(views) / 2**20)
        return Data(views=views, val_views=val_views)
    return Data(loader=_image_loader(config, train_samples, info))


def _image_loader(config: dict[str, Any], samples: list[Sample], info: Dist) -> Any:
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    transforms = train_transforms(config["train_sizes"], int(config["max_size"]), hflip=0.5 if config["hflip"] else 0.0)
    dataset = DetectionDataset(samples, transforms)
    sampler = (
        DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=int(config["seed"]), drop_last=True)
        if info.world_size > 1
        else None
    )
    generator = torch.Generator().manual_seed(int(config["seed"]))
    return DataLoader(
        dataset,
        batch_size=int(config["batch_size"]),
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=int(config["workers"]),
        collate_fn=collate,
        generator=generator,
        drop_last=False,
    )


def validate(
    config: dict[str, Any], model: nn.Module, data: Data, splits: Splits, device: torch.device
) -> tuple[dict[str, Any], Any]:
    labels = splits.train.label_map
    if data.val_views is not None:
        preds = predictions_of(fc.predict_views(model, data.val_views))
    else:
        preds = predict_samples(model, splits.val.samples, device)
    report = score(preds, splits.val.samples, labels)
    return summary(report), report


def run_epochs(
    config: dict[str, Any],
    trainer: Trainer,
    data: Data,
    splits: Splits,
    progress: Progress,
    start_epoch: int,
    out_dir: Path,
) -> None:
    info = trainer.info
    for epoch in range(start_epoch, int(config["epochs"])):
        torch.manual_seed(int(config["seed"]) * 1000 + epoch * 10 + info.rank)
        if data.loader is not None and hasattr(data.loader.sampler, "set_epoch"):
            data.loader.sampler.set_epoch(epoch)
        stats = (
            train_one_epoch_cached(trainer, data.views, epoch)
            if data.views is not None
            else train_one_epoch_images(trainer, data.loader, epoch)
        )
        parts = reduce_mean({k: v / max(1, stats.steps) for k, v in stats.parts.items()}, info)
        stop = False
        if info.main:
            stop = _end_of_epoch(config, trainer, data, splits, progress, epoch, stats, parts, out_dir)
        if broadcast_flag(stop, info):
            log.info(
                "early stopping after epoch %d: no better validation %s for %d epochs (best: epoch %d, %.4f)",
                epoch,
                config["early_stop_metric"],
                progress.bad_epochs,
                progress.best_epoch,
                progress.best_metric,
            )
            break


def _end_of_epoch(
    config: dict[str, Any],
    trainer: Trainer,
    data: Data,
    splits: Splits,
    progress: Progress,
    epoch: int,
    stats: EpochStats,
    parts: dict[str, float],
    out_dir: Path,
) -> bool:
    start = time.monotonic()
    val, _ = validate(config, trainer.model, data, splits, trainer.device)
    val_seconds = time.monotonic() - start
    metric = val[config["early_stop_metric"]] or 0.0
    improved = progress.update(metric, epoch, trainer.model, val)
    progress.seconds_per_epoch.append(stats.seconds)
    log.info(
        "epoch %d done: loss %.4f, %.1f s training (%.2f s/image), val mAP %.4f AP50 %.4f best F1 %.4f (%.1f s)%s",
        epoch,
        stats.loss / max(1, stats.steps),
        stats.seconds,
        stats.seconds / max(1, stats.images),
        val["map"] or 0.0,
        val["ap50"] or 0.0,
        val["best_f1"] or 0.0,
        val_seconds,
        "  *best*" if improved else "",
    )
    append_csv(
        out_dir / "log.csv",
        {
            "epoch": epoch,
            "step": trainer.step,
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "loss": stats.loss / max(1, stats.steps),
            **parts,
            "val_map": val["map"],
            "val_ap50": val["ap50"],
            "val_best_f1": val["best_f1"],
            "images": stats.images,
            "dropped_boxes": stats.dropped,
            "train_seconds": round(stats.seconds, 2),
            "val_seconds": round(val_seconds, 2),
        },
    )
    save_state(out_dir / "checkpoint.pt", trainer, epoch, config, progress.as_state())
    if config["keep_checkpoints"]:
        shutil.copyfile(out_dir / "checkpoint.pt", out_dir / f"checkpoint-epoch{epoch}.pt")
    patience = int(config["patience"])
    return patience > 0 and progress.bad_epochs >= patience


def finish(
    config: dict[str, Any],
    trainer: Trainer,
    data: Data,
    splits: Splits,
    progress: Progress,
    architecture: str,
    arch_kwargs: dict[str, Any],
    out_dir: Path,
) -> Path:
    """Best weights -> operating thresholds on val -> test report -> deployable checkpoint."""
    model = trainer.model
    if progress.best_model is not None:
        model.load_state_dict(progress.best_model)
    labels = splits.train.label_map
    _, val_report = validate(config, model, data, splits, trainer.device)
    thresholds = {name: float(t) for name, t in val_report.best_thresholds().items()}
    metrics: dict[str, Any] = {
        "val": val_report.to_dict(),
        "best_epoch": progress.best_epoch,
        "seconds_per_epoch": float(np.median(progress.seconds_per_epoch)) if progress.seconds_per_epoch else None,
        "epochs_run": len(progress.seconds_per_epoch),
        "train_images": len(splits.train),
        "val_images": len(splits.val),
        "datasets": list(splits.train.sources),
    }
    if splits.test is not None:
        test_report = score(predict_samples(model, splits.test.samples, trainer.device), splits.test.samples, labels)
        metrics["test"] = test_report.to_dict()
        log.info("test (%d images):\n%s", len(splits.test), test_report.format_table())
    log.info("validation with the best weights (epoch %d):\n%s", progress.best_epoch, val_report.format_table())
    output = Path(config["output"]) if config["output"] else out_dir / "model.pt"
    save_checkpoint(output, model, architecture, labels, arch_kwargs, thresholds, metrics, config_sha256(config))
    log.info(
        "deployable checkpoint %s (%.1f MB), operating thresholds %s", output, output.stat().st_size / 2**20, thresholds
    )
    return output


def make_trainer(
    config: dict[str, Any], model: nn.Module, module: nn.Module, device: torch.device, info: Dist, steps_per_epoch: int
) -> Trainer:
    optimizer = make_optimizer(config, trainable_parameters(model))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, config))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and bool(config["amp"]))
    return Trainer(config, model, module, optimizer, scheduler, scaler, device, info)


def _wrap(module: nn.Module, device: torch.device, info: Dist) -> nn.Module:
    if info.world_size == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def train(config: dict[str, Any]) -> Path | None:
    """The whole run; returns the deployable checkpoint's path (on the main process)."""
    device = pick_device(str(config["device"]), int(os.environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device)
    try:
        return _train(config, device, info)
    finally:
        if info.world_size > 1:
            dist.destroy_process_group()


def _train(config: dict[str, Any], device: torch.device, info: Dist) -> Path | None:
    if config["threads"]:
        torch.set_num_threads(int(config["threads"]))
    random.seed(int(config["seed"]))
    torch.manual_seed(int(config["seed"]))
    out_dir = Path(config["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = load_splits(config)
    log.info(
        "classes %s; %d train, %d val%s images",
        splits.train.class_names,
        len(splits.train),
        len(splits.val),
        f", {len(splits.test)} test" if splits.test else "",
    )
    model, architecture, arch_kwargs = build_for_training(config, len(splits.train.label_map))
    model.to(device)
    cached = use_cache(config, model)
    log.info(
        "%s, %.2f M trainable of %.2f M parameters, %s",
        architecture,
        sum(p.numel() for p in trainable_parameters(model)) / 1e6,
        sum(p.numel() for p in model.parameters()) / 1e6,
        "training from cached stem features" if cached else "training on images",
    )
    data = prepare_data(config, splits, model, cached, info)
    steps_per_epoch = _limit(
        math.ceil(len(data.views) / int(config["batch_size"])) if cached else len(data.loader), config
    )
    module = _wrap(fc.StemDetector(model) if cached else model, device, info)
    trainer = make_trainer(config, model, module, device, info, steps_per_epoch)
    progress, start_epoch = Progress(), 0
    if config["resume"]:
        state = load_state(Path(config["resume"]), trainer)
        progress, start_epoch = Progress.from_state(state), int(state["epoch"]) + 1
        log.info("resumed from %s: epoch %d, step %d", config["resume"], start_epoch, trainer.step)
    run_epochs(config, trainer, data, splits, progress, start_epoch, out_dir)
    if not info.main:
        return None
    return finish(config, trainer, data, splits, progress, architecture, arch_kwargs, out_dir)


def main(args: argparse.Namespace) -> int:
    """Entry point for ``surveil train``; returns the exit status."""
    try:
        config = resolve_config(args)
        output = train(config)
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    if output is not None:
        log.info("done: %s", output)
    return 0


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="surveil train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{rank}] %(levelname)s %(name)s: %(message)s")
    return main(args)


if __name__ == "__main__":
    raise SystemExit(_cli())
