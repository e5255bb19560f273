"""Every inference backend gives the eager model's detections on real frames (the shipped model on the
shipped PETS clip), within a stated tolerance; the ONNX export is cached by checkpoint and input size.

Tolerances, for detections at or above the operating threshold, matched both ways (a confident box of
one side must have a counterpart of the same class in the other, whatever that one's score):
- exact backends (BatchNorm folded + channels_last, ONNX Runtime, OpenVINO fp32): IoU >= 0.9 and
  scores within 0.02 — every confident detection;
- OpenVINO bf16 (8-bit mantissa activations): IoU >= 0.7 and scores within 0.1 for at least 90 % of them.
  Measured on 32 frames (every 25th): 78 % agree at the exact tolerance, 91 % at IoU 0.8 / 0.1, 97 % at
  IoU 0.7 / 0.1, 99 % at IoU 0.5 / 0.15 (docs/benchmarks.md). `openvino_precision: auto` (the default) picks it
  on CPUs with native bf16.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from surveil.config import DetectorConfig
from surveil.detection.agreement import detection_agreement
from surveil.detection.checkpoints import ModelLoadError
from surveil.detection.factory import create_detector, resolve_backend
from surveil.detection.runtimes import OnnxDetector, cache_key, cached_onnx, openvino_precision
from surveil.detection.torch_detector import TorchDetector
from tests.support.media import clip_frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "configs/media/pets2009-s2l1.mp4"
MODEL = ROOT / "models/pedestrian-mnv2.pt"
FRAME_INDICES = (0, 150, 300, 450, 600)

pytestmark = pytest.mark.slow

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed (pip install -e '.[fast]')"
)
needs_onnxruntime = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed (pip install -e '.[export]')"
)


def config(**kwargs) -> DetectorConfig:
    return DetectorConfig(weights=str(MODEL), device="cpu", min_size=800, batch_size=1, **kwargs)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return clip_frames(CLIP, FRAME_INDICES)


@pytest.fixture(scope="module")
def reference(frames):
    """Torch eager, the model exactly as trained: (detections per frame, operating thresholds)."""
    detector = TorchDetector(config(), optimize=False)
    return [detector.detect([f])[0] for f in frames], detector.operating_thresholds


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def run(detector, frames):
    return [detector.detect([f])[0] for f in frames]


def test_reference_sees_people(reference):
    dets, thresholds = reference
    assert sum(int((d.confidence >= thresholds[d.class_id]).sum()) for d in dets) >= 10


def test_torch_optimized_agrees(frames, reference):
    dets, thresholds = reference
    detector = TorchDetector(config())
    matched, total = detection_agreement(dets, run(detector, frames), thresholds, 0.9, 0.02)
    assert matched == total


@needs_onnxruntime
def test_onnxruntime_agrees(frames, reference, cache_dir):
    dets, thresholds = reference
    detector = create_detector(config(backend="onnxruntime"), cache_dir)
    assert isinstance(detector, OnnxDetector) and detector.class_names == ["__background__", "pedestrian"]
    np.testing.assert_allclose(detector.operating_thresholds, thresholds)
    matched, total = detection_agreement(dets, run(detector, frames), thresholds, 0.9, 0.02)
    assert matched == total


@needs_openvino
def test_openvino_fp32_agrees(frames, reference, cache_dir):
    dets, thresholds = reference
    detector = create_detector(config(backend="openvino", openvino_precision="fp32"), cache_dir)
    assert detector.precision == "fp32"
    matched, total = detection_agreement(dets, run(detector, frames), thresholds, 0.9, 0.02)
    assert matched == total


@needs_openvino
def test_openvino_bf16_agrees_loosely(frames, reference, cache_dir):
    dets, thresholds = reference
    detector = create_detector(config(backend="openvino", openvino_precision="bf16"), cache_dir)
    matched, total = detection_agreement(dets, run(detector, frames), thresholds, 0.7, 0.1)
    assert matched >= 0.9 * total, f"{matched} of {total} confident detections agree ({detector.precision})"


@pytest.mark.parametrize(
    ("requested", "capabilities", "expected"),
    [
        ("auto", ["FP32", "BF16", "INT8"], "bf16"),
        ("auto", ["FP32", "INT8"], "fp32"),
        ("bf16", ["FP32", "BF16"], "bf16"),
        ("bf16", ["FP32"], "fp32"),  # asked for, but the CPU would emulate it: slower than fp32
        ("fp32", ["FP32", "BF16"], "fp32"),
    ],
)
def test_openvino_precision_follows_the_cpu(requested, capabilities, expected):
    assert openvino_precision(requested, capabilities) == expected


@needs_onnxruntime
def test_export_is_cached_by_checkpoint_and_input_size(cache_dir, monkeypatch):
    first = cached_onnx(config(), cache_dir)
    assert first.is_file() and first.with_name(first.name + ".json").is_file()
    stamp = first.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this checkpoint at this size")

    monkeypatch.setattr("surveil.detection.runtimes.export_onnx", no_export)
    assert cached_onnx(config(), cache_dir) == first and first.stat().st_mtime_ns == stamp
    assert cache_key(config()) != cache_key(DetectorConfig(weights=str(MODEL), min_size=640))


def test_backend_choice(monkeypatch):
    assert DetectorConfig().backend == "torch"
    assert resolve_backend(config(backend="onnxruntime")) == "onnxruntime"
    available = {"openvino": False, "onnxruntime": True}
    monkeypatch.setattr("surveil.detection.runtimes.backend_available", lambda b: b == "torch" or available[b])
    assert resolve_backend(config(backend="auto")) == "onnxruntime"
    available["openvino"] = True
    assert resolve_backend(config(backend="auto")) == "openvino"
    available.update(openvino=False, onnxruntime=False)
    assert resolve_backend(config(backend="auto")) == "torch"
    with pytest.raises(ModelLoadError, match=r"not installed.*\[fast\]"):
        OnnxDetector(config(backend="openvino"), "openvino")
