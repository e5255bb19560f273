"""Export a deployable checkpoint to ONNX or TorchScript, with a JSON sidecar.

ONNX uses the TorchScript-based ("legacy") exporter, ``torch.onnx.export(..., dynamo=False)``:
it is the path torchvision tests its detection models with (opset >= 11), while the
``torch.export``-based default (``dynamo=True``) still fails on torchvision's detection models
(pytorch/vision#9306, #9462). The exported graph takes ONE image, a float32 RGB tensor
(3, H, W) in 0-1 of any size, and returns ``boxes`` (N, 4) xyxy in that image's pixels,
``labels`` (N,) int64 and ``scores`` (N,): the model's resize, normalisation and
post-processing are inside.

TorchScript uses ``torch.jit.script``; a scripted torchvision detector takes a list of images
and returns ``(losses, detections)`` (see the sidecar's ``outputs``).

The sidecar ``<output>.json`` carries what a runtime needs beside the graph: the label map,
the operating score thresholds, the input size and where the weights came from.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from surveil.detection.checkpoints import file_sha256, load_checkpoint_model
from surveil.detection.input_size import input_size, set_input_size

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
SIDECAR_FORMAT = "surveil-export"
SIDECAR_VERSION = 1
DEFAULT_OPSET = 17


class ExportError(Exception):
    """An export that could not be written; the message says why."""


def sidecar_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".json")


def export_onnx(
    model: nn.Module, output: str | Path, example_hw: tuple[int, int] = (360, 480), opset: int = DEFAULT_OPSET
) -> Path:
    """Write ``model`` (a torchvision detector in eval mode) as an ONNX graph for one image."""
    if opset < 11:
        raise ExportError(f"torchvision detectors need ONNX opset >= 11, not {opset}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(3, *example_hw)
    with warnings.catch_warnings(), torch.no_grad():
        # tracing warns about every Python-side shape computation (the dynamic axes cover them)
        # and about torchvision's tensor copies: noise to a user of `surveil export`
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model.eval(), ([example],), str(output), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["boxes", "labels", "scores"],
            dynamic_axes={"image": {1: "height", 2: "width"}, **{k: {0: "detections"} for k in ("boxes", "labels", "scores")}},
        )  # fmt: skip
    _check_onnx(output)
    return output


def _check_onnx(path: Path) -> None:
    try:
        import onnx
    except ImportError:
        log.info("onnx is not installed: %s written but not checked", path)
        return
    onnx.checker.check_model(str(path))


def export_torchscript(model: nn.Module, output: str | Path) -> Path:
    """Write ``model`` scripted (``torch.jit.script``), loadable with ``torch.jit.load``."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated"
            scripted = torch.jit.script(model.eval())
    except Exception as exc:  # scripting raises several error types for unsupported code
        raise ExportError(f"{type(model).__name__} cannot be scripted: {str(exc).splitlines()[0]}") from None
    scripted.save(str(output))
    return output


def export_checkpoint(
    weights: str | Path,
    fmt: str,
    output: str | Path,
    min_size: int | None = None,
    max_size: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a deployable checkpoint and write its sidecar; returns the export's path."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    model, payload = load_checkpoint_model(weights)
    if min_size is not None:
        set_input_size(model, min_size, max_size)
    model.eval()
    started = time.perf_counter()
    if fmt == "onnx":
        side = input_size(model)[0]
        path = export_onnx(model, output, example_hw=(side, side * 4 // 3), opset=opset)
    else:
        path = export_torchscript(model, output)
    log.info("exported %s to %s in %.1f s", weights, path, time.perf_counter() - started)
    write_sidecar(path, fmt, payload, model, weights, opset if fmt == "onnx" else None)
    return path


def write_sidecar(
    path: Path, fmt: str, payload: dict[str, Any], model: nn.Module, weights: str | Path, opset: int | None
) -> Path:
    sidecar = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "export_format": fmt,
        "file": path.name,
        "architecture": payload["architecture"],
        "labels": list(payload["labels"]),
        "score_thresholds": dict(payload.get("score_thresholds", {})),
        "min_size": input_size(model)[0],
        "max_size": input_size(model)[1],
        "input": _input_spec(fmt),
        "outputs": _output_spec(fmt),
        "opset": opset,
        "source_checkpoint": str(weights),
        "source_sha256": file_sha256(weights),
        "metrics": payload.get("metrics", {}),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = sidecar_path(path)
    out.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return out


def _input_spec(fmt: str) -> str:
    if fmt == "onnx":
        return "image: float32 (3, H, W), RGB, 0-1, any H and W; one image per run"
    return "list of float32 (3, H, W) RGB 0-1 tensors"


def _output_spec(fmt: str) -> str:
    if fmt == "onnx":
        return "boxes (N, 4) xyxy pixels of the input image, labels (N,) int64 (index into labels), scores (N,)"
    return "(losses, detections): detections is a list of {boxes, labels, scores} per image"
