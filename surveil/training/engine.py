"""One epoch of training and one evaluation (after torchvision's references/detection engine.py).

``train_one_epoch`` runs either path: cached stem features (``surveil.training.features_cache``)
or augmented images through the whole model. ``evaluate`` scores a model on the validation
samples with :mod:`surveil.evaluation` (training may import evaluation; never the reverse).
"""

from __future__ import annotations

import datetime
import functools
import logging
import operator
import random
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from surveil.datasets import Sample, read_rgb
from surveil.evaluation.metrics import EvalReport, Prediction, Target
from surveil.evaluation.metrics import evaluate as evaluate_predictions
from surveil.evaluation.predict import predict
from surveil.training import features_cache as fc
from surveil.training.config import TrainConfig, TrainingError
from surveil.training.distributed import Dist

log = logging.getLogger(__name__)


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


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@dataclass
class Trainer:
    """What one optimisation step needs; ``module`` is what the forward pass calls (maybe DDP)."""

    config: TrainConfig
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    info: Dist
    step: int = 0

    def optimise(self, losses: dict[str, torch.Tensor], epoch: int) -> float:
        total: torch.Tensor = functools.reduce(operator.add, losses.values())
        check_finite(losses, total, epoch, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        clip = float(self.config.clip_grad_norm)
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return float(total.item())

    def autocast(self) -> AbstractContextManager[Any]:
        if self.device.type == "cuda" and self.config.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()


def steps_limit(steps: int, config: TrainConfig) -> int:
    """``steps``, or ``max_steps`` when that is set and smaller (smoke tests)."""
    return min(steps, config.max_steps) if config.max_steps else steps


def train_one_epoch(
    trainer: Trainer, epoch: int, views: list[list[fc.CachedView]] | None = None, loader: Any = None
) -> EpochStats:
    """One epoch on cached views when there are some, else on the image loader."""
    if views is not None:
        return train_one_epoch_cached(trainer, views, epoch)
    return train_one_epoch_images(trainer, loader, epoch)


def train_one_epoch_cached(trainer: Trainer, views: list[list[fc.CachedView]], epoch: int) -> EpochStats:
    """One epoch from cached stem features (trainer.module is a StemDetector, maybe in DDP)."""
    config = trainer.config
    rng = random.Random(config.seed * 7919 + epoch * 104729 + trainer.info.rank)
    batches, dropped = fc.epoch_batches(views, config.batch_size, config.crop_cells, rng)
    steps = steps_limit(len(batches), config)
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
    steps = steps_limit(len(loader), trainer.config)
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


def _accumulate(stats: EpochStats, losses: dict[str, torch.Tensor], total: float, images: int) -> None:
    stats.loss += total
    for k, v in losses.items():
        stats.parts[k] = stats.parts.get(k, 0.0) + float(v.item())
    stats.steps += 1
    stats.images += images


def _progress(trainer: Trainer, epoch: int, stats: EpochStats, steps_in_epoch: int, start: float) -> None:
    every = trainer.config.log_every
    if not trainer.info.main or (stats.steps % every and stats.steps != steps_in_epoch):
        return
    elapsed = time.monotonic() - start
    per_step = elapsed / stats.steps
    epochs_left = trainer.config.epochs - epoch - 1
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


# ---------------------------------------------------------------- evaluation


def targets_of(samples: Sequence[Sample]) -> list[Target]:
    return [Target(s.boxes, s.labels) for s in samples]


def predictions_of(detections: list[dict[str, torch.Tensor]]) -> list[Prediction]:
    return [
        Prediction(d["boxes"].cpu().numpy(), d["scores"].cpu().numpy(), d["labels"].cpu().numpy()) for d in detections
    ]


def predict_samples(model: nn.Module, samples: Sequence[Sample], device: torch.device) -> list[Prediction]:
    """Full-model predictions on image files (the uncached path, and the test set)."""
    out: list[Prediction] = []
    for s in samples:  # one image in memory at a time
        image = torch.from_numpy(read_rgb(s.image_path)).permute(2, 0, 1).float().div_(255.0)
        out += predict(model, [image], batch_size=1, device=device)
    return out


def score(predictions: list[Prediction], samples: Sequence[Sample], labels: list[str]) -> EvalReport:
    return evaluate_predictions(predictions, targets_of(samples), labels, score_thresholds=0.5)


def summary(report: EvalReport) -> dict[str, Any]:
    best = [c.best_f1 for c in report.classes if c.support]
    return {"map": report.map, "ap50": report.ap50, "best_f1": float(np.mean(best)) if best else None}


def evaluate(
    model: nn.Module,
    samples: Sequence[Sample],
    labels: list[str],
    device: torch.device,
    views: list[fc.CachedView] | None = None,
) -> tuple[dict[str, Any], EvalReport]:
    """(summary, report) of ``model`` on ``samples``: from their cached ``views`` when given, else the images."""
    if views is not None:
        preds = predictions_of(fc.predict_views(model, views))
    else:
        preds = predict_samples(model, samples, device)
    report = score(preds, samples, labels)
    return summary(report), report
