"""The int8 lever: post-training quantisation of the shipped detector, calibrated on training images.

    .venv/bin/pip install nncf       # not a dependency of the daemon: only this experiment needs it
    .venv/bin/python -m bench.int8_quantization [--calibration 100] [--min-size 800]

The checkpoint is exported to ONNX exactly as the daemon does (``surveil.detection.factory.cached_onnx``),
read by OpenVINO and quantised by NNCF (``nncf.quantize``, the tool OpenVINO documents for this)
with calibration images drawn (seeded) from the training split of configs/train-pedestrian.yaml —
never PETS09-S2L1 or any test image. Two variants: the whole graph, and the backbone only (the RPN
and RoI heads left in float, where box regression lives). Each is compared with OpenVINO fp32 and
bf16 on the same frames: PETS09-S2L1 AP50 over the five every-5th-frame phases (mean, range),
Penn-Fudan test AP50 at the close-up input, and median ms per frame (frames interleaved).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
from pathlib import Path

import numpy as np
import torch

from bench.compare_detectors import PHASES, ap50, interleaved, phase_ap50
from bench.compare_yolo_fastest import load_pennfudan_test
from bench.images import read_bgr
from bench.operating_threshold import training_config
from surveil.config import DetectorConfig
from surveil.detection.factory import cached_onnx
from surveil.detection.torch_detector import frames_to_tensors
from surveil.evaluation import Prediction
from surveil.evaluation.surveillance import load_pets_s2l1
from surveil.training.train import load_splits

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def model_input(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames_to_tensors([frame], CPU)[0].numpy())


def calibration_inputs(count: int, seed: int) -> list[np.ndarray]:
    samples = list(load_splits(training_config(REPO / "configs/train-pedestrian.yaml")).train.samples)
    random.Random(seed).shuffle(samples)
    return [model_input(read_bgr(sample.image_path)) for sample in samples[:count]]


def quantised(core, onnx: Path, calibration: list[np.ndarray], backbone_only: bool):
    """NNCF on the ONNX graph (its OpenVINO front end cannot walk the If subgraphs of the exported
    detector); the quantised ONNX (QuantizeLinear/DequantizeLinear pairs) is what OpenVINO runs in int8."""
    import nncf
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx))
    ignored = nncf.IgnoredScope(patterns=[".*/rpn/.*", ".*/roi_heads/.*"], validate=False) if backbone_only else None
    result = nncf.quantize(
        model,
        nncf.Dataset(calibration, lambda x: {"image": x}),
        subset_size=len(calibration),
        fast_bias_correction=True,
        **({"ignored_scope": ignored} if ignored else {}),
    )
    path = onnx.with_name(f"{onnx.stem}-int8{'-backbone' if backbone_only else ''}.onnx")
    onnx_lib.save(result, str(path))
    return core.read_model(str(path))


def runner(core, model, precision: str, threads: int):
    compiled = core.compile_model(
        model,
        "CPU",
        {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()
    outputs = [compiled.output(name) for name in ("boxes", "labels", "scores")]

    def detect(frame: np.ndarray) -> Prediction:
        result = request.infer({"image": model_input(frame)})
        boxes, labels, scores = (result[output] for output in outputs)
        keep = scores >= 0.01
        return Prediction(boxes[keep], scores[keep], labels[keep])

    return detect


def variants(core, config: DetectorConfig, calibration, threads: int, cache: Path) -> dict:
    onnx = cached_onnx(config, cache)
    return {
        "openvino fp32": runner(core, core.read_model(str(onnx)), "f32", threads),
        "openvino bf16": runner(core, core.read_model(str(onnx)), "bf16", threads),
        "int8, whole graph": runner(core, quantised(core, onnx, calibration, False), "bf16", threads),
        "int8, backbone only": runner(core, quantised(core, onnx, calibration, True), "bf16", threads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(REPO / "models/pedestrian-mnv2.pt"))
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--closeup-size", type=int, default=640)
    parser.add_argument("--calibration", type=int, default=100, help="training images to calibrate on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache" / "models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import openvino as ov

    core = ov.Core()
    calibration = calibration_inputs(args.calibration, seed=0)
    frames, targets = load_pets_s2l1(args.shared_data, every=1)
    pennfudan = load_pennfudan_test(args.shared_data)
    far = variants(
        core, DetectorConfig(weights=args.weights, min_size=args.min_size), calibration, args.threads, args.cache
    )
    pets, ms = interleaved(far, frames)
    close = variants(
        core, DetectorConfig(weights=args.weights, min_size=args.closeup_size), calibration, args.threads, args.cache
    )
    penn, _ = interleaved(close, pennfudan.frames)
    print(
        f"calibration: {len(calibration)} training images; PETS09-S2L1 {len(frames)} frames at {args.min_size}; "
        f"Penn-Fudan test at {args.closeup_size}"
    )
    print(f"| runtime | PETS09-S2L1 AP50, mean (range) of {PHASES} phases | ms/frame | × fp32 | Penn-Fudan test AP50 |")
    print("|---|---|---|---|---|")
    for name in far:
        per_phase = phase_ap50(pets[name], targets)
        print(
            f"| {name} | {statistics.mean(per_phase):.4f} ({min(per_phase):.3f}-{max(per_phase):.3f}) | {ms[name]:.0f} "
            f"| {ms['openvino fp32'] / ms[name]:.1f} | {ap50(penn[name], pennfudan.targets):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
