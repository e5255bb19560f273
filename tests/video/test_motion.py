"""Motion gating: the detector on synthetic frames, the config bound, and the whole daemon on a
mostly still clip (same alerts, detector calls skipped on the still stretches)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from pydantic import ValidationError

from surveil.config import Config
from surveil.types import Detections
from surveil.video.clips import read_clip
from surveil.video.motion import MotionDetector, MotionGate, MotionSettings
from tests.service.test_end_to_end import ALERTS, RunningDaemon, sample, scene_config, starts
from tests.support.media import require_ffmpeg
from tests.support.polling import wait_until
from tests.support.scene import FPS, HEIGHT, WIDTH, BlobDetector, make_scene_clip

RNG = np.random.default_rng(7)
BACKGROUND = RNG.integers(40, 200, (360, 480, 3), dtype=np.uint8)


def noisy(image: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    return np.clip(image + RNG.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def with_box(image: np.ndarray, x: int, y: int = 150, w: int = 30, h: int = 70) -> np.ndarray:
    out = image.copy()
    out[y : y + h, x : x + w] = 250
    return out


def feed(detector: MotionDetector, frames) -> list[bool]:
    return [detector.update(f) for f in frames]


def test_still_background_with_sensor_noise_is_no_motion():
    detector = MotionDetector()
    assert detector.update(noisy(BACKGROUND))  # the first frame has nothing to compare with
    assert not any(feed(detector, (noisy(BACKGROUND) for _ in range(50))))


def test_a_moving_box_is_motion_with_its_box():
    detector = MotionDetector()
    feed(detector, (noisy(BACKGROUND) for _ in range(10)))
    moving = feed(detector, (noisy(with_box(BACKGROUND, 40 + 12 * i)) for i in range(20)))
    assert all(moving)
    x1, y1, x2, y2 = detector.boxes[0]
    assert x1 <= 40 + 12 * 19 + 30 and x2 >= 40 + 12 * 19 and y1 <= 150 and y2 >= 150 + 70 - 6


@pytest.mark.parametrize("step", [-12, 8, 15])
def test_a_small_global_brightness_flicker_is_no_motion(step):
    detector = MotionDetector()
    feed(detector, (noisy(BACKGROUND) for _ in range(10)))
    shifted = np.clip(BACKGROUND.astype(np.int16) + step, 0, 255).astype(np.uint8)
    assert not any(feed(detector, (noisy(shifted if i % 2 else BACKGROUND) for i in range(20))))


def gate_calls(finds, seconds: float = 25.0, fps: int = 10) -> list[int]:
    """Frame indices at which a default gate (keep-alive 2 s, hold 5 s, idle check 10 s, one follow-up)
    runs the detector on a still picture, the detector finding something when ``finds(index)``."""
    gate, calls = MotionGate(MotionSettings(keepalive_s=2.0, hold_s=5.0, idle_keepalive_s=10.0)), []
    for index in range(int(seconds * fps)):
        if gate.should_detect(noisy(BACKGROUND), index / fps):
            calls.append(index)
            gate.detected(1 if finds(index) else 0)
    return calls


@pytest.mark.parametrize(
    ("what", "finds", "calls"),
    [
        # an empty scene: the start-up call, then only the idle check every 10 s
        ("nothing there", lambda i: False, [0, 100, 200]),
        # a person standing still: a keep-alive every 2 s, each with its confirming follow-up
        (
            "someone standing still",
            lambda i: True,
            [
                0,
                1,
                20,
                21,
                40,
                41,
                60,
                61,
                80,
                81,
                100,
                101,
                120,
                121,
                140,
                141,
                160,
                161,
                180,
                181,
                200,
                201,
                220,
                221,
                240,
                241,
            ],
        ),
        # found at start, gone after: keep-alives while a track may live (5 s after the last find), then idle checks
        ("someone who leaves", lambda i: i < 1, [0, 1, 20, 40, 140, 240]),
    ],
)
def test_gate_keepalive_while_something_may_be_tracked(what, finds, calls):
    assert gate_calls(finds) == calls, what


def test_gate_runs_the_detector_on_motion_at_once():
    gate = MotionGate(MotionSettings(keepalive_s=2.0))
    assert gate.should_detect(noisy(BACKGROUND), 0.0)  # the first frame
    gate.detected(0)
    assert not gate.should_detect(noisy(BACKGROUND), 0.1)
    assert gate.should_detect(with_box(BACKGROUND, 100), 0.2)  # motion: at once, no keep-alive due
    gate.detected(0)  # nothing found: no follow-up call
    assert not gate.should_detect(noisy(BACKGROUND), 0.3)


def _config(**motion) -> dict:
    return {
        "cameras": [{"name": "a", "url": "a.mp4", "motion": {"enabled": True, **motion}}],
        "tracker": {"lost_after_s": 3.0},
    }


@pytest.mark.parametrize(
    ("motion", "error"),
    [
        ({}, None),
        ({"keepalive_s": 2.9}, None),
        ({"keepalive_s": 3.0}, "below tracker.lost_after_s"),
        ({"idle_keepalive_s": 30}, None),
        ({"idle_keepalive_s": 1.5}, "at least keepalive_s"),
        ({"threshold": 0}, "greater than or equal"),
        ({"min_area": 0.6}, "less than or equal"),
        ({"sensitivity": 1}, "Extra inputs"),
    ],
)
def test_motion_config_bounds(motion, error):
    if error is None:
        assert Config.model_validate(_config(**motion)).cameras[0].motion.enabled
    else:
        with pytest.raises(ValidationError, match=error):
            Config.model_validate(_config(**motion))


def test_motion_gating_is_off_by_default():
    config = Config.model_validate({"cameras": [{"name": "a", "url": "a.mp4"}]})
    assert not config.cameras[0].motion.enabled


def quiet_clip(tmp_path, still_s: int = 4):
    """The scene clip with ``still_s`` seconds of empty, still picture before and after it."""
    scene = make_scene_clip(tmp_path / "scene.mp4")
    frames = [frame.image for frame in read_clip(scene.path)]
    still = [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * (still_s * FPS)
    frames = still + frames + still
    path = tmp_path / "quiet.mp4"
    cmd = [require_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
           "-bf", "0", "-g", str(FPS), "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, timeout=120, capture_output=True)
    return path, len(frames), scene.objects


def test_daemon_with_motion_gating_raises_the_same_alerts_and_skips_still_frames(
    tmp_path, mosquitto_broker, mqtt_collector
):
    path, frames, objects = quiet_clip(tmp_path)
    subscriber = mqtt_collector("site/#")
    # the scene test's tracker drops a track after 1 s unmatched, so the keep-alive must come sooner
    config = scene_config(str(path), mosquitto_broker, tmp_path, motion={"enabled": True, "keepalive_s": 0.5})
    detector = BlobDetector()
    with RunningDaemon(config, detector) as running:
        assert wait_until(
            lambda: sample(running.metrics(), "surveil_frames_captured_total", 'camera="scene"') >= frames, 40
        )
        assert wait_until(lambda: len(starts(subscriber)) >= objects, 10)
        metrics = running.metrics()
    alerts = starts(subscriber)
    assert len(alerts) == objects, alerts  # one per walker, as without gating (tests/service/test_end_to_end.py)
    assert len({a["subjects"][0]["track_id"] for a in alerts}) == objects
    everything = [json.loads(m.payload) for m in subscriber.on_topic(ALERTS)]
    assert sorted(a["incident_id"] for a in everything if a["phase"] == "end") == sorted(
        a["incident_id"] for a in alerts
    )
    skipped = sample(metrics, "surveil_detector_skipped_total", 'camera="scene"')
    processed = sample(metrics, "surveil_frames_processed_total", 'camera="scene"')
    assert skipped >= 30, (skipped, processed)  # 8 s of still picture at 10 fps, keep-alive every 0.5 s
    assert sum(detector.batches) + skipped == pytest.approx(processed, abs=2)


@pytest.mark.parametrize(("keepalive_s", "loiter_alerts"), [(2.0, 1), (60.0, 0)])
def test_keepalive_keeps_a_person_standing_still_tracked(keepalive_s, loiter_alerts):
    """A person standing still for 12 s: no motion after the first frame, so only keep-alive calls reach
    the detector. Below tracker.lost_after_s (3 s) the track survives and loitering (dwell 8 s) alerts
    once; a keep-alive longer than that (what the config refuses) loses the track and the alert."""
    from surveil.analysis.analyzer import build_analyzer
    from surveil.config import CameraConfig, TrackerConfig
    from surveil.types import Frame

    camera = CameraConfig.model_validate(
        {
            "name": "cam",
            "url": "x.mp4",
            "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "rules": [{"id": "loiter", "type": "loitering", "zone": "all", "dwell_s": 8, "classes": ["person"]}],
        }
    )
    analyzer = build_analyzer(camera, TrackerConfig(lost_after_s=3.0), BlobDetector.class_names)
    gate, detector = MotionGate(MotionSettings(keepalive_s=keepalive_s)), BlobDetector()
    image = with_box(np.zeros((360, 480, 3), np.uint8), 200)
    calls, starts = 0, []
    for i in range(120):  # 12 s at 10 fps
        t, frame = i / 10, noisy(image, 2.0)
        if gate.should_detect(frame, t):
            calls += 1
            dets = detector.detect([frame])[0]
            gate.detected(len(dets))
        else:
            dets = Detections.empty()
        ctx = analyzer.context(Frame("cam", i, t, 1e9 + t, frame), dets)
        starts += [u for u in analyzer.process(ctx) if u.phase == "start"]
    assert len(starts) == loiter_alerts
    assert calls <= 2 * (12 // min(keepalive_s, 12) + 1)  # the first frame, keep-alive calls, each with its follow-up
