import threading
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from surveil.config import DetectorConfig
from surveil.detection.agreement import detection_agreement
from surveil.detection.checkpoints import ModelLoadError, load_coco_model, read_checkpoint
from surveil.detection.preprocessing import HostStaging, frames_to_tensors, group_by_shape, pad_batch
from surveil.detection.protocol import keep_mask, resolve_thresholds
from surveil.detection.torch_detector import TorchDetector
from tests.support.media import clip_frames
from tests.support.models import random_checkpoint

LABELS = ["__background__", "person", "car"]
ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "configs/media/pets2009-s2l1.mp4"
MODEL = ROOT / "models/pedestrian-mnv2.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", LABELS, score_thresholds={"person": 0.3})


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
    detector = TorchDetector(
        DetectorConfig(weights=str(checkpoint), device="cpu", score_threshold=0.0, classes=["car"])
    )
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


@pytest.fixture(scope="module")
def pets_frames() -> list[np.ndarray]:
    return clip_frames(CLIP, (0, 200, 400))


@pytest.fixture(scope="module")
def pets_detectors():
    """The shipped model, optimized, preprocessed batched on the device and image by image (today's path)."""
    config = DetectorConfig(weights=str(MODEL), device="cpu", min_size=800)
    batched, per_image = TorchDetector(config), TorchDetector(config, batched=False)
    assert batched.batched and not per_image.batched
    return batched, per_image


def test_defaults_pick_the_path():
    config = DetectorConfig(weights=str(MODEL), device="cpu")
    assert TorchDetector(config).batched
    assert not TorchDetector(config, optimize=False).batched  # the eager reference stays model(list)


def test_batched_input_is_the_transforms_input(pets_detectors, pets_frames):
    batched, per_image = pets_detectors
    with torch.inference_mode():
        expected, _ = per_image.model.transform(frames_to_tensors(pets_frames, per_image.device))
        got = batched.preprocess(pets_frames)
    assert got.image_sizes == expected.image_sizes
    assert got.tensors.shape == expected.tensors.shape
    torch.testing.assert_close(got.tensors, expected.tensors, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([None, None], id="two-frames-one-size"),
        pytest.param([None, None, None], id="three-frames-one-size"),
        pytest.param([None, (384, 288), None], id="two-sizes"),
    ],
)
def test_batched_path_gives_the_per_image_boxes(pets_detectors, pets_frames, sizes):
    batched, per_image = pets_detectors
    frames = [f if size is None else cv2.resize(f, size) for f, size in zip(pets_frames, sizes)]
    reference, got = per_image.detect(frames), batched.detect(frames)
    for frame, dets in zip(frames, got):  # boxes in each frame's own pixels, whatever its size
        assert (dets.xyxy[:, [0, 2]] <= frame.shape[1] + 1e-3).all() and (
            dets.xyxy[:, [1, 3]] <= frame.shape[0] + 1e-3
        ).all()
    matched, total = detection_agreement(reference, got, per_image.operating_thresholds, 0.9, 0.02)
    assert total >= 2 * len(frames) and matched == total


@pytest.mark.slow
def test_batched_path_agrees_with_the_eager_model(pets_detectors, pets_frames):
    batched, _ = pets_detectors
    eager = TorchDetector(batched.config, optimize=False)
    matched, total = detection_agreement(
        eager.detect(pets_frames), batched.detect(pets_frames), eager.operating_thresholds, 0.9, 0.02
    )
    assert total > 0 and matched == total


def test_staging_buffer_is_reused_across_calls(checkpoint):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", score_threshold=0.0))
    frames = [np.full((240, 320, 3), 100, np.uint8), np.full((240, 320, 3), 150, np.uint8)]
    detector.detect(frames)
    first = detector._staging._buffers[(240, 320, 3)]  # held, so a new buffer could not take its address
    detector.detect(frames[::-1])
    again = detector._staging._buffers[(240, 320, 3)]
    assert again is first and again.data_ptr() == first.data_ptr()


def test_staging_reallocates_only_when_the_shape_needs_it():
    staging = HostStaging(torch.device("cpu"))
    two = [np.full((4, 6, 3), v, np.uint8) for v in (1, 2)]
    first = staging.upload(two)
    assert first.shape == (2, 4, 6, 3) and first[1, 0, 0, 0] == 2
    assert staging.upload(two[:1]).data_ptr() == first.data_ptr()  # a smaller batch uses the same buffer
    assert staging.upload(two).data_ptr() == first.data_ptr()
    other = staging.upload([np.zeros((8, 6, 3), np.uint8)])
    assert other.data_ptr() != first.data_ptr()
    assert staging.upload(two).data_ptr() == first.data_ptr()  # the first shape's buffer is kept too
    grown = staging.upload(two * 2)
    assert grown.shape == (4, 4, 6, 3) and grown.data_ptr() != first.data_ptr()
    assert staging.upload(two).data_ptr() == grown.data_ptr()


