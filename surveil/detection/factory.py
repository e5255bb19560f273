"""The detector ``detector.backend`` asks for, built behind the :class:`surveil.detection.protocol.Detector` interface.

- ``torch``: :class:`surveil.detection.torch_detector.TorchDetector` (batched; the GPU path).
- ``onnxruntime`` / ``openvino``: :class:`surveil.detection.runtimes.OnnxDetector` — the checkpoint's
  graph (shipped beside it, or exported once into the cache) run by ONNX Runtime or OpenVINO on the CPU.
- ``auto``: ``torch`` when CUDA is used, else ``openvino`` when installed, else ``onnxruntime``
  when installed, else ``torch``.

torch is imported only when the torch backend is chosen (or, for ``auto`` with torch installed on a
machine with a GPU driver, to ask whether CUDA works): a server installed with ``pip install 'surveil[runtime]'`` has no torch at all.

Agreement with the eager model is tested on real frames in tests/test_detector_backends.py; speed is
in docs/benchmarks.md. The runtimes' names below are re-exported for the callers that import them
from this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from surveil.config import DetectorConfig
from surveil.detection import runtimes
from surveil.detection.agreement import detection_agreement
from surveil.detection.protocol import Detector, ModelLoadError
from surveil.detection.runtimes import (
    ONNX_BACKENDS,
    OnnxDetector,
    cache_key,
    cached_onnx,
    default_cache_dir,
    openvino_precision,
)

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
    if _uses_cuda(config.device):
        return "torch"
    return next((b for b in ("openvino", "onnxruntime") if runtimes.backend_available(b)), "torch")


def _uses_cuda(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto" or not runtimes.torch_installed() or not _may_have_gpu():
        return False
    from surveil.detection.torch_detector import select_device

    return select_device(device).type == "cuda"


def _may_have_gpu() -> bool:
    """Whether asking torch about CUDA is worth importing it (~650 MB of RSS): on Linux only where a GPU
    driver shows (NVIDIA's, or ROCm's /dev/kfd, which torch also calls CUDA); elsewhere always."""
    if not sys.platform.startswith("linux"):
        return True
    dev = Path("/dev")
    return Path("/proc/driver/nvidia").exists() or (dev / "kfd").exists() or any(dev.glob("nvidia[0-9]*"))


def create_detector(config: DetectorConfig, cache_dir: str | Path | None = None) -> Detector:
    """The detector ``config`` asks for; ModelLoadError (with what to do) when it cannot be built."""
    backend = resolve_backend(config)
    if backend != "torch":
        return OnnxDetector(config, backend, cache_dir)
    if not runtimes.torch_installed():
        raise ModelLoadError(
            "no inference backend is installed: detector.backend "
            f"{config.backend} needs PyTorch (pip install 'surveil[torch]'); for the CPU install OpenVINO and "
            "ONNX Runtime instead (pip install 'surveil[runtime]') and use `backend: auto` or `openvino`"
        )
    from surveil.detection.torch_detector import TorchDetector

    return TorchDetector(config)
