"""`surveil bench` runs end to end on the shipped clip and prints every section; it never checks figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from surveil.bench import quantile
from surveil.models import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pedestrian_checkpoint(tmp_path_factory) -> Path:
    """Random weights, the demo's class name: the demo config's rules accept it."""
    torch.manual_seed(0)
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    return save_checkpoint(path, model, "fasterrcnn_mobilenet_v3_large_320_fpn", ["__background__", "pedestrian"])


def test_bench_prints_every_section(pedestrian_checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "bench", "-c", str(ROOT / "configs/demo.yaml"), "--seconds", "3", "--warmup", "1",
         "--cameras", "1", "--weights", str(pedestrian_checkpoint), "--min-size", "320"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    for section in ("== machine", "== bare model", "== naive loop", "== pipeline, 1 camera(s)", "== scaling", "== ratios"):
        assert section in out, f"{section!r} missing:\n{out}"
    for line in ("processed:", "per camera cam1", "dropped", "detector calls skipped", "CPU", "RSS", "peak RSS",
                 "wait (capture→detect)", "detect (one batch)", "analyse", "end to end (capture→rules done)",
                 "alert (capture→sinks)", "pipeline/bare", "pipeline/naive", "load average at the end"):
        assert line in out, f"{line!r} missing:\n{out}"
    assert "alert→broker→subscriber (MQTT)" in out or "MQTT: off" in out


def test_bench_refuses_a_camera_that_is_not_a_file(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text("cameras: [{name: gate, url: 'rtsp://192.0.2.1/stream'}]\nmqtt: {enabled: false}\n")
    result = subprocess.run([sys.executable, "-m", "surveil", "bench", "-c", str(config), "--seconds", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--video" in result.stderr


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({0.1: 0, 0.2: 10, float("inf"): 10}, 0.5, 0.15),  # inside a bucket: linear
        ({0.1: 10, 0.2: 10, float("inf"): 10}, 0.99, 0.099),
        ({0.1: 0, 0.2: 0, float("inf"): 4}, 0.5, 0.2),  # beyond the last bound: that bound
        ({0.1: 0, float("inf"): 0}, 0.5, None),  # nothing observed
    ],
)
def test_quantile_interpolates_like_prometheus(buckets, q, expected):
    assert quantile(buckets, q) == (pytest.approx(expected) if expected is not None else None)