def test_staging_keeps_the_most_recent_shapes_only():
    staging = HostStaging(torch.device("cpu"))
    for height in range(1, HostStaging.MAX_SHAPES + 3):
        staging.upload([np.zeros((height, 2, 3), np.uint8)])
    assert len(staging._buffers) == HostStaging.MAX_SHAPES


def test_mixed_sizes_are_grouped_and_padded_back_in_order():
    frames = [np.zeros((4, 6, 3), np.uint8), np.zeros((8, 6, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)]
    groups = group_by_shape(frames)
    assert groups == [[0, 2], [1]]
    first, second = torch.full((2, 3, 5, 7), 1.0), torch.full((1, 3, 9, 7), 2.0)
    first[1] = 3.0
    batch = pad_batch([first, second], [0, 2, 1], size_divisible=4)
    assert batch.shape == (3, 3, 12, 8)
    assert batch[0, :, :5, :7].eq(1).all() and batch[1, :, :9, :7].eq(2).all() and batch[2, :, :5, :7].eq(3).all()
    assert batch[0, :, 5:].eq(0).all() and batch[1, :, :, 7:].eq(0).all()


def test_warm_up_runs_every_batch_size_once(checkpoint, monkeypatch):
    detector = TorchDetector(
        DetectorConfig(weights=str(checkpoint), device="cpu", batch_size=3, min_size=64, max_size=128)
    )
    sizes = []
    monkeypatch.setattr(detector, "detect", lambda frames: sizes.append(len(frames)))
    detector.warm_up((48, 64, 3))
    assert sizes == [3, 1, 2]  # full batches first


def test_warm_up_stops_at_its_time_budget(checkpoint, monkeypatch):
    detector = TorchDetector(
        DetectorConfig(weights=str(checkpoint), device="cpu", batch_size=4, min_size=64, max_size=128)
    )
    clock = iter(range(0, 1000, 10))  # each reading 10 s later: the budget (30 s) ends after three passes
    monkeypatch.setattr("surveil.detection.torch_detector.time.monotonic", lambda: next(clock))
    sizes = []
    monkeypatch.setattr(detector, "detect", lambda frames: sizes.append(len(frames)))
    detector.warm_up((48, 64, 3))
    assert sizes == [4, 1, 2]


def test_warm_up_once_per_thread_and_frame_size(checkpoint, monkeypatch):
    """CUDA chooses kernels per thread on first sight of a shape (bench/gpu_profile.py): the detector
    warms up the first time each thread hands it frames of a new size, and only then."""
    detector = TorchDetector(
        DetectorConfig(weights=str(checkpoint), device="cpu", batch_size=2, min_size=64, max_size=128)
    )
    warmed = []
    monkeypatch.setattr(detector, "warm_up", lambda shape: warmed.append((threading.get_ident(), shape)))
    small, large = np.zeros((48, 64, 3), np.uint8), np.zeros((72, 96, 3), np.uint8)
    detector._warm_up_new_shapes([small, small])
    detector._warm_up_new_shapes([small])
    detector._warm_up_new_shapes([small, large])
    other = threading.Thread(target=lambda: detector._warm_up_new_shapes([small]))
    other.start()
    other.join()
    here = threading.get_ident()
    assert warmed[:2] == [(here, (48, 64, 3)), (here, (72, 96, 3))]
    assert len(warmed) == 3 and warmed[2][0] != here and warmed[2][1] == (48, 64, 3)


def test_cpu_detect_does_not_warm_up(checkpoint, monkeypatch):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", min_size=64, max_size=128))
    monkeypatch.setattr(detector, "warm_up", lambda shape: pytest.fail("warm-up is for CUDA's per-shape kernel choice"))
    detector.detect([np.zeros((48, 64, 3), np.uint8)])


def test_batched_input_is_channels_last(checkpoint):
    detector = TorchDetector(DetectorConfig(weights=str(checkpoint), device="cpu", min_size=64, max_size=128))
    batch = detector.preprocess([np.zeros((48, 64, 3), np.uint8)] * 2)
    assert batch.tensors.is_contiguous(memory_format=torch.channels_last)
