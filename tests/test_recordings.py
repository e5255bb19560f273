"""`surveil analyse`: recorded files through the daemon's analyser, every frame, media time.

The analysis is tested from Python with the synthetic scene (BlobDetector: exact expected
alerts); the command's wiring with the real shipped model on a few frames of the demo clip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from surveil.cli import main
from surveil.config import Config
from surveil.tools.analyse import RecordingError, analyse_recordings
from tests.support.alert_schema import validate_alert
from tests.support.scene import FPS, RIGHT_HALF, BlobDetector, make_scene_clip

REPO = Path(__file__).resolve().parents[1]


def scene_config(**camera) -> Config:
    return Config.model_validate(
        {
            "cameras": [
                {
                    "name": "scene",
                    "url": "unused.mp4",
                    "zones": [{"name": "right_half", "polygon": RIGHT_HALF}],
                    "lines": [
                        {
                            "name": "middle",
                            "a": [0.5, 0.0],
                            "b": [0.5, 1.0],
                            "forward": "westbound",
                            "backward": "eastbound",
                        }
                    ],
                    "rules": [
                        {
                            "id": "right-intrusion",
                            "type": "zone_intrusion",
                            "zone": "right_half",
                            "classes": ["person"],
                        },
                        {"id": "middle-count", "type": "line_crossing", "line": "middle", "classes": ["person"]},
                    ],
                    **camera,
                },
                {"name": "other", "url": "other.mp4"},
            ],
            "detector": {"batch_size": 4},
            "mqtt": {"enabled": False},
        }
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_scene_clip(tmp_path_factory.mktemp("scene") / "scene.mp4")


def test_every_frame_is_analysed_with_media_time(clip):
    alerts = []
    summary = analyse_recordings(scene_config(), [clip.path], BlobDetector(), on_alert=alerts.append, start_time=1000.0)
    assert summary.frames_read == summary.frames_analysed == clip.frames
    assert summary.media_s == pytest.approx(clip.frames / FPS)
    intrusions = [a for a in alerts if a.rule == "right-intrusion"]
    assert [a.phase for a in intrusions].count("start") == clip.objects
    assert {a.incident_id for a in intrusions if a.phase == "end"} == {
        a.incident_id for a in intrusions if a.phase == "start"
    }
    crossings = [a for a in alerts if a.rule == "middle-count" and a.phase == "start"]
    assert len(crossings) == clip.objects
    # the clock is the video's: every alert lies within the clip's 6 s after --start-time
    for alert in alerts:
        assert 1000.0 <= alert.ts <= 1000.0 + clip.frames / FPS + 1e-6
        validate_alert(alert.to_dict(published_at=alert.ts))
    assert summary.messages["right-intrusion", "start"] == clip.objects
    assert summary.counts["lines", "middle", "middle-count"] == {"westbound": 1, "eastbound": 1}
    text = "\n".join(summary.lines())
    assert "right-intrusion: 2 / 0 / 2" in text and "line middle (middle-count): eastbound 1, westbound 1" in text


def test_every_kth_frame_and_several_files(clip):
    summary = analyse_recordings(scene_config(), [clip.path, clip.path], BlobDetector(), every=2)
    assert summary.files == 2
    assert summary.frames_read == 2 * clip.frames
    assert summary.frames_analysed == clip.frames  # half of each
    assert summary.messages["right-intrusion", "start"] == 2 * clip.objects, "each file is its own recording"
    assert summary.counts["lines", "middle", "middle-count"] == {"westbound": 2, "eastbound": 2}


def test_camera_choice_and_errors(clip, tmp_path):
    summary = analyse_recordings(scene_config(), [clip.path], BlobDetector(), camera="other")
    assert summary.camera == "other" and not summary.messages  # that camera has no rules
    with pytest.raises(RecordingError, match="no enabled camera named 'nope'"):
        analyse_recordings(scene_config(), [clip.path], BlobDetector(), camera="nope")
    with pytest.raises(RecordingError, match="no such file"):
        analyse_recordings(scene_config(), [tmp_path / "missing.mp4"], BlobDetector())
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(RecordingError, match=r"junk\.mp4"):
        analyse_recordings(scene_config(), [tmp_path / "junk.mp4"], BlobDetector())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["missing.mp4"], "no such file: missing.mp4"),
        (["--camera", "nope", "CLIP"], "no enabled camera named 'nope'"),
        (["--every", "0", "CLIP"], "--every must be at least 1"),
    ],
)
def test_command_exits_2_with_a_message(extra, message, clip, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    args = [str(clip.path) if a == "CLIP" else a for a in extra]
    assert main(["analyse", "-c", "configs/demo.yaml", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_command_with_the_shipped_model_on_the_demo_clip(tmp_path):
    """The real command, the real model, the first 4 s of the shipped clip, every 4th frame."""
    short = tmp_path / "first-4s.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(REPO / "configs/media/pets2009-s2l1.mp4"),
            "-frames:v",
            "40",
            "-c",
            "copy",
            str(short),
        ],
        check=True,
    )
    out = tmp_path / "alerts.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "surveil",
            "analyse",
            "-c",
            "configs/demo.yaml",
            str(short),
            "--every",
            "4",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "camera plaza: 1 file(s), 10 of 40 frames analysed (4.0 s of video)" in result.stdout, result.stdout
    assert "first-4s.mp4: frame 37/40" in result.stderr  # progress
    for line in out.read_text().splitlines():
        validate_alert(json.loads(line))
