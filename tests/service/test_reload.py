"""SIGHUP reload keeps the analysers (tracker, rule state, open incidents) of unchanged cameras:
nobody already inside a zone alerts again; a changed camera's incidents end and it starts afresh."""

from __future__ import annotations

import json
import threading

import pytest
import yaml

from surveil.config import load_config
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import wait_until
from tests.support.scene import RIGHT_HALF, BlobDetector, make_scene_clip


def write_config(path, clip, state, right_polygon_b):
    def camera(name, polygon):
        return {
            "name": name,
            "url": str(clip),
            "realtime": True,
            "loop": False,
            "zones": [{"name": "right", "polygon": polygon}],
            "rules": [{"id": "right-intrusion", "type": "zone_intrusion", "zone": "right", "classes": ["person"]}],
        }

    config = {
        "cameras": [camera("a", RIGHT_HALF), camera("b", right_polygon_b)],
        "detector": {"batch_size": 2, "max_wait_ms": 10},
        "tracker": {"lost_after_s": 60},  # the clip ends with a walker inside: keep its track through the reload
        "mqtt": {"enabled": False},
        "alerts": {"jsonl_path": str(state / "alerts.jsonl")},
        "metrics": {"listen": "127.0.0.1:0"},
    }
    path.write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_reload_keeps_unchanged_cameras_and_restarts_changed_ones(tmp_path):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    path = tmp_path / "site.yaml"
    write_config(path, clip.path, tmp_path, RIGHT_HALF)
    daemon = Daemon(path, load_config(path), metrics=Metrics(), detector=BlobDetector())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: daemon.pipeline is not None, 30)
        analyzers = dict(daemon.pipeline.analyzers)
        # both clips play once (loop: false); the bottom walker ends the clip inside the right half
        assert wait_until(lambda: all(len(a.book.open_incidents) == 1 for a in analyzers.values()), 30)
        open_before = {name: a.book.open_incidents[0][0] for name, a in analyzers.items()}

        write_config(path, clip.path, tmp_path, [[0.4, 0.0], [1.0, 0.0], [1.0, 1.0], [0.4, 1.0]])  # only b changes
        old_pipeline = daemon.pipeline
        daemon._reload_requested.set()
        assert wait_until(lambda: daemon.pipeline is not old_pipeline, 30)

        kept, rebuilt = daemon.pipeline.analyzers["a"], daemon.pipeline.analyzers["b"]
        assert kept is analyzers["a"], "an unchanged camera must keep its analyser"
        assert rebuilt is not analyzers["b"]
        assert [i[0] for i in kept.book.open_incidents] == [open_before["a"]]
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=15)
    messages = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    by_camera = {name: [(m["phase"], m["incident_id"]) for m in messages if m["camera"] == name] for name in "ab"}
    # camera a: its open incident ran through the reload without a second start; it ends at the final stop
    assert ("end", open_before["a"]) in by_camera["a"]
    assert sum(1 for phase, incident in by_camera["a"] if phase == "start" and incident == open_before["a"]) == 1
    # camera b: its incident ended when the reload replaced its analyser
    ends_b = [
        m for m in messages if m["camera"] == "b" and m["phase"] == "end" and m["incident_id"] == open_before["b"]
    ]
    assert len(ends_b) == 1 and ends_b[0]["details"]["end_reason"] == "stopped"
