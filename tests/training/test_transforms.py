"""Transforms move boxes with the image; inverses round-trip; invalid boxes are dropped and counted."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from surveil.training import features_cache as fc
from surveil.training.transforms import (
    DropInvalidBoxes,
    crop_boxes,
    eval_transforms,
    hflip_boxes,
    make_target,
    scale_boxes,
    train_transforms,
)

BOXES = np.array([[10, 20, 30, 44], [0, 0, 5, 5], [50.5, 1, 63.25, 47]], np.float32)


def _image(h: int = 48, w: int = 64) -> torch.Tensor:
    return torch.randint(0, 255, (3, h, w), dtype=torch.uint8)


@pytest.mark.parametrize(
    "forward, inverse",
    [
        (lambda b: hflip_boxes(b, 64), lambda b: hflip_boxes(b, 64)),
        (lambda b: scale_boxes(b, 1.5, 2.0), lambda b: scale_boxes(b, 1 / 1.5, 1 / 2.0)),
        (lambda b: scale_boxes(hflip_boxes(b, 64), 0.5, 0.5), lambda b: hflip_boxes(scale_boxes(b, 2, 2), 64)),
    ],
)
def test_numpy_geometry_round_trips(forward, inverse) -> None:
    np.testing.assert_allclose(inverse(forward(BOXES)), BOXES, atol=1e-5)


def test_v2_flip_twice_gives_the_same_boxes_and_matches_numpy_flip() -> None:
    image, target = _image(), make_target(BOXES, np.array([1, 1, 2]), (48, 64))
    flip = v2.RandomHorizontalFlip(p=1.0)
    once_image, once = flip(image, target)
    np.testing.assert_allclose(once["boxes"].numpy(), hflip_boxes(BOXES, 64), atol=1e-5)
    twice_image, twice = flip(once_image, once)
    assert torch.equal(twice_image, image)
    np.testing.assert_allclose(twice["boxes"].numpy(), BOXES, atol=1e-5)
    assert twice["labels"].tolist() == [1, 1, 2]


def test_box_moves_with_the_pixels_under_resize() -> None:
    image = torch.zeros(3, 48, 64, dtype=torch.uint8)
    image[:, 20:60, 10:30] = 255
    target = make_target(np.array([[10, 20, 30, 48]], np.float32), np.array([1]), (48, 64))
    resized, out = v2.Resize((96, 128))(image, target)
    x1, y1, x2, y2 = out["boxes"][0].round().int().tolist()
    assert (x1, y1, x2, y2) == (20, 40, 60, 96)
    assert resized[0, y1:y2, x1:x2].float().mean() > 250
    assert resized[0, :, : x1 - 2].float().mean() < 5


@pytest.mark.parametrize(
    "boxes, kept, dropped",
    [
        ([[10, 10, 20, 20]], 1, 0),
        ([[10, 10, 10, 20]], 0, 1),  # zero width
        ([[70, 10, 90, 20]], 0, 1),  # right of the image
        ([[-30, -30, -5, -5]], 0, 1),  # above and left
        ([[-5, 10, 5, 20], [60, 40, 80, 60]], 2, 0),  # partly outside: clipped, kept
    ],
)
def test_drop_invalid_boxes_counts(boxes, kept, dropped) -> None:
    target = make_target(np.array(boxes, np.float32), np.ones(len(boxes), np.int64), (48, 64))
    _, out = DropInvalidBoxes()(_image(), target)
    assert len(out["boxes"]) == len(out["labels"]) == kept
    assert out["num_dropped"] == dropped
    if kept:
        b = out["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 48).all()


def test_train_pipeline_keeps_boxes_valid_and_inside() -> None:
    torch.manual_seed(0)
    pipeline = train_transforms([96, 128], 256)
    for _ in range(20):
        image, target = pipeline(_image(), make_target(BOXES, np.array([1, 1, 1]), (48, 64)))
        assert image.dtype == torch.float32 and image.max() <= 1.0
        h, w = image.shape[-2:]
        assert min(abs(min(h, w) - size) for size in (96, 128)) <= 1  # sizes round down
        b = target["boxes"]
        assert len(b) + target["num_dropped"] == 3
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all() and (b >= 0).all()


def test_eval_pipeline_changes_nothing_geometric() -> None:
    image, target = eval_transforms()(_image(), make_target(BOXES, np.array([1, 1, 2]), (48, 64)))
    assert image.shape == (3, 48, 64)
    np.testing.assert_array_equal(target["boxes"].numpy(), BOXES)


@pytest.mark.parametrize(
    "window, expected, dropped",
    [
        ((0, 0, 64, 48), BOXES, 0),
        ((10, 0, 40, 48), [[0, 20, 20, 44]], 2),  # first box shifted; the others outside
        ((20, 20, 10, 8), [], 3),  # box 1 only 10 % visible: dropped
    ],
)
def test_crop_boxes_shifts_clips_and_counts(window, expected, dropped) -> None:
    boxes, labels, bad = crop_boxes(BOXES, np.array([1, 2, 3]), *window)
    np.testing.assert_allclose(boxes.reshape(-1, 4), np.array(expected, np.float32).reshape(-1, 4), atol=1e-5)
    assert bad == dropped and len(labels) == len(boxes)


def test_feature_crop_keeps_cells_even_and_boxes_aligned() -> None:
    stem = torch.arange(20 * 30, dtype=torch.float16).reshape(1, 20, 30)
    boxes = torch.tensor([[160.0, 96.0, 240.0, 288.0]])
    view = fc.CachedView(stem, (320, 480), (160, 240), boxes, torch.tensor([1]))
    for seed in range(10):
        cropped, _ = fc.crop_view(view, 9, random.Random(seed))
        assert cropped.stem.shape[1:] == (8, 8)
        y0 = int(cropped.stem[0, 0, 0]) // 30
        x0 = int(cropped.stem[0, 0, 0]) % 30
        assert y0 % 2 == 0 and x0 % 2 == 0
        for b in cropped.boxes:
            np.testing.assert_allclose(b.numpy(), np.clip(boxes[0].numpy() - [x0 * 16, y0 * 16] * 2, 0, 128), atol=1e-4)
