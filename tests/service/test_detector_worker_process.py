"""Detector isolation with real worker processes (spawned: slow): killed and hung workers are replaced,
and a daemon with four file cameras rides out a SIGKILLed worker with its loitering incident open."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from surveil.config import Config, DetectorConfig
from surveil.detection.protocol import ModelLoadError
from surveil.service.daemon import Daemon
from surveil.service.detector_worker import WorkerDetector, WorkerSettings, WorkerUnavailable, start_pool
from surveil.service.metrics import Metrics
from tests.support.media import require_ffmpeg
from tests.support.polling import wait_until
from tests.support.scene import BlobDetector

pytestmark = pytest.mark.slow

FAST = WorkerSettings(deadline_s=3.0, start_timeout_s=120.0, restart_min_s=0.2, restart_max_s=1.0, deaths=3)
RESUME_S = 30.0  # alerts resume within this after a SIGKILL (restart: back-off + spawn + import, on a busy machine)


def blob_factory(config, cache_dir):  # runs in the worker (imported by name there)
    return BlobDetector()


class DroppingBlobs(BlobDetector):
    """Blobs, and one box per frame that its runtime got wrong and it dropped."""

    implausible_boxes = 0

    def detect(self, images):
        self.implausible_boxes += len(images)
        return super().detect(images)


def dropping_factory(config, cache_dir):
    return DroppingBlobs()


def broken_factory(config, cache_dir):
    raise ModelLoadError("no such weights")


def blank_with_box(x: int) -> np.ndarray:
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:100, x : x + 20] = 255
    return image


@pytest.fixture
def worker():
    made = WorkerDetector("worker-0", DetectorConfig(), factory=blob_factory, settings=FAST).start()
    yield made
    made.close()


def detect_until_back(worker: WorkerDetector, image: np.ndarray, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return worker.detect([image])
        except WorkerUnavailable:
            time.sleep(0.1)
    raise AssertionError(f"worker not back within {timeout} s")


def test_the_worker_gives_the_in_process_detectors_answers(worker):
    images = [blank_with_box(x) for x in (10, 70, 120)]
    expected = BlobDetector().detect(images)
    got = worker.detect(images)
    assert worker.class_names == BlobDetector.class_names
    for want, have in zip(expected, got):
        assert np.array_equal(want.xyxy, have.xyxy) and np.array_equal(want.class_id, have.class_id)
    bigger = np.zeros((480, 640, 3), np.uint8)  # a larger frame than the slots were made for
    bigger[100:200, 300:340] = 255
    assert worker.detect([bigger])[0].xyxy.tolist() == [[300, 100, 340, 200]]


def test_a_killed_worker_is_restarted_and_counted(worker):
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerUnavailable):
        worker.detect([blank_with_box(10)])
    assert worker.last_exit[0] == "killed" and "SIGKILL" in worker.last_exit[1]
    assert len(detect_until_back(worker, blank_with_box(10))[0]) == 1
    assert worker.restarts == 1


def test_implausible_boxes_are_summed_over_batches_and_worker_restarts():
    worker = WorkerDetector("worker-0", DetectorConfig(), factory=dropping_factory, settings=FAST).start()
    try:
        worker.detect([blank_with_box(10)] * 3)
        worker.detect([blank_with_box(10)])
        assert worker.implausible_boxes == 4
        os.kill(worker.pid, signal.SIGKILL)  # its replacement's detector counts from 0 again
        detect_until_back(worker, blank_with_box(10))
        assert worker.implausible_boxes == 5
    finally:
        worker.close()


def test_a_hung_worker_is_detected_killed_and_replaced(worker):
    hung = worker.pid
    os.kill(hung, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(WorkerUnavailable):
        worker.detect([blank_with_box(10)])
    assert time.monotonic() - started < FAST.deadline_s + 5  # the deadline, not forever
    assert worker.last_exit[0] == "hung"
    assert len(detect_until_back(worker, blank_with_box(10))[0]) == 1
    assert worker.pid != hung and worker.restarts == 1


def test_a_worker_that_cannot_load_its_model_fails_the_start():
    with pytest.raises(ModelLoadError, match="no such weights"):
        WorkerDetector("worker-0", DetectorConfig(), factory=broken_factory, settings=FAST).start()


# ---------------------------------------------------------------------------------------------- the daemon

FPS = 10


def make_clip(path: Path) -> Path:
    """8 s at 10 fps, 320x240: a box standing still on the left, another walking across the right half."""
    ffmpeg = require_ffmpeg()
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=black:s=320x240:r={FPS}:d=8",
        "-f", "lavfi", "-i", f"color=c=white:s=24x48:r={FPS}:d=8",
        "-f", "lavfi", "-i", f"color=c=white:s=24x48:r={FPS}:d=8",
        "-filter_complex", "[0][1]overlay=x=40:y=100[a];[a][2]overlay=x='170+t*18':y=40[v]", "-map", "[v]",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", str(FPS), "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def daemon_config(clip: Path, tmp_path: Path) -> Config:
    camera = {
        "url": str(clip),
        "realtime": True,
        "loop": True,
        "zones": [
            {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]},
            {"name": "right", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]},
        ],
        "rules": [
            {"id": "loiter", "type": "loitering", "zone": "left", "dwell_s": 1, "classes": ["person"]},
            {"id": "enter", "type": "zone_intrusion", "zone": "right", "classes": ["person"], "min_frames": 2},
        ],
    }
    return Config.model_validate(
        {
            "cameras": [{"name": f"cam{i}", **camera} for i in range(1, 5)],
            "detector": {
                "isolation": "process",
                "batch_size": 4,
                "max_wait_ms": 20,
                "worker_deadline_s": 5,
                "worker_restart_min_s": 0.2,
                "worker_restart_max_s": 1,
                "worker_deaths": 3,
                "worker_deaths_window_s": 300,
            },
            "tracker": {"min_hits": 2, "lost_after_s": 60},
            "mqtt": {"enabled": False},
            "alerts": {"jsonl_path": str(tmp_path / "alerts.jsonl")},
            "metrics": {"listen": "127.0.0.1:0"},
        }
    )


def alerts(tmp_path: Path) -> list[dict]:
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_killed_worker_costs_frames_not_the_daemon_nor_its_open_incident(tmp_path):
    config = daemon_config(make_clip(tmp_path / "scene.mp4"), tmp_path)
    pool = start_pool(config.detector, factory=blob_factory)
    (worker,) = pool.lanes
    assert isinstance(worker, WorkerDetector)
    metrics = Metrics()
    daemon = Daemon("unused.yaml", config, metrics=metrics, detector=pool)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(daemon.run()), daemon=True)
    thread.start()
    sample = metrics.registry.get_sample_value
    try:
        loiter_open = lambda: any(a["rule"] == "loiter" and a["phase"] == "start" for a in alerts(tmp_path))  # noqa: E731
        assert wait_until(
            lambda: sum(a["rule"] == "loiter" and a["phase"] == "start" for a in alerts(tmp_path)) == 4, 60
        )
        assert loiter_open()

        def entries() -> int:
            return sum(a["rule"] == "enter" and a["phase"] == "start" for a in alerts(tmp_path))

        before = entries()
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_until(
            lambda: sample("surveil_detector_worker_restarts_total", {"worker": "worker-0"}) == 1, RESUME_S
        )
        assert wait_until(lambda: entries() > before, RESUME_S - (time.monotonic() - killed_at))  # alerts resume
        assert sample("surveil_detector_worker_last_exit", {"worker": "worker-0", "reason": "killed"}) == 1
        assert thread.is_alive() and healthz(daemon.metrics_port) == 200  # one death is not "keeps dying"
        for _ in range(2):  # two more deaths within the window: /healthz turns red
            old = worker.pid
            os.kill(old, signal.SIGKILL)
            assert wait_until(lambda: worker.ready and worker.pid != old, RESUME_S)  # noqa: B023
        assert wait_until(lambda: healthz(daemon.metrics_port) == 503, 10)
        assert thread.is_alive()
        assert sum(sample("surveil_detector_frames_lost_total", {"camera": f"cam{i}"}) or 0 for i in range(1, 5)) > 0
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=20)
        pool.close()
    assert status == [0]
    loiters = [a for a in alerts(tmp_path) if a["rule"] == "loiter"]
    for camera in (f"cam{i}" for i in range(1, 5)):  # one incident per camera, ended once: at the stop
        phases = [a["phase"] for a in loiters if a["camera"] == camera and a["phase"] != "update"]
        assert phases == ["start", "end"], (camera, phases)
        ends = [a for a in loiters if a["camera"] == camera and a["phase"] == "end"]
        assert ends[0]["details"].get("end_reason") == "stopped", ends  # ended by the stop, not by the kill
