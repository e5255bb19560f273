"""`surveil run` logs, after timing its detector, the processed fps each camera can expect (real process, real model)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.support.models import random_checkpoint
from tests.support.polling import free_port
from tests.support.scene import make_scene_clip


@pytest.mark.slow
def test_run_logs_detector_time_and_fps_per_camera_after_warm_up(tmp_path):
    weights = random_checkpoint(tmp_path / "tiny.pt", ["__background__", "person"])
    clip = make_scene_clip(tmp_path / "scene.mp4")
    cameras = [
        {"name": "gate", "url": str(clip.path)},
        {"name": "yard", "url": str(clip.path), "fps_limit": 0.5},
    ]
    config = {
        "cameras": cameras,
        "detector": {"weights": str(weights), "device": "cpu", "batch_size": 1, "threads": 1, "min_size": 320},
        "mqtt": {"enabled": False},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "logging": {"level": "INFO"},
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "surveil running with" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    log = "".join(lines) + rest
    found = re.search(
        r"detector: (\d+) ms per frame after warm-up \(synthetic 1280x720 frame, \w+\) = ([\d.]+) frames/s for 2 "
        r"camera\(s\); processed fps each can expect \(at most its own frame rate\): gate ([\d.]+), yard 0\.5",
        log,
    )
    assert found, log[-4000:]
    # the arithmetic: the capped camera takes 0.5, the other the rest of the detector's frames/s
    assert float(found.group(3)) == pytest.approx(float(found.group(2)) - 0.5, abs=0.11)  # both printed to 0.1
    assert log.index("ms per frame after warm-up") < log.index("surveil running with")
