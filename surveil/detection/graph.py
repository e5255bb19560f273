"""A checkpoint's exported detector graph and its sidecar, and the numpy/OpenCV work around it.

The graph (ONNX; written by :func:`surveil.detection.graph_export.build_graph`, which needs torch)
holds the network only: backbone, RPN and RoI heads. It takes ONE image already resized and
normalised, float32 ``(1, 3, h, w)`` RGB, and returns ``boxes`` (N, 4) xyxy in that resized image's
pixels, ``labels`` (N,) int64 and ``scores`` (N,). The resize, the normalisation and the scaling of
the boxes back to the frame are done here in numpy/OpenCV (:class:`GraphSpec`), replicating
torchvision's ``GeneralizedRCNNTransform`` at inference (``_resize_image_and_masks``: one scale
factor ``min(min_size / short side, max_size / long side)``, output size floored, bilinear without
corner alignment; ``normalize``; ``resize_boxes``). So one graph serves every ``detector.min_size``
and nothing on this path imports torch.

The sidecar ``<graph>.json`` (:data:`GRAPH_FORMAT`) carries what a runtime needs beside the graph:
the label map, the operating thresholds, the default input size, the normalisation, the graph's own
SHA-256 and the SHA-256 of the checkpoint it was built from. A checkpoint ``models/X.pt`` is served
by ``models/X.onnx`` (+ ``models/X.onnx.json``) when that sidecar names the checkpoint's hash
(:func:`graph_beside`); ``detector.weights`` may also name the ``.onnx`` directly.

Rebuild the graph of a checkpoint (on a machine with torch), e.g. after training a new default model::

    python -m surveil.detection.graph build models/pedestrian-mnv2.pt   # writes models/pedestrian-mnv2.onnx{,.json}
    python -m surveil.detection.graph check models/pedestrian-mnv2.pt   # is the graph beside it current?
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from surveil.detection.protocol import ModelLoadError

__all__ = [
    "GRAPH_FORMAT",
    "GraphSpec",
    "file_sha256",
    "graph_beside",
    "graph_path_for",
    "read_graph_spec",
    "resized_shape",
    "sidecar_of",
]

GRAPH_FORMAT = "surveil-graph"
GRAPH_VERSION = 1
INPUT_SPEC = (
    "image: float32 (1, 3, h, w) RGB, resized and normalised (sidecar: min_size/max_size, image_mean/image_std)"
)
OUTPUT_SPEC = (
    "boxes (N, 4) xyxy in the resized image's pixels, labels (N,) int64 (index into labels), scores (N,), "
    "embedding (N, D) float32 unit rows (sidecar: embedding kind and dim; absent from graphs built before it)"
)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graph_path_for(weights: str | Path) -> Path:
    """Where the graph of checkpoint ``weights`` lives beside it: ``models/X.pt`` -> ``models/X.onnx``."""
    return Path(weights).with_suffix(".onnx")


def sidecar_of(graph: str | Path) -> Path:
    graph = Path(graph)
    return graph.with_name(graph.name + ".json")


def resized_shape(
    height: int, width: int, min_size: int, max_size: int, fixed_size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The network input size torchvision's transform gives a ``height`` x ``width`` image (eager rule)."""
    if fixed_size is not None:
        return fixed_size[1], fixed_size[0]  # torchvision's fixed_size is (width, height)
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


@dataclass(frozen=True)
class GraphSpec:
    """A graph's sidecar, and the pre- and post-processing it implies."""

    graph: Path
    labels: list[str]
    score_thresholds: dict[str, float]
    min_size: int
    max_size: int
    fixed_size: tuple[int, int] | None
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    source_sha256: str
    graph_sha256: str
    architecture: str = ""
    embedding_kind: str | None = None  # None: a graph without the embedding output (built before issue 17)

    def with_input_size(self, min_size: int | None, max_size: int | None) -> GraphSpec:
        """The spec at ``detector.min_size``/``max_size`` (None = the checkpoint's own, as the torch backend)."""
        return GraphSpec(
            **{**self.__dict__, "min_size": min_size or self.min_size, "max_size": max_size or self.max_size}
        )

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """A BGR uint8 frame -> the graph's input: RGB 0-1, normalised, resized (1, 3, h, w) float32.

        Normalised before the resize, as torchvision does (bilinear weights sum to 1, so the order
        only matters to rounding); OpenCV's float bilinear resize maps pixels as torch's
        ``align_corners=False`` does.
        """
        mean = np.asarray(self.image_mean, np.float32)
        std = np.asarray(self.image_std, np.float32)
        rgb = frame[..., ::-1].astype(np.float32) / np.float32(255.0)
        normalised = (rgb - mean) / std
        height, width = resized_shape(frame.shape[0], frame.shape[1], self.min_size, self.max_size, self.fixed_size)
        resized = cv2.resize(normalised, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])

    @staticmethod
    def plausible_boxes(boxes: np.ndarray, network_hw: Sequence[int]) -> np.ndarray:
        """(N,) which boxes the graph can really have returned: finite and inside the network input (the
        graph clips boxes to it, as torchvision does), with a pixel of slack for rounding. Anything else is
        a fault of the runtime, such as a reduced-precision overflow, not a detection."""
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        height, width = float(network_hw[0]), float(network_hw[1])
        with np.errstate(invalid="ignore"):  # NaN compares False: implausible
            inside = (xyxy >= -1.0).all(axis=1) & (xyxy[:, [0, 2]] <= width + 1.0).all(axis=1)
            return np.asarray(inside & (xyxy[:, [1, 3]] <= height + 1.0).all(axis=1), bool)

    @staticmethod
    def boxes_to_frame(boxes: np.ndarray, network_hw: Sequence[int], frame_hw: Sequence[int]) -> np.ndarray:
        """Boxes in the network input's pixels -> the frame's (torchvision's ``resize_boxes``, float32)."""
        ratio_h = np.float32(frame_hw[0]) / np.float32(network_hw[0])
        ratio_w = np.float32(frame_hw[1]) / np.float32(network_hw[1])
        return np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32)


