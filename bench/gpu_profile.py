"""Where the shipped detector's time goes on a CUDA device, path by path (a diagnostic beside bench/gpu.sh).

    python -m bench.gpu_profile [--shared-data ../shared/data] [--batch 8] [--seconds 3]
    python -m bench.gpu_profile --dry-run    # CPU, input 320, one pass each: checks the script runs

1. First pass at each new batch size: a fresh detector, batch sizes 1..--batch in turn, each shape's
   first ``detect`` against its second (kernel selection and compilation on first sight of a shape).
2. Images/s at --batch on PETS frames for: per-image (the model's transform), batched with NCHW input,
   batched with channels_last input to an NCHW model (the CUDA default), model and input
   channels_last; fp32 and fp16 each; and the best of them again with cudnn.benchmark on.
3. The fastest fp16 path's stages, each ended by a device synchronise: upload and preprocessing,
   backbone, RPN, RoI heads, post-processing to host detections (ms per batch).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from bench.gpu_accuracy import device_for, shipped_model_parser
from surveil.config import DetectorConfig
from surveil.detection.torch_detector import TorchDetector
from surveil.evaluation.surveillance import load_pets_s2l1


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(call) -> float:
    sync()
    started = time.perf_counter()
    call()
    sync()
    return time.perf_counter() - started


def detector(
    args,
    device: str,
    half: bool,
    batched: bool = True,
    channels_last: bool | None = None,
    input_channels_last: bool | None = None,
) -> TorchDetector:
    config = DetectorConfig(
        weights=str(args.weights), device=device, half=half, min_size=args.min_size, batch_size=args.batch
    )
    # the input's layout apart from the model's: channels_last by default (the NHWC frames' natural view)
    if input_channels_last is None:
        return TorchDetector(config, batched=batched, channels_last=channels_last)
    return TorchDetector(config, batched=batched, channels_last=channels_last, input_channels_last=input_channels_last)


def rate(found: TorchDetector, frames: list[np.ndarray], seconds: float, dry: bool) -> float:
    found.detect(frames)
    found.detect(frames)
    sync()
    done, started = 0, time.perf_counter()
    while done == 0 or (not dry and time.perf_counter() - started < seconds):
        found.detect(frames)
        done += len(frames)
    sync()
    return done / (time.perf_counter() - started)


def stages(found: TorchDetector, frames: list[np.ndarray], repeats: int) -> dict[str, float]:
    totals: dict[str, float] = OrderedDict(
        (name, 0.0) for name in ("upload+preprocess", "backbone", "rpn", "roi heads", "postprocess")
    )
    model: Any = found.model
    for _ in range(repeats):
        with torch.inference_mode():
            holder: dict[str, Any] = {}
            totals["upload+preprocess"] += timed(lambda: holder.update(batch=found.preprocess(frames)))
            batch = holder["batch"]
            with found.autocast():
                totals["backbone"] += timed(lambda: holder.update(features=model.backbone(batch.tensors)))
                features = holder["features"]
                if isinstance(features, torch.Tensor):
                    features = OrderedDict([("0", features)])
                totals["rpn"] += timed(lambda: holder.update(proposals=model.rpn(batch, features)[0]))
                totals["roi heads"] += timed(
                    lambda: holder.update(found=model.roi_heads(features, holder["proposals"], batch.image_sizes)[0])
                )
            totals["postprocess"] += timed(
                lambda: [
                    found.to_detections(o)
                    for o in model.transform.postprocess(
                        holder["found"], batch.image_sizes, [f.shape[:2] for f in frames]
                    )
                ]
            )
    return {name: 1000 * value / repeats for name, value in totals.items()}


def main() -> int:
    parser = shipped_model_parser(__doc__, "CPU, input 320, batch 2, one pass each: checks the script runs")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    device = device_for(args.dry_run)
    if device is None:
        return 2
    if args.dry_run:
        args.min_size, args.batch = 320, 2
    frames = load_pets_s2l1(args.shared_data, every=25)[0][: args.batch]
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: figures mean nothing)"
    print(
        f"device: {name}; torch {torch.__version__}; {args.weights.name} at {args.min_size}, batch {args.batch}",
        flush=True,
    )

    print("\n1. first pass at each batch size (fresh detector, batched fp16, the default layout): ms first / ms second")
    fresh = detector(args, device, half=True)
    for size in range(1, args.batch + 1):
        first = timed(lambda: fresh.detect(frames[:size]))
        second = timed(lambda: fresh.detect(frames[:size]))
        print(f"   batch {size}: {1000 * first:8.1f} / {1000 * second:6.1f}", flush=True)

    print(f"\n2. images/s at batch {args.batch}")
    variants = {
        "per-image (model transform)": {"batched": False},
        "batched, NCHW input and model": {"channels_last": False, "input_channels_last": False},
        "batched, channels_last input, NCHW model (CUDA default)": {"channels_last": False},
        "batched, model and input channels_last": {"channels_last": True},
    }
    best: tuple[float, str, dict, bool] = (0.0, "", {}, True)
    for label, options in variants.items():
        for half in (False, True):
            found = detector(args, device, half, **options)
            value = rate(found, frames, args.seconds, args.dry_run)
            print(f"   {label:45s} {'fp16' if half else 'fp32'}: {value:7.1f}", flush=True)
            if value > best[0] and options.get("batched", True):
                best = (value, label, options, half)
            del found
    torch.backends.cudnn.benchmark = True
    found = detector(args, device, best[3], **best[2])
    print(
        f"   {best[1]:45s} {'fp16' if best[3] else 'fp32'}, cudnn.benchmark: {rate(found, frames, args.seconds, args.dry_run):7.1f}",
        flush=True,
    )
    torch.backends.cudnn.benchmark = False

    print(f"\n3. stages of '{best[1]}' {'fp16' if best[3] else 'fp32'}, ms per batch of {args.batch}")
    found = detector(args, device, best[3], **best[2])
    found.detect(frames)
    for stage, ms in stages(found, frames, 1 if args.dry_run else 20).items():
        print(f"   {stage:20s} {ms:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
