import urllib.error

import numpy as np
import pytest
import torch

from surveil.config import DetectorConfig
from surveil.detector import TorchDetector, keep_mask, resolve_thresholds
from surveil.models import ModelLoadError, build_model, load_coco_model, read_checkpoint, save_checkpoint

LABELS = ["__background__", "person", "car"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=len(LABELS))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, "fasterrcnn_mobilenet_v3_large_320_fpn", LABELS, score_thresholds={"person": 0.3})
    return path


def test_checkpoint_round_trip_is_weights_only(checkpoint):
    payload = read_checkpoint(checkpoint)
    assert payload["labels"] == LABELS
    assert payload["architecture"] == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert payload["score_thresholds"] == {"person": 0.3}


def test_detector_returns_boxes_in_frame_pixels(checkpoint):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", score_threshold=0.0))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (720, 1280, 3), np.uint8), rng.integers(0, 255, (240, 320, 3), np.uint8)]
    results = detector.detect(frames)
    assert len(results) == 2
    for image, dets in zip(frames, results):
        h, w = image.shape[:2]
        assert len(dets) > 0
        assert dets.xyxy.dtype == np.float32
        assert (dets.xyxy[:, [0, 2]] <= w + 1e-3).all() and (dets.xyxy[:, [1, 3]] <= h + 1e-3).all()
        assert (dets.xyxy >= -1e-3).all()
        assert set(dets.class_id.tolist()) <= {1, 2}
    # boxes of the 1280-wide frame reach beyond the network's 569-pixel-wide input: they were scaled back
    assert results[0].xyxy[:, 2].max() > 640


def test_class_filter_keeps_only_listed_classes(checkpoint):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", score_threshold=0.0, classes=["car"]))
    dets = detector.detect([np.full((240, 320, 3), 127, np.uint8)])[0]
    assert set(dets.class_id.tolist()) <= {2}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (DetectorConfig(), [0.5, 0.3, 0.5]),  # checkpoint operating point used for person
        (DetectorConfig(score_threshold=0.7), [0.7, 0.7, 0.7]),  # explicit default wins over checkpoint
        (DetectorConfig(class_score_thresholds={"car": 0.9}), [0.5, 0.3, 0.9]),
        (DetectorConfig(score_threshold=0.2, class_score_thresholds={"person": 0.8}), [0.2, 0.8, 0.2]),
    ],
)
def test_threshold_precedence(config, expected):
    np.testing.assert_allclose(resolve_thresholds(config, LABELS, {"person": 0.3}), expected)


def test_unknown_class_names_are_errors():
    with pytest.raises(ModelLoadError, match="unicorn"):
        keep_mask(DetectorConfig(classes=["unicorn"]), LABELS)
    with pytest.raises(ModelLoadError, match="unicorn"):
        resolve_thresholds(DetectorConfig(class_score_thresholds={"unicorn": 0.5}), LABELS, {})


def test_missing_and_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        TorchDetector(DetectorConfig(weights=str(tmp_path / "none.pt"), device="cpu"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"hello": 1}, foreign)
    with pytest.raises(ModelLoadError, match="not a surveil detector checkpoint"):
        read_checkpoint(foreign)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="is not a PyTorch checkpoint"):
        read_checkpoint(junk)


def test_coco_weights_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError) as info:
        load_coco_model("fasterrcnn_mobilenet_v3_large_320_fpn")
    message = str(info.value)
    assert "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth" in message
    assert str(tmp_path) in message


def test_cuda_requested_without_cuda_is_clear(checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        TorchDetector(DetectorConfig(weights=str(checkpoint), device="cuda"))


def test_same_size_frames_batched_match_one_by_one(checkpoint):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", score_threshold=0.0))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (240, 320, 3), np.uint8) for _ in range(2)]
    batched = detector.detect(frames)
    for frame, together in zip(frames, batched):
        alone = detector.detect([frame])[0]
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.confidence, alone.confidence, atol=1e-5)
