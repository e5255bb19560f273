"""The detector ``detector.backend`` asks for, built behind the :class:`surveil.detection.protocol.Detector` interface.

- ``torch``: :class:`surveil.detection.torch_detector.TorchDetector` (batched; the GPU path).
- ``onnxruntime`` / ``openvino``: :class:`surveil.detection.runtimes.OnnxDetector` — the checkpoint
  exported once to ONNX and run by ONNX Runtime or OpenVINO on the CPU.
- ``auto``: ``torch`` when CUDA is used, else ``openvino`` when installed, else ``onnxruntime``
  when installed, else ``torch``.

Agreement with the eager model is tested on real frames in tests/test_detector_backends.py; speed is
in docs/benchmarks.md. The runtimes' names below are re-exported for the callers that import them
from this module.
"""

from __future__ import annotations

from pathlib import Path

from surveil.config import DetectorConfig
from surveil.detection import runtimes
from surveil.detection.agreement import detection_agreement
from surveil.detection.protocol import Detector
from surveil.detection.runtimes import (
    ONNX_BACKENDS,
    OnnxDetector,
    cache_key,
    cached_onnx,
    default_cache_dir,
    openvino_precision,
)
from surveil.detection.torch_detector import TorchDetector, select_device

__all__ = [
    "ONNX_BACKENDS",
    "OnnxDetector",
    "cache_key",
    "cached_onnx",
    "create_detector",
    "default_cache_dir",
    "detection_agreement",
    "openvino_precision",
    "resolve_backend",
]


def resolve_backend(config: DetectorConfig) -> str:
    """The backend ``detector.backend`` means on this machine (``auto`` decided here)."""
    if config.backend != "auto":
        return config.backend
    if select_device(config.device).type == "cuda":
        return "torch"
    return next((b for b in ("openvino", "onnxruntime") if runtimes.backend_available(b)), "torch")


def create_detector(config: DetectorConfig, cache_dir: str | Path | None = None) -> Detector:
    """The detector ``config`` asks for; ModelLoadError (with what to do) when it cannot be built."""
    backend = resolve_backend(config)
    if backend == "torch":
        return TorchDetector(config)
    return OnnxDetector(config, backend, cache_dir)
