"""Export a checkpoint's network (without torchvision's resize) to the ONNX graph the CPU runtimes read.

Needs torch and torchvision; the runtime side (:mod:`surveil.detection.graph`) does not. The graph is
:class:`ResizedInputDetector`: backbone -> RPN -> RoI heads on an already resized and normalised
``(1, 3, h, w)`` image, boxes in that image's pixels. Without the resize inside, the graph does not
depend on ``min_size``/``max_size`` (one shipped graph serves every input size) and the resize is
exactly the eager model's (the whole-model export rounded some output sizes one pixel short).
BatchNorm is folded into the convolutions first (fewer nodes; the same boxes, tested). A fourth
output, ``embedding`` (N, D) unit rows, is each detection's appearance
(:mod:`surveil.detection.embedding`, the kind named in the sidecar).

The TorchScript-based exporter (``dynamo=False``) is used for the reason given in
:mod:`surveil.detection.export`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

# torchvision ships no type information (no py.typed): its names are Any to mypy
from torchvision.models.detection.image_list import ImageList

from surveil.detection.checkpoints import load_checkpoint_model, load_coco_model
from surveil.detection.embedding import DEFAULT_KIND, box_embeddings, kind_for
from surveil.detection.graph import (
    GRAPH_FORMAT,
    GRAPH_VERSION,
    INPUT_SPEC,
    OUTPUT_SPEC,
    file_sha256,
    graph_path_for,
    sidecar_of,
)
from surveil.detection.protocol import ModelLoadError
from surveil.detection.torch_detector import fold_batchnorm

__all__ = ["ResizedInputDetector", "build_graph", "export_graph"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17


class ResizedInputDetector(nn.Module):
    """A torchvision ``GeneralizedRCNN`` from its resized, normalised input to boxes in that input's pixels
    (and, unless ``embedding_kind`` is None, each box's appearance embedding)."""

    def __init__(self, model: nn.Module, embedding_kind: str | None = DEFAULT_KIND):
        super().__init__()
        self.model: Any = model  # a GeneralizedRCNN (untyped torchvision)
        self.embedding_kind = embedding_kind

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        image_sizes = [(image.shape[-2], image.shape[-1])]
        padded = model.transform.batch_images([image[0]], size_divisible=model.transform.size_divisible)
        images = ImageList(padded, image_sizes)
        features = model.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = model.rpn(images, features)
        detections, _ = model.roi_heads(features, proposals, images.image_sizes)
        boxes, labels, scores = detections[0]["boxes"], detections[0]["labels"], detections[0]["scores"]
        if self.embedding_kind is None:
            return boxes, labels, scores
        rows = box_embeddings(model, features, images.tensors, [boxes], images.image_sizes, self.embedding_kind)
        return boxes, labels, scores, rows[0]


def export_graph(
    model: nn.Module,
    output: Path,
    example_hw: tuple[int, int],
    opset: int = DEFAULT_OPSET,
    embedding_kind: str | None = DEFAULT_KIND,
) -> Path:
    """Write ``model`` (a torchvision detector in eval mode) as a :class:`ResizedInputDetector` ONNX graph
    (``embedding_kind`` None: without the embedding output, as graphs before issue 17)."""
    wrapper = ResizedInputDetector(model.eval(), embedding_kind).eval()
    outputs = ["boxes", "labels", "scores"] + ([] if embedding_kind is None else ["embedding"])
    example = torch.rand(1, 3, *example_hw)
    with warnings.catch_warnings(), torch.no_grad():
        # tracing warns about every Python-side shape computation (the dynamic axes cover them)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            wrapper, (example,), str(output), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=outputs,
            dynamic_axes={"image": {2: "height", 3: "width"}, **{k: {0: "detections"} for k in outputs}},
        )  # fmt: skip
    return output


def build_graph(
    weights: str | Path,
    output: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    architecture: str | None = None,
    embedding_kind: str | None = DEFAULT_KIND,
) -> Path:
    """Export checkpoint ``weights`` (or ``coco`` with ``architecture``) to ``output`` (default: beside it,
    suffix .onnx) and write the sidecar; returns the graph's path. Written atomically. ``embedding_kind``
    None: without the embedding output (what it costs: bench/embedding_cost.py)."""
    started = time.perf_counter()
    if str(weights) == "coco":
        if architecture is None:
            raise ModelLoadError("a graph of the COCO weights needs the architecture")
        model, labels = load_coco_model(architecture)
        payload: dict[str, Any] = {"architecture": architecture, "labels": labels, "score_thresholds": {}}
        source_sha = f"coco-{architecture}"
    else:
        model, payload = load_checkpoint_model(weights)
        source_sha = file_sha256(weights)
    path = Path(output) if output else graph_path_for(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    fold_batchnorm(model)
    embedding_kind = None if embedding_kind is None else kind_for(model, embedding_kind)
    transform: Any = model.transform  # GeneralizedRCNNTransform (untyped torchvision)
    side = int(transform.min_size[-1])
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.onnx")
    try:
        export_graph(model, tmp, (side, side * 4 // 3), opset, embedding_kind)
        sidecar = _sidecar(path, payload, transform, source_sha, file_sha256(tmp), weights, opset)
        if embedding_kind is not None:
            sidecar["embedding"] = {"kind": embedding_kind, "dim": _embedding_dim(model, embedding_kind)}
        tmp_json = sidecar_of(tmp)
        tmp_json.write_text(json.dumps(sidecar, indent=2) + "\n")
        tmp.replace(path)  # atomic: a concurrent start sees the whole file or none
        tmp_json.replace(sidecar_of(path))
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_of(tmp).unlink(missing_ok=True)
    log.info("exported %s to %s in %.1f s", weights, path, time.perf_counter() - started)
    return path


def _embedding_dim(model: Any, kind: str) -> int:
    """D of ``kind`` for ``model``: measured on one box of a small blank input."""
    wrapper = ResizedInputDetector(model, kind).eval()
    images = torch.zeros(1, 3, 64, 64)
    features = wrapper.model.backbone(images)
    if isinstance(features, torch.Tensor):
        features = OrderedDict([("0", features)])
    with torch.no_grad():
        rows = box_embeddings(model, features, images, [torch.tensor([[8.0, 8.0, 40.0, 56.0]])], [(64, 64)], kind)
    return int(rows[0].shape[1])


def _sidecar(
    path: Path, payload: dict[str, Any], transform: Any, source_sha: str, graph_sha: str, weights: Any, opset: int
) -> dict[str, Any]:
    fixed = transform.fixed_size
    return {
        "format": GRAPH_FORMAT,
        "format_version": GRAPH_VERSION,
        "file": path.name,
        "architecture": payload["architecture"],
        "labels": list(payload["labels"]),
        "score_thresholds": {k: float(v) for k, v in payload.get("score_thresholds", {}).items()},
        "min_size": int(transform.min_size[-1]),
        "max_size": int(transform.max_size),
        "fixed_size": list(fixed) if fixed is not None else None,
        "size_divisible": int(transform.size_divisible),  # padding inside the graph
        "image_mean": [float(v) for v in transform.image_mean],
        "image_std": [float(v) for v in transform.image_std],
        "input": INPUT_SPEC,
        "outputs": OUTPUT_SPEC,
        "opset": opset,
        "graph_sha256": graph_sha,
        "source_checkpoint": Path(str(weights)).name,
        "source_sha256": source_sha,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
