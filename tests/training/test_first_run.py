"""`surveil train` as a new user meets it: offline, on a slow CPU, with a short run.

Offline is made real: an empty torch hub cache, and every download refused (in-process: torch's
one download function raises; end to end: the HTTPS proxy is a closed port).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from surveil.training import train as tr
from surveil.training.architectures import pretrained_weights_url
from tests.support.polling import free_port

# every architecture `surveil train` accepts, with each pretrained source it downloads
DOWNLOADS = [
    ("fasterrcnn_mobilenet_v2_fpn", "imagenet"),
    ("fasterrcnn_mobilenet_v2_fpn_s8", "imagenet"),
    ("fasterrcnn_resnet50_fpn", "imagenet"),
    ("fasterrcnn_resnet50_fpn", "coco"),
    ("fasterrcnn_mobilenet_v3_large_fpn", "imagenet"),
    ("fasterrcnn_mobilenet_v3_large_fpn", "coco"),
]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(("architecture", "weights"), DOWNLOADS, ids=lambda v: v)
def test_offline_message_names_the_file_and_where_it_goes(offline, architecture, weights):
    config = tr.TrainConfig.from_options(
        {**tr.DEFAULTS, "train_data": ["yolo:x@train"], "architecture": architecture, "backbone_weights": weights}
    )
    with pytest.raises(tr.TrainingError) as caught:
        tr.build_for_training(config, num_classes=2)
    url = pretrained_weights_url(tr.ALIASES.get(architecture, architecture), weights)
    assert url is not None
    message = str(caught.value)
    assert url in message and str(offline / url.rsplit("/", 1)[-1]) in message, message
    assert "name resolution" in message  # why, in one line


@pytest.mark.slow
def test_surveil_train_offline_ends_with_the_message_not_a_traceback(tmp_path, tiny_dataset):
    """The real command, default architecture: its download goes through a proxy that is a closed port."""
    closed = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "https_proxy": closed, "HTTPS_PROXY": closed}
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "train", "--train-data", f"yolo:{tiny_dataset}@train", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Offline: fetch https://download.pytorch.org/models/mobilenet_v2-" in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr


@pytest.mark.parametrize(
    ("warmup", "epochs", "steps", "warned"),
    [(100, 2, 6, True), (12, 2, 6, True), (11, 2, 6, False), (0, 1, 1, False)],
)
def test_warning_when_warm_up_exceeds_the_run(caplog, warmup, epochs, steps, warned):
    config = tr.TrainConfig.from_options(
        {**tr.DEFAULTS, "train_data": ["yolo:x@train"], "warmup_iters": warmup, "epochs": epochs}
    )
    with caplog.at_level(logging.WARNING, logger=tr.log.name):
        assert tr.warn_if_warmup_exceeds_run(config, steps) is warned
    assert ("never reaches --lr" in caplog.text) is warned


def test_feature_cache_reports_progress_by_time(monkeypatch, caplog):
    """A slow CPU hears from the cache every PROGRESS_EVERY_S, not only every N images."""
    from surveil.training import features_cache as fc

    clock = iter(float(t) for t in range(0, 1000, 4))  # each image "takes" 4 s
    monkeypatch.setattr(fc.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(fc, "stem_fingerprint", lambda model: "x")
    monkeypatch.setattr(fc, "sample_views", lambda *args, **kwargs: [])
    samples = [Path(f"{n}.png") for n in range(10)]
    with caplog.at_level(logging.INFO, logger=fc.log.name):
        fc.build_views(None, samples, [256], flips=True)  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feature cache:")]
    assert lines[0] == "feature cache: 10 images x 2 views each"
    progress = lines[1:]
    assert len(progress) >= 3 and progress[-1].startswith("feature cache: 10/10 images")
    assert all("s left" in line for line in progress)
