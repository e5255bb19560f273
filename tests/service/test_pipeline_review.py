"""The pipeline with incident review on: alerts carry their URLs and the files appear; and a full
review disk (a real 64 KiB tmpfs filled up, or ENOSPC injected) never costs an alert."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from surveil.config import Config
from surveil.service.metrics import Metrics
from surveil.service.pipeline import Pipeline
from tests.support.polling import wait_until
from tests.support.scene import BlobDetector, make_scene_clip, right_half_config


def _config(clip: Path, tmp_path: Path, review_dir: Path) -> Config:
    return right_half_config(
        clip,
        tmp_path,
        alerts={"jsonl_path": str(tmp_path / "alerts.jsonl")},
        review={"enabled": True, "dir": str(review_dir), "pre_s": 1, "post_s": 1},
    )


@contextlib.contextmanager
def _full_tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with contextlib.suppress(OSError), open(where / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield where / "review"
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _run(config: Config, metrics: Metrics, tmp_path: Path) -> list[dict]:
    pipeline = Pipeline(config, metrics, detector=BlobDetector())
    pipeline.start()
    try:
        lines = tmp_path / "alerts.jsonl"
        wait_until(lambda: lines.exists() and lines.read_text().count('"phase":"start"') >= 2, 30)
    finally:
        pipeline.stop()
    return [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]


def test_alerts_carry_urls_and_the_files_appear(tmp_path):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    metrics = Metrics()
    alerts = _run(_config(clip.path, tmp_path, tmp_path / "review"), metrics, tmp_path)
    starts = [a for a in alerts if a["phase"] == "start"]
    assert len(starts) == clip.objects
    for alert in alerts:
        folder = tmp_path / "review" / alert["incident_id"]
        assert alert["snapshot_url"] == f"/review/incidents/{alert['incident_id']}/snapshot.jpg"
        assert alert["clip_url"] == f"/review/incidents/{alert['incident_id']}/clip.mp4"
        assert (folder / "snapshot.jpg").read_bytes()[:2] == b"\xff\xd8"
        assert (folder / "clip.mp4").stat().st_size > 0  # the stop waits for the pending clips
    assert metrics.registry.get_sample_value("surveil_review_clips_total", {"result": "written"}) == clip.objects


@pytest.mark.parametrize("how", ["tmpfs", "enospc"])
def test_a_full_review_disk_never_stops_alerting(tmp_path, monkeypatch, how):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    metrics = Metrics()
    with contextlib.ExitStack() as stack:
        if how == "tmpfs":
            review_dir = stack.enter_context(_full_tmpfs(tmp_path / "tiny"))
        else:
            review_dir = tmp_path / "review"
            original = Path.write_bytes

            def refuse(self: Path, data: bytes) -> int:
                if review_dir in self.parents:
                    raise OSError(errno.ENOSPC, "No space left on device", str(self))
                return original(self, data)

            monkeypatch.setattr(Path, "write_bytes", refuse)
        alerts = _run(_config(clip.path, tmp_path, review_dir), metrics, tmp_path)
    starts = [a for a in alerts if a["phase"] == "start"]
    assert len(starts) == clip.objects  # as many as with a healthy disk
    assert sorted(a["incident_id"] for a in alerts if a["phase"] == "end") == sorted(a["incident_id"] for a in starts)
    refused = sum(
        metrics.registry.get_sample_value("surveil_review_write_errors_total", {"file": name}) or 0
        for name in ("incident.json", "snapshot.jpg", "folder")
    )
    assert refused > 0
    assert metrics.registry.get_sample_value("surveil_stage_errors_total", {"stage": "review"}) == 0
