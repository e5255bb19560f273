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

Layout: the options are :class:`surveil.training.config.TrainConfig`; one epoch and one
evaluation are in ``engine.py``; torchrun/DDP helpers in ``distributed.py``; this module builds
the data and the model and runs the epochs.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from surveil.datasets import DatasetIndex, DetectionDataset, Sample, load_dataset, merge_datasets, split_dataset
from surveil.detection.checkpoints import build_model, save_checkpoint, save_whole
from surveil.evaluation.metrics import EvalReport
from surveil.training import features_cache as fc
from surveil.training.architectures import (
    mobilenet_v2_fpn_to_fine_tune,
    pretrained_weights_url,
    torchvision_to_fine_tune,
)
from surveil.training.config import (
    DEFAULTS,
    TrainConfig,
    TrainingError,
    add_arguments,
    parse_data_spec,
    read_yaml,
    resolve_config,
)
from surveil.training.distributed import (
    Dist,
    broadcast_flag,
    init_distributed,
    pick_device,
    reduce_mean,
    shutdown,
    wrap,
)
from surveil.training.engine import EpochStats, Trainer, evaluate, steps_limit, train_one_epoch, trainable_parameters
from surveil.training.transforms import train_transforms

__all__ = [
    "DEFAULTS",
    "TrainConfig",
    "TrainingError",
    "add_arguments",
    "load_splits",
    "main",
    "resolve_config",
    "train",
]

log = logging.getLogger(__name__)

ALIASES = {"fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn_tuned"}
STEM_ARCHITECTURES = ("fasterrcnn_mobilenet_v2_fpn", "fasterrcnn_mobilenet_v2_fpn_s8")

# The bench scripts (bench/operating_threshold.py) read a training config file this way.
_read_yaml = read_yaml


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


def load_splits(config: TrainConfig | Mapping[str, Any]) -> Splits:
    """The train, validation and test indexes (plain options, as the bench scripts pass them, are validated first)."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_options(config)
    train, repeats, sizes = load_specs(config.train_data)
    if config.val_data:
        val = load_specs(config.val_data)[0]
    else:
        options = {id(s): (r, z) for s, r, z in zip(train.samples, repeats, sizes)}
        train, val = split_dataset(train, float(config.val_fraction), config.seed)
        repeats = [options[id(s)][0] for s in train.samples]
        sizes = [options[id(s)][1] for s in train.samples]
    test = load_specs(config.test_data)[0] if config.test_data else None
    for name, index in (("val", val), ("test", test)):
        if index is not None and index.class_names != train.class_names:
            raise TrainingError(f"{name} classes {index.class_names} differ from training classes {train.class_names}")
    return Splits(train, val, test, repeats, sizes)


def repeated(items: Sequence[Any], repeats: Sequence[int]) -> list[Any]:
    return [s for s, r in zip(items, repeats) for _ in range(r)]


def collate(batch: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(zip(*batch))


# ---------------------------------------------------------------- model


def arch_kwargs_for(config: TrainConfig) -> dict[str, Any]:
    """What the deployable checkpoint needs to rebuild the model (no training-only settings)."""
    kwargs: dict[str, Any] = {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "rpn_post_nms_top_n_train": config.rpn_post_nms_top_n_train,
        "rpn_post_nms_top_n_test": config.rpn_post_nms_top_n_test,
        "box_batch_size_per_image": config.box_batch_size_per_image,
        "box_detections_per_img": config.box_detections_per_img,
    }
    if config.architecture in STEM_ARCHITECTURES:
        kwargs.update(
            frozen_bn=config.freeze_bn,
            anchor_sizes=[[int(s) for s in level] for level in config.anchor_sizes],
            aspect_ratios=[float(r) for r in config.aspect_ratios],
        )
        if config.neck_channels is not None:
            kwargs["out_channels"] = config.neck_channels
        if config.box_head_size is not None:
            kwargs["representation_size"] = config.box_head_size
    return kwargs


def build_for_training(config: TrainConfig, num_classes: int) -> tuple[nn.Module, str, dict[str, Any]]:
    """(model with pretrained weights and freeze policy applied, architecture name, arch kwargs)."""
    architecture = ALIASES.get(config.architecture, config.architecture)
    kwargs = arch_kwargs_for(config)
    weights = config.backbone_weights
    if architecture in STEM_ARCHITECTURES and str(weights) == "coco":
        raise TrainingError(f"there are no COCO weights for {architecture}; use imagenet or a file")
    try:
        model = _pretrained_model(config, architecture, num_classes, kwargs)
    except (OSError, RuntimeError) as exc:  # the download failed (offline): OSError covers URLError
        raise TrainingError(offline_message(architecture, str(weights), exc)) from None
    return model, architecture, kwargs


def _pretrained_model(config: TrainConfig, architecture: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    weights = config.backbone_weights
    if architecture in STEM_ARCHITECTURES:
        pretrained: Any = {"imagenet": True, "none": False}.get(str(weights), weights)
        return mobilenet_v2_fpn_to_fine_tune(
            num_classes,
            pretrained_backbone=pretrained,
            trainable_stages=config.trainable_stages,
            architecture=architecture,
            **kwargs,
        )
    if str(weights) == "none":
        return build_model(architecture, num_classes, **kwargs)
    return torchvision_to_fine_tune(
        architecture, num_classes, str(weights), trainable_backbone_layers=config.trainable_stages, **kwargs
    )


def offline_message(architecture: str, weights: str, exc: BaseException) -> str:
    """What to do when pretrained weights cannot be downloaded: which file goes where."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    url = pretrained_weights_url(architecture, weights)
    if url is None:  # a state-dict file given with --backbone-weights
        return f"cannot load the {weights} weights for {architecture}: {first}"
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    also = " (or pass that file with --backbone-weights)" if architecture in STEM_ARCHITECTURES else ""
    return (
        f"cannot download the {weights} weights for {architecture} ({first}). Offline: fetch {url} "
        f"on a machine with internet and copy it to {target}{also}"
    )


