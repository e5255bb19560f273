"""A machine-independent compute figure for the detector: GFLOPs per frame at the configured input.

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the eager PyTorch model loaded from the
checkpoint, on one frame: convolutions and matrix products, a multiply-add counted as 2 FLOPs
(elementwise ops, resizing, RoIAlign and NMS are not counted). Split by the model's top-level
parts (for a torchvision Faster R-CNN: ``backbone`` (with its FPN), ``rpn``, ``roi_heads``). The RoI
heads' share depends on how many proposals reach them (at most the checkpoint's post-NMS budget).

Time per frame divided into this gives the GFLOP/s a runtime reaches on this machine; across machines
and models, time tracks FLOPs for a given runtime and ISA (docs/benchmarks.md). Needs torch: on the
CPU runtime install (no torch) :func:`detector_cost` says so instead of counting.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from surveil.config import DetectorConfig

log = logging.getLogger(__name__)

NEEDS_TORCH = "GFLOPs per frame: not counted, the figure needs torch (pip install 'surveil[torch]')"


@dataclass(frozen=True)
class FrameCost:
    """FLOPs of one frame through the detector's network."""

    flops: float
    parts: dict[str, float] = field(default_factory=dict)  # top-level part name -> FLOPs, in model order
    input_hw: tuple[int, int] | None = None  # the network input (after the model's resize), when known
    frame_hw: tuple[int, int] | None = None

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def describe(self) -> str:
        """'14.3 GFLOPs per frame at input 800x1066 (backbone 12.0, rpn 1.3, roi_heads 1.0)'."""
        where = f" at input {self.input_hw[0]}x{self.input_hw[1]}" if self.input_hw else ""
        split = ", ".join(f"{name} {flops / 1e9:.1f}" for name, flops in self.parts.items() if flops > 0)
        return f"{self.gflops:.1f} GFLOPs per frame{where}" + (f" ({split})" if split else "")


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def count_flops(model: Any, image: np.ndarray) -> FrameCost:
    """FLOPs of ``model`` (an eager torch detector taking ``[CHW float tensor]``, in eval mode) on one BGR ``image``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from surveil.evaluation.predict import bgr_to_tensor

    children = [name for name, _ in model.named_children()]
    seen: dict[str, tuple[int, int]] = {}
    hooks = []
    first = next((getattr(model, name) for name in ("backbone", "body", "features") if hasattr(model, name)), None)
    if first is not None:  # the network input: what the first part after the model's own resize receives

        def record(_module: Any, args: tuple[Any, ...]) -> None:
            tensor = args[0] if args else None
            if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
                seen.setdefault("hw", (int(tensor.shape[-2]), int(tensor.shape[-1])))

        hooks.append(first.register_forward_pre_hook(record))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model([bgr_to_tensor(image)])
    finally:
        for hook in hooks:
            hook.remove()
    by_module = counter.get_flop_counts()
    root = type(model).__name__
    parts = {name: float(sum(by_module.get(f"{root}.{name}", {}).values())) for name in children}
    return FrameCost(
        flops=float(counter.get_total_flops()),
        parts=parts,
        input_hw=seen.get("hw"),
        frame_hw=(int(image.shape[0]), int(image.shape[1])),
    )


def detector_cost(config: DetectorConfig, image: np.ndarray) -> FrameCost | str:
    """The FLOPs of ``config``'s detector at its input size on ``image``, or a line saying why they were not counted
    (no torch; weights that are an exported graph; a model that does not load). Never raises for those."""
    if not torch_available():
        return NEEDS_TORCH
    if str(config.weights).endswith(".onnx"):
        return "GFLOPs per frame: not counted, detector.weights is an exported graph (the count needs the torch checkpoint)"
    try:
        from surveil.detection.torch_detector import TorchDetector

        model = TorchDetector(config.model_copy(update={"device": "cpu"}), optimize=False).model
        return count_flops(model, image)
    except Exception as exc:  # a count is a report line: never fail the caller for it
        log.debug("FLOP count failed", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"GFLOPs per frame: not counted ({type(exc).__name__}: {first})"


def achieved(cost: FrameCost | str, seconds_per_frame: float) -> str:
    """', 14.3 GFLOPs/frame = 45 GFLOP/s' for a report line beside a time per frame ('' without a count)."""
    if isinstance(cost, str) or seconds_per_frame <= 0:
        return ""
    return f"; {cost.gflops:.1f} GFLOPs/frame = {cost.gflops / seconds_per_frame:.0f} GFLOP/s"
