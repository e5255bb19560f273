from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from surveil.evaluation.predict import bgr_to_tensor, predict, set_input_size
from tests.evaluation.conftest import random_detector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.set_num_threads(2)
    return random_detector()


def test_boxes_are_in_input_pixels(model):
    # the model resizes both to 320 px; a box found on the half-size image must come back at half size
    torch.manual_seed(3)
    small = torch.rand(3, 160, 240)
    large = F.interpolate(small[None], scale_factor=2.0, mode="bilinear", align_corners=False)[0]
    pred_small, pred_large = predict(model, [small, large])
    assert len(pred_small.boxes) >= 5  # score threshold 0: whatever survives NMS
    assert len(pred_small.boxes) == len(pred_large.boxes)
    np.testing.assert_allclose(pred_small.scores, pred_large.scores, atol=1e-3)
    np.testing.assert_allclose(pred_small.boxes * 2, pred_large.boxes, atol=0.5)
    assert pred_small.boxes[:, [0, 2]].max() <= 240 and pred_small.boxes[:, [1, 3]].max() <= 160
    assert pred_small.boxes.dtype == np.float32 and pred_small.labels.dtype == np.int64


def test_set_input_size_changes_the_network_input(model):
    set_input_size(model, 480)
    try:
        assert model.transform.min_size == (480,) and model.transform.max_size == 800
        images, _ = model.transform([torch.rand(3, 240, 320)])
        assert tuple(images.image_sizes[0]) == (480, 640)
    finally:
        set_input_size(model, 320, 320)


def test_bgr_to_tensor_swaps_channels():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    rgb = bgr_to_tensor(bgr)
    assert rgb.shape == (3, 2, 3)
    assert rgb[2].min() == 1.0 and rgb[0].max() == 0.0
