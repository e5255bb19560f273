"""Review: alerts get their URLs, the best snapshot is kept, the clip is cut after the post-roll."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from surveil.config import ReviewConfig
from surveil.review.encoder import find_ffmpeg
from surveil.review.recorder import Review, review_paths
from surveil.types import AlertUpdate, Subject
from tests.review.test_store import Events as StoreEvents
from tests.support.polling import wait_until

T0 = 1_700_000_000.0


class Events(StoreEvents):
    def __init__(self) -> None:
        super().__init__()
        self.clips: list[str] = []

    def clip(self, result, clip_s=0.0, cpu_s=0.0):
        self.clips.append(result)


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((60, 80, 3), value, np.uint8))[1].tobytes()


def _alert(phase: str, ts: float, score: float = 0.9, incident: str = "inc-1") -> AlertUpdate:
    return AlertUpdate(
        id=AlertUpdate.new_id(), incident_id=incident, phase=phase, camera="gate", rule="door",
        rule_type="zone_intrusion", severity="warning", ts=ts, ts_mono=0.0, started_ts=T0 + 1, zone="door",
        subjects=(Subject(7, "person", score, (1.0, 2.0, 3.0, 4.0)),), details={},
    )  # fmt: skip


def _review(tmp_path, **options) -> tuple[Review, Events]:
    events = Events()
    config = ReviewConfig(enabled=True, pre_s=1, post_s=1, clip_fps=4, **options)
    return Review(config, tmp_path, events), events


def test_an_incident_keeps_its_best_snapshot_and_gets_a_clip(tmp_path):
    if find_ffmpeg() is None:
        pytest.skip("no ffmpeg with libx264")
    review, events = _review(tmp_path)
    snapshot_url, clip_url = review_paths("inc-1")
    sent = []
    for step in range(25):  # 4 frames a second; the incident runs from 1 s to 3 s
        ts = T0 + step / 4
        review.frame("gate", ts, _jpeg(step * 10))
        if step == 4:
            sent.append(review.alert(_alert("start", ts, score=0.6)))
        elif step in (6, 8):
            sent.append(review.alert(_alert("update", ts, score={6: 0.95, 8: 0.7}[step])))
        elif step == 12:
            sent.append(review.alert(_alert("end", ts)))
    assert [(a.snapshot_url, a.clip_url) for a in sent] == [(snapshot_url, clip_url)] * 4
    assert review.open_incidents() == []
    store = review.store
    assert store is not None
    assert wait_until(lambda: (store.get("inc-1") or {}).get("clip") == "ready", 30)
    record = store.get("inc-1")
    assert record["snapshot_score"] == 0.95 and record["snapshot_ts"] == T0 + 6 / 4  # the update scored best
    assert (tmp_path / "review" / "inc-1" / "snapshot.jpg").read_bytes() == _jpeg(60)
    assert record["clip_s"] == pytest.approx(4.25)  # 0.0 s (start - pre_s) to 4.0 s (end + post_s)
    assert events.clips == ["written"]
    review.close()


def test_disabled_review_leaves_alerts_alone_and_tracks_open_incidents(tmp_path):
    events = Events()
    review = Review(ReviewConfig(enabled=False), tmp_path, events)
    review.frame("gate", T0, _jpeg(1))
    start = _alert("start", T0)
    assert review.alert(start) is start
    assert [r["incident_id"] for r in review.open_incidents()] == ["inc-1"]
    review.alert(_alert("end", T0 + 1))
    assert review.open_incidents() == []
    assert not (tmp_path / "review").exists()
    review.close()


def test_a_camera_without_frames_still_gets_its_clip_cut(tmp_path):
    review, _ = _review(tmp_path, encode_queue=1)
    review.frame("gate", T0, _jpeg(1))
    review.alert(_alert("start", T0))
    review.alert(_alert("end", T0 + 0.5))
    review.tick(T0 + 1.0)  # before post_s + grace: still waiting for frames
    assert review.store.get("inc-1")["clip"] == "pending"
    review.tick(T0 + 30)
    assert wait_until(lambda: review.store.get("inc-1")["clip"] in ("ready", "failed"), 30)
    review.close()


def test_a_full_encoder_queue_drops_the_clip(tmp_path, monkeypatch):
    review, events = _review(tmp_path)
    monkeypatch.setattr(review._encoder, "submit", lambda job: False)
    review.frame("gate", T0, _jpeg(1))
    review.alert(_alert("start", T0))
    review.alert(_alert("end", T0 + 0.5))
    review.frame("gate", T0 + 2, _jpeg(2))  # the post-roll has been seen: cut now
    assert events.clips == ["dropped"]
    assert review.store.get("inc-1")["clip"] == "dropped"
    review.close()


def test_snapshot_from_the_alert_itself_when_it_carries_one(tmp_path):
    review, _ = _review(tmp_path)
    review.frame("gate", T0, _jpeg(1))
    review.alert(dataclasses.replace(_alert("start", T0), snapshot_jpeg=b"own-jpeg"))
    assert (tmp_path / "review" / "inc-1" / "snapshot.jpg").read_bytes() == b"own-jpeg"
    review.close()
