"""Building detectors by name, and the deployable checkpoint format.

Shared by the daemon (loads) and ``surveil train`` (builds and saves); the architectures
themselves are in :mod:`surveil.detection.architectures`. A deployable
checkpoint is a plain dict of tensors, strings and numbers, so it loads with
``torch.load(weights_only=True)``: nothing in it is unpickled as an arbitrary object.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from surveil.detection.architectures import ARCHITECTURES, TORCHVISION_COCO
from surveil.detection.graph import file_sha256  # re-exported: callers import it from here too
from surveil.detection.protocol import ModelLoadError  # re-exported: callers import it from here too

CHECKPOINT_FORMAT = "surveil-detector"
CHECKPOINT_VERSION = 1

__all__ = [
    "ModelLoadError",
    "build_model",
    "file_sha256",
    "known_architectures",
    "load_checkpoint_model",
    "load_coco_model",
    "read_checkpoint",
    "save_checkpoint",
]


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
    save_whole(payload, path)
    return path


def save_whole(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` whole or not at all (its folder made if missing). The temporary file
    has a unique name: two trainings sharing a folder may write the same file at once, and a shared name let
    one rename the other's file away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a deployable checkpoint's dict safely (no arbitrary unpickling) and check its shape.

    Every way a file can be wrong (missing, empty, text, truncated, another format, a dict
    with missing or mistyped entries) is a ModelLoadError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} does not exist")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise ModelLoadError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    if size == 0:
        raise ModelLoadError(f"checkpoint {path} is empty (0 bytes); copy it again or write one with `surveil train`")
    if not zipfile.is_zipfile(path):
        kind = "a text file" if _looks_like_text(head) else "not a zip archive (truncated, or another format)"
        raise ModelLoadError(
            f"checkpoint {path} is not a PyTorch checkpoint: it is {kind} ({size:,} bytes, starts with {head[:16]!r}); "
            "a surveil checkpoint is the zip archive written by `surveil train`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}: {first})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(
            f"{path} is not a surveil detector checkpoint (write one with `surveil train` or `surveil export`)"
        )
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise ModelLoadError(f"{path} was written by a newer surveil (format {version!r})")
    problem = _checkpoint_problem(payload)
    if problem:
        raise ModelLoadError(f"checkpoint {path} is damaged: {problem}")
    return payload


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _checkpoint_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint dict's entries, or None."""
    architecture = payload.get("architecture")
    if architecture not in ARCHITECTURES:
        return f"`architecture` is {architecture!r}, not one of {', '.join(known_architectures())}"
    labels = payload.get("labels")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) for x in labels)
        or labels[0] != "__background__"
    ):
        return "`labels` must be a list of class names starting with '__background__'"
    state = payload.get("state_dict")
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        return "`state_dict` must map parameter names to tensors"
    if not isinstance(payload.get("arch_kwargs", {}), dict):
        return "`arch_kwargs` must be a mapping"
    thresholds = payload.get("score_thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for k, v in thresholds.items()
    ):
        return "`score_thresholds` must map class names to numbers in [0, 1]"
    return None


def load_checkpoint_model(path: str | Path, **overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint dict)."""
    payload = read_checkpoint(path)
    kwargs = {**payload.get("arch_kwargs", {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        model = build_model(payload["architecture"], num_classes=len(payload["labels"]), **kwargs)
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    except ModelLoadError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # bad arch_kwargs, tensors of the wrong shape
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(
            f"checkpoint {path} does not fit architecture {payload['architecture']}: {first}"
        ) from None
    if missing or unexpected:
        raise ModelLoadError(
            f"checkpoint {path} does not fit architecture {payload['architecture']}: "
            f"{len(missing)} missing and {len(unexpected)} unexpected tensors (e.g. {(missing or unexpected)[:3]})"
        )
    return model, payload
