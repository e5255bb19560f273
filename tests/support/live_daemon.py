"""A daemon in a thread on the synthetic scene clip (BlobDetector), for the live-view tests.

Two cameras: ``scene`` (the clip, looping, with a zone ``centre`` and an intrusion rule on it) and
``gate``, an RTSP URL with a password on a closed port, which stays down — its URL must never
reach a page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from surveil.config import load_config
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import free_port, wait_until
from tests.support.scene import BlobDetector, make_scene_clip

CENTRE = [[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]
SECRET = "hunter2-camera-password"


def write_config(path: Path, clip: Path, **web) -> None:
    config = {
        "cameras": [
            {
                "name": "scene",
                "url": str(clip),
                "realtime": True,
                "loop": True,
                "zones": [{"name": "centre", "polygon": CENTRE}],
                "rules": [
                    {"id": "centre-intrusion", "type": "zone_intrusion", "zone": "centre", "classes": ["person"]}
                ],
            },
            {
                "name": "gate",
                "url": f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/stream1",
                "open_timeout_s": 1,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 1,
            },
        ],
        "detector": {"batch_size": 2, "max_wait_ms": 10},
        "mqtt": {"enabled": False},
        "metrics": {"listen": "127.0.0.1:0"},
        "web": web,
    }
    path.write_text(yaml.safe_dump(config))


@contextmanager
def running_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """Daemon.run() in a thread, the way `surveil run` runs it; its config file is ``tmp_path/site.yaml``."""
    clip = make_scene_clip(tmp_path / "scene.mp4")
    path = tmp_path / "site.yaml"
    write_config(path, clip.path)
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: daemon.metrics_port is not None and daemon.pipeline is not None, 30)
        yield daemon
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    assert not thread.is_alive(), "daemon did not stop within 15 s"
