"""DistributedDataParallel on CPU: two gloo processes under torchrun finish a tiny run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from surveil.detection.checkpoints import read_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["on", "off"])
def test_torchrun_two_processes_on_cpu(tiny_dataset: Path, backbone_weights: str, tmp_path: Path, cache: str) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "surveil",
        "train",
        "--train-data",
        f"yolo:{tiny_dataset}@train",
        "--backbone-weights",
        backbone_weights,
        "--train-sizes",
        "[224]",
        "--min-size",
        "224",
        "--max-size",
        "320",
        "--batch-size",
        "1",
        "--epochs",
        "2",
        "--max-steps",
        "2",
        "--val-fraction",
        "0.25",
        "--threads",
        "1",
        "--cache",
        cache,
        "--rpn-post-nms-top-n-train",
        "100",
        "--box-batch-size-per-image",
        "32",
        "--output-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1 of 2 (gloo)" in done.stderr
    payload = read_checkpoint(tmp_path / "model.pt")
    assert payload["metrics"]["epochs_run"] == 2
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert len(log) == 3 and log[-1].startswith("1,4,")  # header + 2 epochs, 2 steps each
