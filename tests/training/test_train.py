"""`surveil train` end to end on a handful of images (a few steps each), plus its small parts."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from surveil.detection.checkpoints import load_checkpoint_model, read_checkpoint
from surveil.training import engine
from surveil.training import features_cache as fc
from surveil.training import train as tr

EPOCHS, STEPS = 4, 6  # 6 training images, batch 1
TINY = {
    "train_sizes": [224, 256],
    "min_size": 256,
    "max_size": 400,
    "batch_size": 1,
    "lr": 0.01,
    "warmup_iters": 2,
    "rpn_post_nms_top_n_train": 200,
    "rpn_post_nms_top_n_test": 100,
    "box_batch_size_per_image": 64,
    "cache_photometric": 0.0,
    "val_fraction": 0.25,
    "threads": 1,
    "log_every": 1,
}


def run_config(tmp: Path, data: Path, weights: str, **overrides) -> tr.TrainConfig:
    config = {
        **tr.DEFAULTS,
        **TINY,
        "train_data": [f"yolo:{data}@train"],
        "backbone_weights": weights,
        "output_dir": str(tmp),
        "epochs": 2,
        **overrides,
    }
    return tr.TrainConfig.from_options(config)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path, backbone_weights: str) -> dict:
    """Four epochs on 6 images (6 steps each), keeping each epoch's full state."""
    out = tmp_path_factory.mktemp("run")
    config = run_config(out, tiny_dataset, backbone_weights, epochs=EPOCHS, keep_checkpoints=True, patience=0)
    model_path = tr.train(config)
    return {"config": config, "out": out, "model": model_path}


