"""Building detectors by name, and the deployable checkpoint format.

Shared by the daemon (loads) and ``surveil train`` (builds and saves); the architectures
themselves are in :mod:`surveil.architectures`. A deployable
checkpoint is a plain dict of tensors, strings and numbers, so it loads with
``torch.load(weights_only=True)``: nothing in it is unpickled as an arbitrary object.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
from pathlib import Path
from typing import Any

import torch
from torch import nn

from surveil.architectures import ARCHITECTURES, TORCHVISION_COCO

CHECKPOINT_FORMAT = "surveil-detector"
CHECKPOINT_VERSION = 1


class ModelLoadError(Exception):
    """Weights that cannot be loaded; the message says what to do about it."""


def known_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def build_model(architecture: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """An untrained model of ``architecture`` with ``num_classes`` outputs (background included)."""
    if architecture not in ARCHITECTURES:
        raise ModelLoadError(f"unknown architecture {architecture!r}; known: {', '.join(known_architectures())}")
    return ARCHITECTURES[architecture](num_classes=num_classes, **kwargs)


def load_coco_model(architecture: str, **kwargs: Any) -> tuple[nn.Module, list[str]]:
    """torchvision's COCO-pretrained model; downloads once, then loads from the torch hub cache."""
    if architecture not in TORCHVISION_COCO:
        raise ModelLoadError(f"`weights: coco` needs a torchvision architecture, not {architecture!r}")
    build, weights = TORCHVISION_COCO[architecture]
    try:
        model = build(weights=weights, weights_backbone=None, **kwargs)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "download" not in str(exc).lower() and "url" not in str(exc).lower():
            raise
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ModelLoadError(
            f"could not download the COCO weights for {architecture} ({exc}). Either connect this machine to the "
            f"internet once, or copy {weights.url} to {cache}, or set `detector.weights` to a checkpoint "
            f"written by `surveil train` (e.g. models/pedestrian-mnv2.pt)."
        ) from None
    labels = [str(c) for c in weights.meta["categories"]]
    return model, labels


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    architecture: str,
    labels: list[str],
    arch_kwargs: dict[str, Any] | None = None,
    score_thresholds: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    config_sha256: str = "",
) -> Path:
    """Write a deployable checkpoint (weights only, plus what is needed to rebuild and use it)."""
    if labels[0] != "__background__":
        raise ValueError("labels[0] must be '__background__'")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "architecture": architecture,
        "arch_kwargs": dict(arch_kwargs or {}),
        "labels": list(labels),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "score_thresholds": dict(score_thresholds or {}),
        "metrics": dict(metrics or {}),
        "config_sha256": config_sha256,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a deployable checkpoint's dict safely (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(f"checkpoint {path} cannot be loaded safely: {str(exc).splitlines()[0]}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path} is not a surveil detector checkpoint (write one with `surveil train` or `surveil export`)")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise ModelLoadError(f"{path} was written by a newer surveil (format {payload['format_version']})")
    return payload


def load_checkpoint_model(path: str | Path, **overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint dict)."""
    payload = read_checkpoint(path)
    kwargs = {**payload.get("arch_kwargs", {}), **{k: v for k, v in overrides.items() if v is not None}}
    model = build_model(payload["architecture"], num_classes=len(payload["labels"]), **kwargs)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise ModelLoadError(
            f"checkpoint {path} does not fit architecture {payload['architecture']}: "
            f"{len(missing)} missing and {len(unexpected)} unexpected tensors (e.g. {(missing or unexpected)[:3]})"
        )
    return model, payload


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
