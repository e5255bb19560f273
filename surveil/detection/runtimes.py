"""The exported-graph backends: the checkpoint exported once to ONNX, run by ONNX Runtime or OpenVINO on the CPU.

:class:`OnnxDetector` runs the graph that :func:`surveil.detection.export.export_onnx` writes (the same
exporter as ``surveil export``), cached in a folder keyed by the checkpoint's SHA-256, the input
size, the opset and the torch version (:func:`cached_onnx`), one image per run. It shares the
preprocessing (:func:`surveil.detection.preprocessing.frames_to_tensors`) and the post-processing
(:class:`surveil.detection.protocol.DetectionFilter`) with the torch backend; the exported graph
holds the model's own resize, normalisation and box decoding.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surveil.config import DetectorConfig
from surveil.detection.checkpoints import ModelLoadError, file_sha256, read_checkpoint
from surveil.detection.export import DEFAULT_OPSET, export_onnx, write_sidecar
from surveil.detection.preprocessing import frames_to_tensors
from surveil.detection.protocol import DetectionFilter
from surveil.detection.torch_detector import TorchDetector, fold_batchnorm, select_device
from surveil.types import Detections

log = logging.getLogger(__name__)

ONNX_BACKENDS = ("onnxruntime", "openvino")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "surveil" / "models"


def backend_available(backend: str) -> bool:
    """Whether ``backend``'s package is installed (torch always is); asked by ``resolve_backend`` and :class:`OnnxDetector`."""
    return backend == "torch" or importlib.util.find_spec(backend) is not None


class OnnxDetector:
    """The checkpoint exported to ONNX and run by ONNX Runtime or OpenVINO on the CPU."""

    def __init__(self, config: DetectorConfig, backend: str, cache_dir: str | Path | None = None):
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"unknown ONNX backend {backend!r}")
        if not backend_available(backend):
            extra = "fast" if backend == "openvino" else "export"
            raise ModelLoadError(
                f"detector.backend is {backend} but the `{backend}` package is not installed "
                f"(pip install -e '.[{extra}]', or use `backend: torch`)"
            )
        if select_device(config.device).type != "cpu":
            raise ModelLoadError(
                f"detector.backend {backend} runs on the CPU; use `backend: torch` for {config.device}"
            )
        self.config = config
        self.backend = backend
        self.device = torch.device("cpu")
        self.class_names, checkpoint_thresholds = _labels_and_thresholds(config)
        self.filter = DetectionFilter(config, self.class_names, checkpoint_thresholds)
        self.operating_thresholds = self.filter.operating_thresholds
        self.onnx_path = cached_onnx(config, Path(cache_dir) if cache_dir else default_cache_dir())
        self.precision = "fp32"
        self._run = self._open_onnxruntime() if backend == "onnxruntime" else self._open_openvino()
        log.info(
            "detector ready: %s on %s (%s, %s), %d classes",
            config.weights,
            backend,
            self.onnx_path.name,
            self.precision,
            len(self.class_names) - 1,
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for tensor in frames_to_tensors(images, self.device):
            boxes, labels, scores = self._run(np.ascontiguousarray(tensor.numpy()))
            out.append(self.filter(boxes, scores, labels))
        return out

    def _open_onnxruntime(self) -> Callable[[np.ndarray], tuple]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # the graph's shape-inference warnings are noise
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
        session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        names = ["boxes", "labels", "scores"]
        return lambda image: session.run(names, {"image": image})

    def _open_openvino(self) -> Callable[[np.ndarray], tuple]:
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.onnx_path.parent / "openvino")})
        self.precision = openvino_precision(
            self.config.openvino_precision, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        )
        properties: dict[str, str | int] = {
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.config.threads:
            properties["INFERENCE_NUM_THREADS"] = self.config.threads
        compiled = core.compile_model(core.read_model(str(self.onnx_path)), "CPU", properties)
        request = compiled.create_infer_request()
        outputs = [compiled.output(name) for name in ("boxes", "labels", "scores")]

        def run(image: np.ndarray) -> tuple:
            result = request.infer({"image": image})
            return tuple(result[output] for output in outputs)

        return run


def openvino_precision(requested: str, capabilities: Sequence[str]) -> str:
    """``detector.openvino_precision`` on this CPU: bf16 only where the CPU computes it natively."""
    native = "BF16" in capabilities
    if requested == "bf16" and not native:
        log.warning("detector.openvino_precision bf16: this CPU has no native bf16; using fp32")
    return "bf16" if requested in ("auto", "bf16") and native else "fp32"


def _labels_and_thresholds(config: DetectorConfig) -> tuple[list[str], dict[str, float]]:
    if config.weights == "coco":
        from surveil.detection.architectures import TORCHVISION_COCO

        if config.architecture not in TORCHVISION_COCO:
            raise ModelLoadError(f"`weights: coco` needs a torchvision architecture, not {config.architecture!r}")
        return [str(c) for c in TORCHVISION_COCO[config.architecture][1].meta["categories"]], {}
    payload = read_checkpoint(config.weights)
    return list(payload["labels"]), dict(payload.get("score_thresholds", {}))


def cache_key(config: DetectorConfig, opset: int = DEFAULT_OPSET) -> str:
    """What the exported graph depends on: the weights, the input size, the opset and torch."""
    import torchvision  # type: ignore[import-untyped]  # torchvision ships no type information

    source = (
        f"coco-{config.architecture}-{torchvision.__version__}"
        if config.weights == "coco"
        else file_sha256(config.weights)
    )
    text = f"{source}|{config.min_size}|{config.max_size}|{opset}|{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_onnx(config: DetectorConfig, cache_dir: Path, opset: int = DEFAULT_OPSET) -> Path:
    """The checkpoint's ONNX graph in ``cache_dir``: exported once (about 10-30 s on a small CPU), then reused."""
    stem = Path(config.weights).stem if config.weights != "coco" else config.architecture
    path = cache_dir / f"{stem}-{cache_key(config, opset)}.onnx"
    if path.is_file():
        log.debug("detector: using the cached export %s", path)
        return path
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot create the model cache folder {cache_dir}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    model: Any = TorchDetector._load(config)[0]  # a torchvision GeneralizedRCNN (untyped)
    model.eval()
    fold_batchnorm(model)  # fewer nodes for the runtime; the same boxes (tested)
    side = int(model.transform.min_size[-1])
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.onnx")
    try:
        export_onnx(model, tmp, example_hw=(side, side * 4 // 3), opset=opset)
        tmp.replace(path)  # atomic: a concurrent start sees the whole file or none
    finally:
        tmp.unlink(missing_ok=True)
    if config.weights != "coco":
        write_sidecar(path, "onnx", read_checkpoint(config.weights), model, config.weights, opset)
    log.info(
        "detector: exported %s to %s in %.1f s (cached for the next start)",
        config.weights,
        path,
        time.perf_counter() - started,
    )
    return path
