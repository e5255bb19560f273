"""Small random-weight detectors for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from surveil.detection.checkpoints import build_model, save_checkpoint

ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"
LABELS = ["__background__", "person"]
ARCH_KWARGS = {"box_detections_per_img": 20, "box_score_thresh": 0.0}


def random_detector(seed: int = 0) -> torch.nn.Module:
    """mobilenet-320 Faster R-CNN with random weights that still gives varied detections.

    Fresh random weights shrink the activations to ~1e-8 through the backbone, so every
    proposal gets the same score. BatchNorm statistics taken from one batch of noise bring
    the features back to unit scale; a box predictor scaled to those features then gives
    distinct scores and boxes. Near-zero RPN box deltas keep the proposals at the anchors:
    random deltas on unit-scale features turn last-bit differences between runtimes into
    different proposals, which no trained model does.
    """
    torch.manual_seed(seed)
    model = build_model(ARCH, num_classes=len(LABELS), **ARCH_KWARGS)
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batch
            module.reset_running_stats()
    model.backbone.train()
    with torch.no_grad():
        model.backbone(torch.rand(2, 3, 320, 320))
    predictor = model.roi_heads.box_predictor
    for layer, std in ((predictor.cls_score, 5e-4), (predictor.bbox_pred, 5e-5), (model.rpn.head.bbox_pred, 1e-4)):
        torch.nn.init.normal_(layer.weight, std=std)
        torch.nn.init.zeros_(layer.bias)
    return model.eval()


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    return save_checkpoint(
        path, random_detector(), ARCH, LABELS, arch_kwargs=ARCH_KWARGS, score_thresholds={"person": 0.4}
    )
