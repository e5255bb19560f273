"""The detector's FLOPs per frame (surveil.detection.cost): exact on a toy model, split on a real small detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from surveil.config import DetectorConfig
from surveil.detection import cost
from tests.support.models import random_checkpoint


class Toy(nn.Module):
    """Takes a list of CHW tensors like a torchvision detector; a 1x1 conv (3->4) then a linear layer (4->2)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1, bias=False)
        self.head = nn.Linear(4, 2)

    def forward(self, images):
        features = self.backbone(torch.stack(images))
        return self.head(features.mean(dim=(2, 3)))


def test_flops_of_a_toy_model_are_exact_and_split_by_part():
    found = cost.count_flops(Toy().eval(), np.zeros((6, 10, 3), np.uint8))
    conv = 2 * 3 * 4 * 6 * 10  # a multiply-add counts 2
    linear = 2 * 4 * 2
    assert found.flops == conv + linear
    assert found.parts == {"backbone": conv, "head": linear}
    assert found.input_hw == (6, 10) and found.frame_hw == (6, 10)
    assert found.describe().startswith("0.0 GFLOPs per frame at input 6x10")


def test_achieved_rate_beside_a_time_per_frame():
    found = cost.FrameCost(flops=14.3e9, parts={"backbone": 12e9})
    assert cost.achieved(found, 0.318) == "; 14.3 GFLOPs/frame = 45 GFLOP/s"
    assert cost.achieved("not counted", 0.3) == ""


def test_without_torch_the_figure_says_it_needs_torch(monkeypatch):
    monkeypatch.setattr(cost, "torch_available", lambda: False)
    said = cost.detector_cost(DetectorConfig(weights="whatever.pt"), np.zeros((4, 4, 3), np.uint8))
    assert said == cost.NEEDS_TORCH and "needs torch" in said


def test_an_exported_graph_or_a_missing_checkpoint_is_a_line_not_an_error(tmp_path):
    frame = np.zeros((4, 4, 3), np.uint8)
    assert "needs the torch checkpoint" in str(cost.detector_cost(DetectorConfig(weights="m.onnx"), frame))
    missing = cost.detector_cost(DetectorConfig(weights=str(tmp_path / "absent.pt")), frame)
    assert isinstance(missing, str) and missing.startswith("GFLOPs per frame: not counted (")


@pytest.mark.slow
def test_a_real_detector_splits_into_backbone_rpn_and_roi_heads(tmp_path):
    weights = random_checkpoint(tmp_path / "tiny.pt", ["__background__", "person"])
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    small = cost.detector_cost(DetectorConfig(weights=str(weights), min_size=160, device="cpu"), frame)
    large = cost.detector_cost(DetectorConfig(weights=str(weights), min_size=320, device="cpu"), frame)
    assert isinstance(small, cost.FrameCost) and isinstance(large, cost.FrameCost), (small, large)
    assert list(small.parts) == ["transform", "backbone", "rpn", "roi_heads"]
    assert small.parts["backbone"] > 0 and small.parts["rpn"] > 0 and small.parts["roi_heads"] > 0
    assert sum(small.parts.values()) == pytest.approx(small.flops)
    assert small.input_hw is not None and min(small.input_hw) >= 160
    assert large.parts["backbone"] > 3 * small.parts["backbone"]  # ~4x the pixels
