"""`surveil analyse --every K --offset P`: any sampling phase of a recording can be replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from surveil.cli import main
from surveil.config import Config
from surveil.tools.analyse import RecordingError, analyse_recordings
from tests.support.scene import FPS, RIGHT_HALF, BlobDetector, make_scene_clip

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "cameras": [
        {
            "name": "scene",
            "url": "unused.mp4",
            "zones": [{"name": "right_half", "polygon": RIGHT_HALF}],
            "rules": [{"id": "right-intrusion", "type": "zone_intrusion", "zone": "right_half", "min_frames": 1}],
        }
    ],
    "detector": {"batch_size": 2},
    "mqtt": {"enabled": False},
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_scene_clip(tmp_path_factory.mktemp("scene") / "scene.mp4")


def analysed_frames(clip, every: int, offset: int) -> tuple[int, list[int | None]]:
    alerts = []
    summary = analyse_recordings(
        Config.model_validate(CONFIG), [clip.path], BlobDetector(), every=every, offset=offset, on_alert=alerts.append
    )
    assert summary.frames_read == clip.frames
    return summary.frames_analysed, [a.frame_seq for a in alerts if a.phase == "start"]


@pytest.mark.parametrize(("every", "offset"), [(1, 0), (3, 0), (3, 1), (3, 2), (5, 4)])
def test_each_phase_analyses_its_own_frames(clip, every, offset):
    analysed, start_frames = analysed_frames(clip, every, offset)
    assert analysed == len(range(offset, clip.frames, every))
    assert start_frames, "the scene's walkers enter the zone in every phase"
    assert all((seq - 1) % every == offset for seq in start_frames), start_frames


def test_the_phases_together_are_every_frame(clip):
    assert sum(analysed_frames(clip, 4, p)[0] for p in range(4)) == clip.frames


def test_media_time_counts_the_skipped_frames(clip):
    alerts = []
    analyse_recordings(
        Config.model_validate(CONFIG), [clip.path], BlobDetector(), every=2, offset=1, on_alert=alerts.append
    )
    for alert in alerts:
        if alert.phase == "start":
            assert alert.ts == pytest.approx((alert.frame_seq - 1) / FPS)


@pytest.mark.parametrize(("every", "offset"), [(3, 3), (3, -1), (1, 1)])
def test_an_offset_outside_the_phases_is_refused(clip, every, offset):
    with pytest.raises(RecordingError, match="--offset must be between 0 and --every - 1"):
        analyse_recordings(Config.model_validate(CONFIG), [clip.path], BlobDetector(), every=every, offset=offset)


def test_command_exits_2_for_a_bad_offset(clip, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["analyse", "-c", "configs/demo.yaml", "--every", "5", "--offset", "5", str(clip.path)]) == 2
    err = capsys.readouterr().err
    assert "--offset must be between 0 and --every - 1 (4), got 5" in err and "Traceback" not in err