def use_cache(config: TrainConfig, model: nn.Module) -> bool:
    stem_is_frozen = getattr(model.backbone, "stem_is_frozen", None)  # the MobileNetV2 stem backbone's
    stem_ok = hasattr(model.backbone, "forward_from_stem") and callable(stem_is_frozen) and bool(stem_is_frozen())
    if config.cache == "on" and not stem_ok:
        raise TrainingError(
            "--cache on needs fasterrcnn_mobilenet_v2_fpn(_s8) with --trainable-stages 0 or 1 (a frozen stem)"
        )
    return config.cache == "on" or (config.cache == "auto" and stem_ok)


def make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=float(config.lr), weight_decay=float(config.weight_decay))
    return torch.optim.SGD(
        params, lr=float(config.lr), momentum=float(config.momentum), weight_decay=float(config.weight_decay)
    )


def warn_if_warmup_exceeds_run(config: TrainConfig, steps_per_epoch: int) -> bool:
    """Warn (and say so) when the linear warm-up is longer than the whole run: the learning rate never reaches --lr."""
    total = config.epochs * steps_per_epoch
    if config.warmup_iters < total:
        return False
    log.warning(
        "warm-up (--warmup-iters %d steps) is as long as the whole run or longer (%d epochs x %d steps = %d): "
        "the learning rate never reaches --lr; lower --warmup-iters (e.g. %d, one epoch) or train longer",
        config.warmup_iters,
        config.epochs,
        steps_per_epoch,
        total,
        steps_per_epoch,
    )
    return True


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Linear warm-up from 1/1000, then cosine to 0 or step decay (by epoch)."""
    warmup = config.warmup_iters
    if step < warmup:
        alpha = step / warmup
        return 0.001 * (1 - alpha) + alpha
    if config.lr_schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return float(config.lr_gamma) ** sum(epoch >= int(m) for m in config.lr_steps)
    total = max(1, config.epochs * steps_per_epoch - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / total)))


# ---------------------------------------------------------------- checkpoints and log


def save_state(path: Path, trainer: Trainer, epoch: int, config: TrainConfig, progress: dict[str, Any]) -> None:
    """Full training state; loads with torch.load(weights_only=True)."""
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "epoch": epoch,
        "step": trainer.step,
        "config": config.as_dict(),
        **progress,
    }
    save_whole(state, path)


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


def prepare_data(config: TrainConfig, splits: Splits, model: nn.Module, cached: bool, info: Dist) -> Data:
    train_samples = repeated(splits.train.samples, splits.repeats)
    seed = config.seed
    if cached:
        cache_dir = Path(config.cache_dir) if config.cache_dir else None
        sizes = [z or list(config.train_sizes) for z in repeated(splits.sizes, splits.repeats)]
        per_rank = len(train_samples) // info.world_size
        mine = fc.shard(list(zip(train_samples, sizes)), info.rank, info.world_size)[:per_rank]
        unique = list({id(s): (s, z) for s, z in mine}.values())  # a repeated sample is cached once
        computed = fc.build_views(
            model,
            [s for s, _ in unique],
            [z for _, z in unique],
            config.hflip,
            float(config.cache_photometric),
            seed,
            cache_dir,
        )
        by_id = {id(s): v for (s, _), v in zip(unique, computed)}
        views = [by_id[id(s)] for s, _ in mine]
        val_views = None
        if info.main and splits.val.samples:
            val = fc.build_views(model, splits.val.samples, [config.min_size], False, 0.0, seed, cache_dir)
            val_views = [v[0] for v in val]
        log.info("feature cache: %d training views, %.0f MB", sum(map(len, views)), fc.cache_bytes(views) / 2**20)
        return Data(views=views, val_views=val_views)
    return Data(loader=_image_loader(config, train_samples, info))


def _image_loader(config: TrainConfig, samples: list[Sample], info: Dist) -> Any:
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    transforms = train_transforms(config.train_sizes, config.max_size, hflip=0.5 if config.hflip else 0.0)
    # DetectionDataset is map-style (len, getitem) without subclassing torch's Dataset: datasets.py stays torch-free
    dataset = cast("Dataset[Any]", DetectionDataset(samples, transforms))
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=config.seed, drop_last=True)
        if info.world_size > 1
        else None
    )
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        generator=generator,
        drop_last=False,
    )


def validate(model: nn.Module, data: Data, splits: Splits, device: torch.device) -> tuple[dict[str, Any], EvalReport]:
    """Validation summary and report: from the cached views when the cached path built them."""
    return evaluate(model, splits.val.samples, splits.train.label_map, device, data.val_views)


def run_epochs(
    config: TrainConfig,
    trainer: Trainer,
    data: Data,
    splits: Splits,
    progress: Progress,
    start_epoch: int,
    out_dir: Path,
) -> None:
    info = trainer.info
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed * 1000 + epoch * 10 + info.rank)
        if data.loader is not None and hasattr(data.loader.sampler, "set_epoch"):
            data.loader.sampler.set_epoch(epoch)
        stats = train_one_epoch(trainer, epoch, views=data.views, loader=data.loader)
        parts = reduce_mean({k: v / max(1, stats.steps) for k, v in stats.parts.items()}, info)
        stop = False
        if info.main:
            stop = _end_of_epoch(config, trainer, data, splits, progress, epoch, stats, parts, out_dir)
        if broadcast_flag(stop, info):
            log.info(
                "early stopping after epoch %d: no better validation %s for %d epochs (best: epoch %d, %.4f)",
                epoch,
                config.early_stop_metric,
                progress.bad_epochs,
                progress.best_epoch,
                progress.best_metric,
            )
            break


def _end_of_epoch(
    config: TrainConfig,
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
    val, _ = validate(trainer.model, data, splits, trainer.device)
    val_seconds = time.monotonic() - start
    metric = val[config.early_stop_metric] or 0.0
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
    if config.keep_checkpoints:
        shutil.copyfile(out_dir / "checkpoint.pt", out_dir / f"checkpoint-epoch{epoch}.pt")
    patience = config.patience
    return patience > 0 and progress.bad_epochs >= patience


def finish(
    config: TrainConfig,
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
    _, val_report = validate(model, data, splits, trainer.device)
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
        _, test_report = evaluate(model, splits.test.samples, labels, trainer.device)
        metrics["test"] = test_report.to_dict()
        log.info("test (%d images):\n%s", len(splits.test), test_report.format_table())
    log.info("validation with the best weights (epoch %d):\n%s", progress.best_epoch, val_report.format_table())
    output = Path(config.output) if config.output else out_dir / "model.pt"
    save_checkpoint(output, model, architecture, labels, arch_kwargs, thresholds, metrics, config.sha256())
    log.info(
        "deployable checkpoint %s (%.1f MB), operating thresholds %s", output, output.stat().st_size / 2**20, thresholds
    )
    return output


def make_trainer(
    config: TrainConfig, model: nn.Module, module: nn.Module, device: torch.device, info: Dist, steps_per_epoch: int
) -> Trainer:
    optimizer = make_optimizer(config, trainable_parameters(model))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, config))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp)
    return Trainer(config, model, module, optimizer, scheduler, scaler, device, info)


def train(config: TrainConfig) -> Path | None:
    """The whole run; returns the deployable checkpoint's path (on the main process)."""
    device = pick_device(str(config.device), int(os.environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device)
    try:
        return _train(config, device, info)
    finally:
        shutdown(info)


def _train(config: TrainConfig, device: torch.device, info: Dist) -> Path | None:
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    out_dir = Path(config.output_dir)
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
    batches = math.ceil(len(data.views) / config.batch_size) if data.views is not None else len(data.loader)
    steps_per_epoch = steps_limit(batches, config)
    warn_if_warmup_exceeds_run(config, steps_per_epoch)
    module = wrap(fc.StemDetector(model) if cached else model, device, info)
    trainer = make_trainer(config, model, module, device, info, steps_per_epoch)
    progress, start_epoch = Progress(), 0
    if config.resume:
        state = load_state(Path(config.resume), trainer)
        progress, start_epoch = Progress.from_state(state), int(state["epoch"]) + 1
        log.info("resumed from %s: epoch %d, step %d", config.resume, start_epoch, trainer.step)
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
