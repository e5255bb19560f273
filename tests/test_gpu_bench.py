"""bench/gpu.sh cannot rot: its dry run (CPU, tiny sizes, one iteration) runs in CI and prints every row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_dry_run_prints_every_row():
    result = subprocess.run([str(ROOT / "bench/gpu.sh"), "--dry-run"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "target: pipeline/bare >= 0.9 at batch 8" in out
    assert "preprocessing: batched on device" in out
    assert "bare img/s | pipeline img/s | ratio | peak GPU MB" in out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("fasterrcnn_")]
    seen = {(row[0].strip(), int(row[2])) for row in rows}
    assert seen == {(arch, batch) for arch in ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn") for batch in (1, 2)}
    for row in rows:
        float(row[3]), float(row[4]), float(row[5])  # figures are printed (their values are not checked)
