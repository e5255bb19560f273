"""The GPU benchmarks cannot rot: bench/gpu.sh (``python -m bench.gpu_bench``: surveil bench's harness on the GPU),
``python -m bench.gpu_profile`` and ``python -m bench.gpu_accuracy`` dry-run in CI (CPU, tiny sizes, one iteration)
and print every row (their figures mean nothing there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_bench_dry_run_prints_every_row():
    result = subprocess.run(
        [str(ROOT / "bench/gpu.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "target: pipeline/bare >= 0.9 at batch 8" in out
    assert "preprocessing: batched on device" in out
    assert (
        "bare img/s | camera fps | pipeline img/s | ratio | peak GPU MB | pipeline: mean batch | ms/call | longest ms | sizes"
        in out
    )
    rows = [line.split("|") for line in out.splitlines() if line.startswith("fasterrcnn_")]
    seen = {(row[0].strip(), int(row[2])) for row in rows}
    assert seen == {
        (arch, batch)
        for arch in ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")
        for batch in (1, 2)
    }
    workers = {(row[0].strip(), int(row[2])) for row in rows if row[1].strip() == "fp32+worker"}
    assert workers == {(arch, 2) for arch, _ in seen}  # the pipeline with the detector in a worker process
    for row in rows:
        [float(cell) for cell in row[3:]]  # figures are printed (their values are not checked)


def _dry_run(module: str, shared_data: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--dry-run", "--shared-data", str(shared_data)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_gpu_profile_dry_run_prints_every_section(shared_data):
    out = _dry_run("gpu_profile", shared_data)
    first_passes = [line.split(":")[0].strip() for line in out.splitlines() if line.strip().startswith("batch ")]
    assert first_passes == ["batch 1", "batch 2"]  # the dry run's batch is 2
    variants = [
        line
        for line in out.splitlines()
        if line.rstrip().endswith(tuple("0123456789")) and ("fp32:" in line or "fp16:" in line)
    ]
    assert len(variants) == 8
    for stage in ("upload+preprocess", "backbone", "rpn", "roi heads", "postprocess"):
        assert any(line.strip().startswith(stage) for line in out.splitlines()), stage


@pytest.mark.slow
def test_gpu_accuracy_dry_run_scores_every_path(shared_data):
    out = _dry_run("gpu_accuracy", shared_data)
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:-1]
        for line in out.splitlines()
        if line.startswith("| ") and "fp" in line
    }
    assert set(rows) == {"per-image fp32", "batched fp32", "batched fp16"}
    matched, total = map(int, rows["per-image fp32"][3].split("/"))
    assert total > 0 and matched == total  # the reference agrees with itself: the agreement count is wired up
