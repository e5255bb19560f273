"""Detector architectures and the deployable checkpoint format.

Shared by the daemon (loads) and ``surveil train`` (builds and saves). A deployable
checkpoint is a plain dict of tensors, strings and numbers, so it loads with
``torch.load(weights_only=True)``: nothing in it is unpickled as an arbitrary object.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import faster_rcnn as tv_frcnn

CHECKPOINT_FORMAT = "surveil-detector"
CHECKPOINT_VERSION = 1


class ModelLoadError(Exception):
    """Weights that cannot be loaded; the message says what to do about it."""


def _torchvision_builder(fn: Callable[..., nn.Module], coco_weights: Any) -> dict[str, Any]:
    return {"build": fn, "coco": coco_weights}


TORCHVISION_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "fasterrcnn_resnet50_fpn_v2": _torchvision_builder(
        tv_frcnn.fasterrcnn_resnet50_fpn_v2, tv_frcnn.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision_builder(
        tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn, tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": _torchvision_builder(
        tv_frcnn.fasterrcnn_mobilenet_v3_large_320_fpn, tv_frcnn.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1
    ),
}

# Architectures defined by surveil itself register here (name -> builder(num_classes, **kwargs)).
CUSTOM_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_architecture(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        CUSTOM_ARCHITECTURES[name] = fn
        return fn

    return decorator


def _import_custom_architectures() -> None:
    # Imported lazily: the module defining them may need training-only code paths.
    try:
        import surveil.training.architectures  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name not in ("surveil.training", "surveil.training.architectures"):
            raise


def known_architectures() -> list[str]:
    _import_custom_architectures()
    return sorted([*TORCHVISION_ARCHITECTURES, *CUSTOM_ARCHITECTURES])


def build_model(architecture: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """An untrained model of ``architecture`` with ``num_classes`` outputs (background included)."""
    if architecture in TORCHVISION_ARCHITECTURES:
        build = TORCHVISION_ARCHITECTURES[architecture]["build"]
        return build(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    _import_custom_architectures()
    if architecture in CUSTOM_ARCHITECTURES:
        return CUSTOM_ARCHITECTURES[architecture](num_classes=num_classes, **kwargs)
    raise ModelLoadError(f"unknown architecture {architecture!r}; known: {', '.join(known_architectures())}")


def load_coco_model(architecture: str, **kwargs: Any) -> tuple[nn.Module, list[str]]:
    """torchvision's COCO-pretrained model; downloads once, then loads from the torch hub cache."""
    if architecture not in TORCHVISION_ARCHITECTURES:
        raise ModelLoadError(f"`weights: coco` needs a torchvision architecture, not {architecture!r}")
    entry = TORCHVISION_ARCHITECTURES[architecture]
    weights = entry["coco"]
    try:
        model = entry["build"](weights=weights, weights_backbone=None, **kwargs)
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
