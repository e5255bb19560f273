"""The detector architectures a checkpoint can name: one explicit table, name -> builder.

A builder makes an untrained model, ``builder(num_classes=..., **arch_kwargs)``, with exactly the
tensors of a checkpoint written for that architecture; :func:`surveil.detection.checkpoints.load_checkpoint_model`
then loads the weights. Needs torch and torchvision only: the daemon must not need
``surveil.training``, which imports from here (never the other way round) to start fine-tuning
from pretrained weights.

``fasterrcnn_mobilenet_v2_fpn`` (the shipped models/pedestrian-mnv2.pt): Faster R-CNN on a
MobileNetV2 with a two-level FPN-like neck — stride 16 (``features[:14]``, 96 ch: small, distant
people) and stride 32 (``features[14:]``, 1280 ch) — anchors shaped for standing people, and a
light RoI head (7x7x128 -> 256 -> 256). ``features[:14]`` is the "stem": when it is frozen its
outputs can be cached, and :meth:`MobileNetV2FPN.forward_from_stem` runs the rest.

``fasterrcnn_mobilenet_v2_fpn_s8``: the same backbone with a third, finer pyramid level at stride 8
(``features[:7]``, 32 ch) and stride-8 anchors for distant people, so that 480x360 surveillance video
is read at (near) its native size instead of being upscaled ~2x: about a third of the compute. Its
stem is still ``features[:14]``; ``backbone.stem`` returns the stride-8 and stride-16 maps packed into
one stride-16 tensor (the stride-8 map space-to-depth, 4 x 32 ch, then the 96 ch), so the feature
cache, its crops in 16-px cells and :meth:`MobileNetV2FPNS8.forward_from_stem` work unchanged.

``fasterrcnn_resnet50_fpn`` and ``fasterrcnn_mobilenet_v3_large_fpn_tuned``: torchvision's own
models with a new box predictor and frozen BatchNorm, as fine-tuned by ``surveil train``.

The other torchvision names are torchvision's detectors as shipped; :data:`TORCHVISION_COCO`
gives their COCO weights (``detector.weights: coco``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

# torchvision ships no type information (no py.typed): its names are Any to mypy
from torchvision.models import WeightsEnum, mobilenet_v2
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection import faster_rcnn as tv_frcnn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

MNV2_STEM_END = 14  # MobileNetV2 features[:14] -> stride 16, 96 channels
MNV2_S8_END = 7  # MobileNetV2 features[:7] -> stride 8, 32 channels

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


class PackedStem(nn.Module):
    """``features[:7]`` then ``features[7:14]``; returns the stride-8 map (space-to-depth, 128 ch)
    and the stride-16 map (96 ch) concatenated: one (N, 224, H/16, W/16) tensor. The input must be
    a multiple of 16 pixels per side (the detector's transform pads to 32)."""

    def __init__(self, s8: nn.Sequential, s16: nn.Sequential) -> None:
        super().__init__()
        self.s8 = s8
        self.s16 = s16

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c3 = self.s8(images)
        c4 = self.s16(c3)
        return torch.cat([nn.functional.pixel_unshuffle(c3, 2), c4], dim=1)


class MobileNetV2FPNS8(nn.Module):
    """MobileNetV2 features -> {'0': stride 8, '1': stride 16, '2': stride 32}, ``out_channels`` each."""

    C3 = 32  # channels of features[:7]

    def __init__(self, features: nn.Sequential, out_channels: int = 96) -> None:
        super().__init__()
        self.stem = PackedStem(features[:MNV2_S8_END], features[MNV2_S8_END:MNV2_STEM_END])
        self.tail = features[MNV2_STEM_END:]
        self.fpn = FeaturePyramidNetwork([self.C3, 96, 1280], out_channels)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        c3 = self.stem.s8(images)
        return self._pyramid(c3, self.stem.s16(c3))

    def forward_from_stem(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        split = 4 * self.C3
        return self._pyramid(nn.functional.pixel_shuffle(packed[:, :split], 2), packed[:, split:])

    def _pyramid(self, c3: torch.Tensor, c4: torch.Tensor) -> dict[str, torch.Tensor]:
        c5 = self.tail(c4)
        return self.fpn(OrderedDict([("0", c3), ("1", c4), ("2", c5)]))

    def stem_is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.stem.parameters())


def _anchor_generator(anchor_sizes: Sequence[Sequence[int]], aspect_ratios: Sequence[float]) -> AnchorGenerator:
    sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    if len({len(level) for level in sizes}) != 1:
        raise ValueError(f"every level needs the same number of anchor sizes, got {sizes}")
    return AnchorGenerator(sizes, (tuple(float(r) for r in aspect_ratios),) * len(sizes))


def fasterrcnn_mobilenet_v2_fpn(
    num_classes: int,
    frozen_bn: bool = True,
    out_channels: int = 128,
    representation_size: int = 256,
    anchor_sizes: Sequence[Sequence[int]] = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    features: nn.Sequential | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN on MobileNetV2 (see the module docstring); ``kwargs`` go to FasterRCNN
    (min_size, max_size, rpn_*_top_n_*, box_* ...).

    ``features``: the MobileNetV2 ``features`` to build on, made with the same ``frozen_bn``
    (fine-tuning passes ImageNet ones); None = random, which is how a checkpoint is rebuilt.
    """
    backbone = MobileNetV2FPN(_features_or_random(features, frozen_bn), out_channels)
    kwargs.setdefault("min_size", 720)
    kwargs.setdefault("max_size", 1280)
    return _faster_rcnn(backbone, 2, num_classes, representation_size, anchor_sizes, aspect_ratios, kwargs)


def _features_or_random(features: nn.Sequential | None, frozen_bn: bool) -> nn.Sequential:
    """The given MobileNetV2 ``features``, or random ones (how a checkpoint is rebuilt)."""
    if features is not None:
        return features
    return mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d).features


def _faster_rcnn(
    backbone: MobileNetV2FPN | MobileNetV2FPNS8,
    levels: int,
    num_classes: int,
    representation_size: int,
    anchor_sizes: Sequence[Sequence[int]],
    aspect_ratios: Sequence[float],
    kwargs: dict[str, Any],
) -> FasterRCNN:
    """Faster R-CNN on a MobileNetV2 pyramid of ``levels`` levels: anchors, RoIAlign over every
    level, a two-layer box head of ``representation_size`` and the class predictor."""
    roi_pool = MultiScaleRoIAlign(
        featmap_names=[str(level) for level in range(levels)], output_size=7, sampling_ratio=2
    )
    box_head = tv_frcnn.TwoMLPHead(backbone.out_channels * 7 * 7, representation_size)
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=_anchor_generator(anchor_sizes, aspect_ratios),
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=tv_frcnn.FastRCNNPredictor(representation_size, num_classes),
        **kwargs,
    )


S8_ANCHOR_SIZES = ((16, 24, 32), (48, 64, 96), (128, 192, 288))


def fasterrcnn_mobilenet_v2_fpn_s8(
    num_classes: int,
    frozen_bn: bool = True,
    out_channels: int = 96,
    representation_size: int = 256,
    anchor_sizes: Sequence[Sequence[int]] = S8_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    features: nn.Sequential | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN on MobileNetV2 with a stride-8/16/32 pyramid (see the module docstring);
    ``kwargs`` go to FasterRCNN. Defaults sized for 480x360 video at its native size."""
    backbone = MobileNetV2FPNS8(_features_or_random(features, frozen_bn), out_channels)
    if len(anchor_sizes) != 3:
        raise ValueError(f"fasterrcnn_mobilenet_v2_fpn_s8 has 3 pyramid levels, got {len(anchor_sizes)} anchor levels")
    kwargs.setdefault("min_size", 360)
    kwargs.setdefault("max_size", 640)
    kwargs.setdefault("rpn_post_nms_top_n_test", 150)
    return _faster_rcnn(backbone, 3, num_classes, representation_size, anchor_sizes, aspect_ratios, kwargs)


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


def fasterrcnn_resnet50_fpn(num_classes: int, **kwargs: Any) -> FasterRCNN:
    """torchvision's ResNet-50 FPN (v1) with a ``num_classes`` predictor and frozen BatchNorm, as
    fine-tuned from ImageNet or COCO weights (``surveil.training.architectures``)."""
    model = tv_frcnn.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    return freeze_batchnorm(model)


def fasterrcnn_mobilenet_v3_large_fpn_tuned(num_classes: int, **kwargs: Any) -> FasterRCNN:
    """torchvision's MobileNetV3-Large FPN with a ``num_classes`` predictor and frozen BatchNorm,
    as fine-tuned from ImageNet or COCO weights (``surveil.training.architectures``)."""
    model = tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
    )
    return freeze_batchnorm(model)


# torchvision's detectors as shipped: name -> (torchvision builder, its COCO weights).
TORCHVISION_COCO: dict[str, tuple[Callable[..., FasterRCNN], WeightsEnum]] = {
    "fasterrcnn_resnet50_fpn_v2": (
        tv_frcnn.fasterrcnn_resnet50_fpn_v2,
        tv_frcnn.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        tv_frcnn.fasterrcnn_mobilenet_v3_large_320_fpn,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
    ),
}

# Every architecture a checkpoint can name: name -> builder(num_classes=..., **arch_kwargs).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(build, weights=None, weights_backbone=None) for name, (build, _) in TORCHVISION_COCO.items()},
    "fasterrcnn_mobilenet_v2_fpn": fasterrcnn_mobilenet_v2_fpn,
    "fasterrcnn_mobilenet_v2_fpn_s8": fasterrcnn_mobilenet_v2_fpn_s8,
    "fasterrcnn_resnet50_fpn": fasterrcnn_resnet50_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn_tuned": fasterrcnn_mobilenet_v3_large_fpn_tuned,
}