def read_graph_spec(graph: str | Path, check_hash: bool = True) -> GraphSpec:
    """The sidecar of ``graph``; ModelLoadError naming the file and the fix when it is missing or wrong."""
    graph = Path(graph)
    sidecar = sidecar_of(graph)
    rebuild = "rebuild both with `python -m surveil.detection.graph build <checkpoint.pt>`"
    if not graph.is_file():
        raise ModelLoadError(f"detector graph {graph} does not exist; {rebuild}")
    try:
        data: Any = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"detector graph {graph} has no sidecar {sidecar.name} beside it; {rebuild}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"the sidecar {sidecar} cannot be read ({exc}); {rebuild}") from None
    if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
        raise ModelLoadError(
            f"{sidecar} is not a surveil graph sidecar (format {GRAPH_FORMAT!r}; an export by `surveil export` "
            f"takes the whole image and is not read by the daemon); {rebuild}"
        )
    if not isinstance(data.get("format_version"), int) or data["format_version"] > GRAPH_VERSION:
        raise ModelLoadError(f"{sidecar} was written by a newer surveil (format {data.get('format_version')!r})")
    try:
        fixed = data.get("fixed_size")
        spec = GraphSpec(
            graph=graph,
            labels=[str(x) for x in data["labels"]],
            score_thresholds={str(k): float(v) for k, v in data.get("score_thresholds", {}).items()},
            min_size=int(data["min_size"]),
            max_size=int(data["max_size"]),
            fixed_size=(int(fixed[0]), int(fixed[1])) if fixed else None,
            image_mean=_triple(data["image_mean"]),
            image_std=_triple(data["image_std"]),
            source_sha256=str(data.get("source_sha256", "")),
            graph_sha256=str(data["graph_sha256"]),
            architecture=str(data.get("architecture", "")),
            embedding_kind=str(data["embedding"]["kind"]) if data.get("embedding") else None,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"the sidecar {sidecar} is damaged ({type(exc).__name__}: {exc}); {rebuild}") from None
    if len(spec.labels) < 2 or spec.labels[0] != "__background__":
        raise ModelLoadError(f"the sidecar {sidecar} is damaged (labels must start with '__background__'); {rebuild}")
    if check_hash and file_sha256(graph) != spec.graph_sha256:
        raise ModelLoadError(
            f"detector graph {graph} does not match the SHA-256 in {sidecar.name} (damaged?); {rebuild}"
        )
    return spec


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def graph_beside(weights: str | Path, weights_sha256: str | None = None) -> tuple[GraphSpec | None, str]:
    """The graph beside checkpoint ``weights`` when its sidecar names the checkpoint's hash: (spec, "")
    or (None, why not)."""
    graph = graph_path_for(weights)
    if not graph.is_file() or not sidecar_of(graph).is_file():
        return None, f"no graph {graph.name} (with {sidecar_of(graph).name}) beside it"
    try:
        spec = read_graph_spec(graph)
    except ModelLoadError as exc:
        return None, str(exc)
    digest = weights_sha256 or file_sha256(weights)
    if spec.source_sha256 != digest:
        return None, f"{graph.name} beside it was built from another checkpoint (its sidecar's source_sha256 differs)"
    return spec, ""


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m surveil.detection.graph",
        description="Build or check the exported detector graph (ONNX + sidecar) of a checkpoint.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="export CHECKPOINT to <CHECKPOINT>.onnx + .onnx.json (needs torch)")
    build.add_argument("checkpoint", help="a checkpoint written by `surveil train`, e.g. models/pedestrian-mnv2.pt")
    build.add_argument("-o", "--output", help="the graph's path (default: beside the checkpoint, suffix .onnx)")
    build.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    build.add_argument(
        "--embedding",
        metavar="KIND",
        help="the detections' appearance embedding: pooled+colour (default) or crop (MobileNetV2 backbones; "
        "docs/benchmarks.md, issue 17 sixth round)",
    )
    check = sub.add_parser("check", help="exit 0 when the graph beside CHECKPOINT is current, else 1")
    check.add_argument("checkpoint")
    args = parser.parse_args(argv)
    if args.command == "check":
        spec, why = graph_beside(args.checkpoint)
        print(f"{args.checkpoint}: {'graph ' + str(spec.graph) + ' is current' if spec else why}")
        return 0 if spec else 1
    try:
        from surveil.detection.graph_export import build_graph
    except ImportError as exc:
        print(f"graph build needs PyTorch ({exc}): pip install 'surveil[torch]'", file=sys.stderr)
        return 2
    kind = {} if args.embedding is None else {"embedding_kind": args.embedding}
    try:
        path = build_graph(args.checkpoint, args.output, opset=args.opset, **kind)
    except (ModelLoadError, ValueError) as exc:
        print(f"graph build: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {sidecar_of(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
