"""The MobileNetV2 Faster R-CNN: freeze policy (training), the stem split, and the checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.detection.architectures import freeze_batchnorm
from surveil.detection.checkpoints import build_model, known_architectures, load_checkpoint_model, save_checkpoint
from surveil.training.architectures import MNV2_STAGES, mobilenet_v2_fpn_to_fine_tune, torchvision_to_fine_tune


def _trainable_blocks(model: torch.nn.Module) -> list[int]:
    features = torch.nn.Sequential(*model.backbone.stem, *model.backbone.tail)
    return [i for i, block in enumerate(features) if any(p.requires_grad for p in block.parameters())]


@pytest.mark.parametrize(
    "stages, blocks",
    [(0, []), (1, list(range(14, 19))), (2, list(range(7, 19))), (5, list(range(19)))],
)
def test_trainable_stages_unfreeze_from_the_top(stages: int, blocks: list[int]) -> None:
    model = mobilenet_v2_fpn_to_fine_tune(2, trainable_stages=stages)
    assert _trainable_blocks(model) == blocks
    assert model.backbone.stem_is_frozen() == (stages <= 1)
    assert all(p.requires_grad for p in model.roi_heads.parameters())


def test_trainable_stages_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match=f"0..{len(MNV2_STAGES)}"):
        mobilenet_v2_fpn_to_fine_tune(2, trainable_stages=6)


@pytest.mark.parametrize("frozen_bn, kind", [(True, FrozenBatchNorm2d), (False, torch.nn.BatchNorm2d)])
def test_batchnorm_policy(frozen_bn: bool, kind: type) -> None:
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 2, frozen_bn=frozen_bn)
    norms = [m for m in model.backbone.modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))]
    assert norms and all(type(m) is kind for m in norms)


def test_forward_from_stem_is_the_backbone() -> None:
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 2).eval()
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        direct = model.backbone(x)
        split = model.backbone.forward_from_stem(model.backbone.stem(x))
    assert list(direct) == ["0", "1"] and direct["0"].shape[-2:] == (8, 10) and direct["1"].shape[-2:] == (4, 5)
    for key in direct:
        torch.testing.assert_close(direct[key], split[key])


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    kwargs = {"min_size": 320, "max_size": 480, "anchor_sizes": [[16, 32, 64], [128, 256, 512]], "aspect_ratios": [2.0]}
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 3, **kwargs).eval()
    path = save_checkpoint(
        tmp_path / "m.pt", model, "fasterrcnn_mobilenet_v2_fpn", ["__background__", "a", "b"], kwargs
    )
    loaded, payload = load_checkpoint_model(path)
    assert payload["arch_kwargs"] == kwargs
    assert loaded.transform.min_size == (320,)
    assert loaded.rpn.anchor_generator.num_anchors_per_location() == [3, 3]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_freeze_batchnorm_keeps_the_statistics() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    net[1].running_mean.uniform_()
    net[1].running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.rand(2, 3, 5, 5)
    before = net(x)
    freeze_batchnorm(net)
    assert isinstance(net[1], FrozenBatchNorm2d)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-4)


def test_architectures_are_registered() -> None:
    names = known_architectures()
    for name in ("fasterrcnn_mobilenet_v2_fpn", "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn_tuned"):
        assert name in names


@pytest.mark.parametrize("frozen_bn", [True, False])
def test_fine_tuned_model_has_the_tensors_the_daemon_rebuilds(frozen_bn: bool) -> None:
    tuned = mobilenet_v2_fpn_to_fine_tune(2, trainable_stages=0, frozen_bn=frozen_bn)
    rebuilt = build_model("fasterrcnn_mobilenet_v2_fpn", 2, frozen_bn=frozen_bn)
    assert {k: v.shape for k, v in tuned.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}


@pytest.mark.parametrize(
    "architecture, pretrained, message",
    [
        ("fasterrcnn_mobilenet_v2_fpn", "coco", "no pretrained weights for 'fasterrcnn_mobilenet_v2_fpn'"),
        ("fasterrcnn_resnet50_fpn", "none", "pretrained must be 'imagenet' or 'coco'"),
    ],
)
def test_torchvision_to_fine_tune_rejects(architecture: str, pretrained: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        torchvision_to_fine_tune(architecture, 2, pretrained)


# ---------------------------------------------------------------- the stride-8 variant (issue 16)


def test_s8_forward_from_packed_stem_is_the_backbone() -> None:
    model = build_model("fasterrcnn_mobilenet_v2_fpn_s8", 2).eval()
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        direct = model.backbone(x)
        packed = model.backbone.stem(x)
        split = model.backbone.forward_from_stem(packed)
    assert packed.shape == (1, 4 * 32 + 96, 8, 10)  # one stride-16 tensor: the cache and its crops are unchanged
    assert [direct[k].shape[-2:] for k in direct] == [(16, 20), (8, 10), (4, 5)]
    for key in direct:
        torch.testing.assert_close(direct[key], split[key])


def test_s8_fine_tune_freezes_the_stem_and_round_trips(tmp_path: Path) -> None:
    kwargs = {"min_size": 360, "max_size": 640, "out_channels": 64, "representation_size": 128}
    tuned = mobilenet_v2_fpn_to_fine_tune(
        2, trainable_stages=1, architecture="fasterrcnn_mobilenet_v2_fpn_s8", **kwargs
    )
    assert tuned.backbone.stem_is_frozen()
    assert all(p.requires_grad for p in tuned.backbone.tail.parameters())
    assert tuned.rpn.anchor_generator.num_anchors_per_location() == [9, 9, 9]
    path = save_checkpoint(tmp_path / "s8.pt", tuned, "fasterrcnn_mobilenet_v2_fpn_s8", ["__background__", "p"], kwargs)
    loaded, _ = load_checkpoint_model(path)
    assert loaded.transform.min_size == (360,) and loaded.rpn._post_nms_top_n["testing"] == 150
    for key, value in tuned.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