def test_training_lowers_the_loss_and_logs_every_epoch(trained: dict) -> None:
    rows = csv_rows(trained["out"] / "log.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    # Objectness and classification fall from their chance level (log 2) within a few steps. The
    # box-regression loss rises meanwhile (a better RPN hands the head more foreground boxes), so
    # the sum is no signal over 24 steps.
    for key in ("loss_objectness", "loss_classifier"):
        losses = [float(r[key]) for r in rows]
        assert losses[-1] < losses[0] * 0.9, (key, losses)
    assert all(r["val_ap50"] != "" and float(r["train_seconds"]) > 0 for r in rows)


def test_deployable_checkpoint_loads_in_the_daemon_format(trained: dict) -> None:
    model, payload = load_checkpoint_model(trained["model"])
    assert payload["architecture"] == "fasterrcnn_mobilenet_v2_fpn"
    assert payload["labels"] == ["__background__", "pedestrian"]
    assert payload["arch_kwargs"]["min_size"] == 256
    assert set(payload["score_thresholds"]) <= {"pedestrian"}
    assert payload["metrics"]["val"]["ap50"] is not None and payload["metrics"]["seconds_per_epoch"] > 0
    assert len(payload["config_sha256"]) == 64
    model.eval()
    with torch.inference_mode():
        out = model([torch.rand(3, 120, 160)])
    assert set(out[0]) == {"boxes", "scores", "labels"}


def test_trained_checkpoint_runs_in_the_daemon_detector_and_in_surveil_eval(
    trained: dict, tiny_dataset: Path, tmp_path: Path
) -> None:
    import json

    from surveil.cli import main as cli_main
    from surveil.config import DetectorConfig
    from surveil.detection.torch_detector import TorchDetector

    detector = TorchDetector(DetectorConfig(weights=str(trained["model"]), device="cpu", score_threshold=0.0))
    assert detector.class_names == ["__background__", "pedestrian"]
    image = np.zeros((180, 240, 3), np.uint8)
    (found,) = detector.detect([image])
    assert found.xyxy.shape[1] == 4 and (found.xyxy[:, [0, 2]] <= 240 + 1e-3).all()

    report = tmp_path / "report.json"
    status = cli_main(
        [
            "eval",
            "--weights",
            str(trained["model"]),
            "--data",
            str(tiny_dataset),
            "--format",
            "yolo",
            "--split",
            "train",
            "--json",
            str(report),
        ]
    )
    assert status == 0
    scored = json.loads(report.read_text())
    assert scored["num_images"] > 0 and 0.0 <= scored["ap50"] <= 1.0


def test_full_state_checkpoint_is_weights_only_safe(trained: dict) -> None:
    state = torch.load(trained["out"] / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == EPOCHS - 1 and state["step"] == EPOCHS * STEPS
    assert {"model", "optimizer", "lr_scheduler", "scaler", "config"} <= set(state)
    assert state["config"]["train_sizes"] == [224, 256]


def test_resume_continues_from_the_same_step_and_optimiser_state(trained: dict, tmp_path: Path) -> None:
    first = trained["out"] / "checkpoint-epoch0.pt"
    config = trained["config"].model_copy(
        update={"output_dir": str(tmp_path), "resume": str(first), "keep_checkpoints": False}
    )
    tr.train(config)
    resumed = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    straight = torch.load(trained["out"] / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert resumed["step"] == straight["step"] == EPOCHS * STEPS
    assert [int(r["epoch"]) for r in csv_rows(tmp_path / "log.csv")] == list(range(1, EPOCHS))
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    for key, value in straight["optimizer"]["state"].items():
        torch.testing.assert_close(
            resumed["optimizer"]["state"][key]["momentum_buffer"], value["momentum_buffer"], rtol=1e-4, atol=1e-5
        )
    assert resumed["lr_scheduler"]["last_epoch"] == straight["lr_scheduler"]["last_epoch"]


def test_cached_validation_equals_running_the_whole_model(trained: dict, tiny_dataset: Path) -> None:
    """Same detections up to the fp16 rounding of the cached features: every confident full-model
    box has a cached twin (IoU > 0.95, score within 0.02)."""
    from torchvision.ops import box_iou

    model, _ = load_checkpoint_model(trained["model"])
    model.roi_heads.score_thresh = 0.0
    splits = tr.load_splits(trained["config"])
    samples = splits.train.samples[:3]
    views = [v[0] for v in fc.build_views(model, samples, [256], flips=False)]
    cached = fc.predict_views(model, views)
    full = engine.predict_samples(model, samples, torch.device("cpu"))
    confident = 0
    for c, f in zip(cached, full):
        keep = f.scores > 0.2
        if not keep.any():
            continue
        iou = box_iou(torch.from_numpy(f.boxes[keep]), c["boxes"])
        best = iou.max(dim=1)
        assert (best.values > 0.95).all()
        np.testing.assert_allclose(c["scores"][best.indices].numpy(), f.scores[keep], atol=0.02)
        confident += int(keep.sum())
    assert confident > 0


def test_image_path_without_cache_trains(tiny_dataset: Path, backbone_weights: str, tmp_path: Path) -> None:
    config = run_config(tmp_path, tiny_dataset, backbone_weights, cache="off", epochs=1, max_steps=2)
    output = tr.train(config)
    assert output is not None and read_checkpoint(output)["metrics"]["epochs_run"] == 1
    assert int(csv_rows(tmp_path / "log.csv")[0]["step"]) == 2  # --max-steps


def test_config_file_then_flags(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "train_data: [{format: yolo, path: data, split: train, repeat: 2}]\nepochs: 3\nlr: 0.5\n"
    )
    parser = argparse.ArgumentParser()
    tr.add_arguments(parser)
    assert "--train-data" in parser.format_help() and "--no-hflip" in parser.format_help()
    config = tr.resolve_config(parser.parse_args(["-c", str(tmp_path / "t.yaml"), "--lr", "0.1", "--no-hflip"]))
    assert (config.epochs, config.lr, config.hflip, config.batch_size) == (3, 0.1, False, 4)
    assert config.train_data == [f"yolo:{tmp_path / 'data'}@train*2"]
    (tmp_path / "bad.yaml").write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(tr.TrainingError, match=r"unknown option.*learning_rate"):
        tr.resolve_config(parser.parse_args(["-c", str(tmp_path / "bad.yaml")]))


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("data/x", {"path": "data/x", "format": "auto", "split": None, "repeat": 1, "sizes": None}),
        (
            "mot:/d/PETS@train*3%480,640",
            {"path": "/d/PETS", "format": "mot", "split": "train", "repeat": 3, "sizes": [480, 640]},
        ),
        (
            "yolo:C:/odd:path@test",
            {"path": "C:/odd:path", "format": "yolo", "split": "test", "repeat": 1, "sizes": None},
        ),
        (
            {"path": "p", "repeat": 2, "sizes": [320]},
            {"path": "p", "format": "auto", "split": None, "repeat": 2, "sizes": [320]},
        ),
    ],
)
def test_data_specs(spec, expected) -> None:
    assert tr.parse_data_spec(spec) == expected


def test_non_finite_loss_stops_with_a_clear_message() -> None:
    losses = {"loss_classifier": torch.tensor(float("nan")), "loss_box_reg": torch.tensor(0.1)}
    with pytest.raises(tr.TrainingError, match=r"loss is nan at epoch 2, step 7 .*loss_classifier=nan.*Lower --lr"):
        engine.check_finite(losses, sum(losses.values()), 2, 7)


def test_main_reports_errors_without_raising(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    tr.add_arguments(parser)
    assert tr.main(parser.parse_args(["--train-data", str(tmp_path / "missing"), "--output-dir", str(tmp_path)])) == 1
    assert "does not exist" in caplog.text


@pytest.mark.parametrize(
    "schedule, step, factor",
    [
        ("cosine", 0, 0.001),
        ("cosine", 10, 1.0),
        ("cosine", 60, 0.5),
        ("cosine", 110, 0.0),
        ("step", 5, 0.5005),
        ("step", 25, 1.0),
        ("step", 55, 0.1),
        ("step", 85, 0.01),
    ],
)
def test_warmup_then_decay(schedule, step, factor) -> None:
    config = tr.TrainConfig(
        **{**tr.DEFAULTS, "warmup_iters": 10, "epochs": 11, "lr_schedule": schedule, "lr_steps": [5, 8]}
    )
    assert tr.lr_factor(step, 10, config) == pytest.approx(factor, abs=1e-3)


REPO = Path(__file__).resolve().parents[2]


# The hashes of the shipped configs. The checkpoints' own ``config_sha256`` fields were written by
# 0.2, whose hash still held absolute data paths (see models/README.md).
@pytest.mark.parametrize(
    "path, sha256",
    [
        ("configs/train-pedestrian.yaml", "74ec350a6ad412d7a731678dd337d4b33170613730abf0a798aede9f1ee3ccb8"),
        ("configs/train-pedestrian-s8.yaml", "c8fc479c87acb7805eacf0ec66effa97ca8dedb2724396b5e0c58d634fef2570"),
    ],
)
def test_shipped_training_configs_keep_their_hash(path: str, sha256: str) -> None:
    config = tr.TrainConfig.from_options({**tr.DEFAULTS, **tr.read_yaml(REPO / path)})
    assert config.sha256() == sha256


@pytest.mark.parametrize("path", ["configs/train-pedestrian.yaml", "configs/train-pedestrian-s8.yaml"])
def test_config_hash_is_the_same_in_every_checkout(tmp_path: Path, path: str) -> None:
    text = (REPO / path).read_text(encoding="utf-8")
    hashes = set()
    for folder in (tmp_path / "a", tmp_path / "b" / "deeper" / "checkout"):
        folder.mkdir(parents=True)
        (folder / "train.yaml").write_text(text, encoding="utf-8")
        config = tr.TrainConfig.from_options({**tr.DEFAULTS, **tr.read_yaml(folder / "train.yaml")})
        hashes.add(config.sha256())
    reference = tr.TrainConfig.from_options({**tr.DEFAULTS, **tr.read_yaml(REPO / path)}).sha256()
    assert hashes == {reference}


def test_neck_and_box_head_options_are_hashed_only_when_set_and_reach_the_model() -> None:
    parser = argparse.ArgumentParser()
    tr.add_arguments(parser)
    base = ["--train-data", "data", "--architecture", "fasterrcnn_mobilenet_v2_fpn_s8"]
    unset = tr.resolve_config(parser.parse_args(base))
    wide = tr.resolve_config(parser.parse_args([*base, "--neck-channels", "64", "--box-head-size", "128"]))
    assert (unset.neck_channels, unset.box_head_size, wide.neck_channels, wide.box_head_size) == (None, None, 64, 128)
    assert "neck_channels" not in tr.arch_kwargs_for(unset) and unset.sha256() != wide.sha256()
    kwargs = tr.arch_kwargs_for(wide)
    assert (kwargs["out_channels"], kwargs["representation_size"]) == (64, 128)
    with pytest.raises(tr.TrainingError, match="neck_channels"):
        tr.resolve_config(parser.parse_args([*base, "--neck-channels", "0"]))
