"""Starting points for fine-tuning: pretrained weights and the freeze policy.

The architectures themselves (and how a checkpoint rebuilds them) are in
:mod:`surveil.detection.architectures`; this module only adds what training needs before the first step:
ImageNet or COCO weights, and which parameters stay frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import (
    MobileNet_V2_Weights,
    MobileNet_V3_Large_Weights,
    ResNet50_Weights,
    WeightsEnum,
    mobilenet_v2,
)
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection import faster_rcnn as tv_frcnn
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.detection.architectures import MNV2_STEM_END, fasterrcnn_mobilenet_v2_fpn, fasterrcnn_mobilenet_v2_fpn_s8

MNV2_FPN_BUILDERS = {
    "fasterrcnn_mobilenet_v2_fpn": fasterrcnn_mobilenet_v2_fpn,
    "fasterrcnn_mobilenet_v2_fpn_s8": fasterrcnn_mobilenet_v2_fpn_s8,
}

# MobileNetV2 ``features`` split into stages at each stride change; the last stage ends at 1280 ch.
MNV2_STAGES = ((0, 2), (2, 4), (4, 7), (7, MNV2_STEM_END), (MNV2_STEM_END, 19))

# Fine-tunable torchvision architectures: name -> (torchvision builder, ImageNet backbone, COCO detector).
PRETRAINED_TORCHVISION: dict[str, tuple[Callable[..., FasterRCNN], WeightsEnum, WeightsEnum]] = {
    "fasterrcnn_resnet50_fpn": (
        tv_frcnn.fasterrcnn_resnet50_fpn,
        ResNet50_Weights.IMAGENET1K_V1,
        tv_frcnn.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
    ),
    "fasterrcnn_mobilenet_v3_large_fpn_tuned": (
        tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn,
        MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    ),
}


def pretrained_weights_url(architecture: str, weights: str) -> str | None:
    """The URL torchvision downloads for ``weights`` ('imagenet' or 'coco') of ``architecture``; None for a file."""
    if architecture in MNV2_FPN_BUILDERS:
        return MobileNet_V2_Weights.IMAGENET1K_V1.url if weights == "imagenet" else None
    if architecture in PRETRAINED_TORCHVISION:
        _builder, backbone, coco = PRETRAINED_TORCHVISION[architecture]
        return {"imagenet": backbone.url, "coco": coco.url}.get(weights)
    return None


def mobilenet_v2_features(pretrained: bool | str | Path, frozen_bn: bool) -> nn.Sequential:
    """MobileNetV2 ``features``; ``pretrained`` True = torchvision's ImageNet weights (from the
    torch hub cache), a path = a state dict file with the same weights, False = random."""
    norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    if pretrained is True:
        return mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1, norm_layer=norm_layer).features
    net = mobilenet_v2(weights=None, norm_layer=norm_layer)
    if pretrained:
        state = torch.load(Path(pretrained), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net.features


def freeze_mobilenet_v2_stages(features: nn.Sequential, trainable_stages: int) -> None:
    """Leave the last ``trainable_stages`` of :data:`MNV2_STAGES` trainable (0 = all frozen)."""
    if not 0 <= trainable_stages <= len(MNV2_STAGES):
        raise ValueError(f"trainable_stages must be 0..{len(MNV2_STAGES)}, got {trainable_stages}")
    first_trainable = len(MNV2_STAGES) - trainable_stages
    for stage, (start, end) in enumerate(MNV2_STAGES):
        for p in features[start:end].parameters():
            p.requires_grad_(stage >= first_trainable)


def mobilenet_v2_fpn_to_fine_tune(
    num_classes: int,
    pretrained_backbone: bool | str | Path = False,
    trainable_stages: int = 1,
    frozen_bn: bool = True,
    architecture: str = "fasterrcnn_mobilenet_v2_fpn",
    **kwargs: Any,
) -> FasterRCNN:
    """``architecture`` (``fasterrcnn_mobilenet_v2_fpn`` or ``..._s8``) on a pretrained backbone (see
    :func:`mobilenet_v2_features`) with all but the last ``trainable_stages`` backbone stages frozen;
    ``kwargs`` are its arch kwargs."""
    if architecture not in MNV2_FPN_BUILDERS:
        raise ValueError(f"not a MobileNetV2 FPN architecture: {architecture!r}")
    features = mobilenet_v2_features(pretrained_backbone, frozen_bn)
    freeze_mobilenet_v2_stages(features, trainable_stages)
    return MNV2_FPN_BUILDERS[architecture](num_classes, frozen_bn=frozen_bn, features=features, **kwargs)


def torchvision_to_fine_tune(architecture: str, num_classes: int, pretrained: str, **kwargs: Any) -> FasterRCNN:
    """A torchvision Faster R-CNN of :data:`PRETRAINED_TORCHVISION` with a new box predictor for
    ``num_classes``, from 'imagenet' (backbone) or 'coco' (whole detector) weights.

    torchvision freezes BatchNorm for pretrained backbones, so the tensors fit the model that
    :data:`surveil.detection.architectures.ARCHITECTURES` rebuilds from the checkpoint.
    """
    if architecture not in PRETRAINED_TORCHVISION:
        raise ValueError(f"no pretrained weights for {architecture!r}; known: {', '.join(PRETRAINED_TORCHVISION)}")
    builder, backbone_weights, coco_weights = PRETRAINED_TORCHVISION[architecture]
    if pretrained == "coco":
        model = builder(weights=coco_weights, **kwargs)
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = tv_frcnn.FastRCNNPredictor(in_features, num_classes)
        return model
    if pretrained == "imagenet":
        return builder(weights=None, weights_backbone=backbone_weights, num_classes=num_classes, **kwargs)
    raise ValueError(f"pretrained must be 'imagenet' or 'coco', got {pretrained!r}")
