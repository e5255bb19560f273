"""Detector architectures defined by surveil, registered with :mod:`surveil.models`.

Importable with torch and torchvision alone (the daemon builds these to load a checkpoint).

``fasterrcnn_mobilenet_v2_fpn``: Faster R-CNN on an ImageNet MobileNetV2 with a two-level
FPN-like neck — stride 16 (``features[:14]``, 96 ch: small, distant people) and stride 32
(``features[14:]``, 1280 ch) — anchors shaped for standing people, and a light RoI head
(7x7x128 -> 256 -> 256). ``features[:14]`` is the "stem": when it is frozen its outputs can be
cached, and :meth:`MobileNetV2FPN.forward_from_stem` runs the rest.

Also registered: ``fasterrcnn_resnet50_fpn`` and ``fasterrcnn_mobilenet_v3_large_fpn_tuned``,
torchvision's own models with a new box predictor and frozen BatchNorm, so that a fine-tuned
checkpoint of them rebuilds with the same tensors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection import faster_rcnn as tv_frcnn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.models import register_architecture

# MobileNetV2 ``features`` split into stages at each stride change; the last stage ends at 1280 ch.
MNV2_STAGES = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 19))
MNV2_STEM_END = 14  # features[:14] -> stride 16, 96 channels

DEFAULT_ANCHOR_SIZES = ((32, 64, 128), (192, 320, 512))
DEFAULT_ASPECT_RATIOS = (1.5, 2.5, 3.5)  # height / width: standing people


class MobileNetV2FPN(nn.Module):
    """MobileNetV2 features -> {'0': stride 16, '1': stride 32}, ``out_channels`` each."""

    def __init__(self, features: nn.Sequential, out_channels: int = 128) -> None:
        super().__init__()
        self.stem = features[:MNV2_STEM_END]
        self.tail = features[MNV2_STEM_END:]
        self.fpn = FeaturePyramidNetwork([96, 1280], out_channels)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_from_stem(self.stem(images))

    def forward_from_stem(self, c4: torch.Tensor) -> dict[str, torch.Tensor]:
        c5 = self.tail(c4)
        return self.fpn(OrderedDict([("0", c4), ("1", c5)]))

    def stem_is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.stem.parameters())


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


def _anchor_generator(anchor_sizes: Sequence[Sequence[int]], aspect_ratios: Sequence[float]) -> AnchorGenerator:
    sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    if len({len(level) for level in sizes}) != 1:
        raise ValueError(f"every level needs the same number of anchor sizes, got {sizes}")
    return AnchorGenerator(sizes, (tuple(float(r) for r in aspect_ratios),) * len(sizes))


@register_architecture("fasterrcnn_mobilenet_v2_fpn")
def fasterrcnn_mobilenet_v2_fpn(
    num_classes: int,
    pretrained_backbone: bool | str | Path = False,
    trainable_stages: int = 1,
    frozen_bn: bool = True,
    out_channels: int = 128,
    representation_size: int = 256,
    anchor_sizes: Sequence[Sequence[int]] = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN on MobileNetV2 (see the module docstring); ``kwargs`` go to FasterRCNN
    (min_size, max_size, rpn_*_top_n_*, box_* ...)."""
    features = mobilenet_v2_features(pretrained_backbone, frozen_bn)
    freeze_mobilenet_v2_stages(features, trainable_stages)
    backbone = MobileNetV2FPN(features, out_channels)
    anchors = _anchor_generator(anchor_sizes, aspect_ratios)
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1"], output_size=7, sampling_ratio=2)
    box_head = tv_frcnn.TwoMLPHead(out_channels * 7 * 7, representation_size)
    predictor = tv_frcnn.FastRCNNPredictor(representation_size, num_classes)
    kwargs.setdefault("min_size", 720)
    kwargs.setdefault("max_size", 1280)
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=predictor,
        **kwargs,
    )


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def _torchvision_tuned(
    builder: Any, backbone_weights: Any, coco_weights: Any, num_classes: int, pretrained: str | None, **kwargs: Any
) -> FasterRCNN:
    """A torchvision Faster R-CNN with a new box predictor for ``num_classes``.

    ``pretrained``: None (random; how the daemon rebuilds a checkpoint), 'imagenet' (backbone) or
    'coco' (whole detector). BatchNorm is frozen in every case, as torchvision does for pretrained
    backbones, so a checkpoint's tensors fit the rebuilt model.
    """
    if pretrained == "coco":
        model = builder(weights=coco_weights, **kwargs)
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = tv_frcnn.FastRCNNPredictor(in_features, num_classes)
        return model
    if pretrained == "imagenet":
        return builder(weights=None, weights_backbone=backbone_weights, num_classes=num_classes, **kwargs)
    if pretrained:
        raise ValueError(f"pretrained must be None, 'imagenet' or 'coco', got {pretrained!r}")
    kwargs.pop("trainable_backbone_layers", None)
    return freeze_batchnorm(builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs))


@register_architecture("fasterrcnn_resnet50_fpn")
def fasterrcnn_resnet50_fpn(num_classes: int, pretrained: str | None = None, **kwargs: Any) -> FasterRCNN:
    """torchvision's ResNet-50 FPN (v1) fine-tuned for ``num_classes`` (ImageNet or COCO start)."""
    from torchvision.models import ResNet50_Weights

    return _torchvision_tuned(
        tv_frcnn.fasterrcnn_resnet50_fpn, ResNet50_Weights.IMAGENET1K_V1,
        tv_frcnn.FasterRCNN_ResNet50_FPN_Weights.COCO_V1, num_classes, pretrained, **kwargs,
    )


@register_architecture("fasterrcnn_mobilenet_v3_large_fpn_tuned")
def fasterrcnn_mobilenet_v3_large_fpn_tuned(num_classes: int, pretrained: str | None = None, **kwargs: Any) -> FasterRCNN:
    """torchvision's MobileNetV3-Large FPN fine-tuned for ``num_classes`` (ImageNet or COCO start)."""
    from torchvision.models import MobileNet_V3_Large_Weights

    return _torchvision_tuned(
        tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn, MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1, num_classes, pretrained, **kwargs,
    )
