"""Must-show 3: a real RTSP camera (GStreamer's server relaying real H.264), a real broker and a
subscriber: alerts arrive one per object; an outage and the recovery show in metrics and MQTT."""

from __future__ import annotations

import json

import pytest

from tests.service.test_end_to_end import RunningDaemon, sample, scene_config, starts
from tests.support.polling import wait_until
from tests.support.rtsp import RtspServer, free_port, gst_rtsp_missing
from tests.support.scene import BlobDetector, make_scene_clip

pytestmark = pytest.mark.slow


@pytest.fixture
def scene_rtsp(tmp_path):
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    clip = make_scene_clip(tmp_path / "scene.mp4")
    server = RtspServer(clip.path, free_port(), tmp_path / "rtsp.log")
    server.start()
    try:
        yield clip, server
    finally:
        server.kill()


def status_states(subscriber) -> list[str]:
    return [json.loads(m.payload)["state"] for m in subscriber.on_topic("site/scene/status")]


def test_rtsp_camera_alerts_outage_and_recovery(tmp_path, scene_rtsp, mosquitto_broker, mqtt_collector):
    clip, server = scene_rtsp
    subscriber = mqtt_collector("site/#")
    config = scene_config(
        server.url, mosquitto_broker, tmp_path, loop=True, stall_timeout_s=4, read_timeout_s=3, open_timeout_s=3
    )
    with RunningDaemon(config, BlobDetector()) as running:
        assert wait_until(lambda: len(starts(subscriber)) >= clip.objects, 40), running.metrics()
        assert wait_until(lambda: sample(running.metrics(), "surveil_camera_up", 'camera="scene"') == 1, 5)

        server.kill()
        assert wait_until(lambda: sample(running.metrics(), "surveil_camera_up", 'camera="scene"') == 0, 15)
        assert wait_until(
            lambda: sample(running.metrics(), "surveil_camera_reconnects_total", 'camera="scene"') >= 1, 15
        )
        assert wait_until(lambda: "down" in status_states(subscriber), 5)
        captured_during_outage = sample(running.metrics(), "surveil_frames_captured_total", 'camera="scene"')

        server.start()
        assert wait_until(lambda: sample(running.metrics(), "surveil_camera_up", 'camera="scene"') == 1, 40), (
            running.metrics()
        )
        assert wait_until(
            lambda: (
                sample(running.metrics(), "surveil_frames_captured_total", 'camera="scene"')
                > captured_during_outage + 10
            ),
            20,
        )
        assert wait_until(lambda: status_states(subscriber)[-1:] == ["up"], 5)

    alerts = starts(subscriber)
    track_ids = [a["subjects"][0]["track_id"] for a in alerts]
    assert len(track_ids) == len(set(track_ids)), f"a track alerted twice: {track_ids}"
    assert all(a["camera"] == "scene" and a["zone"] == "right_half" for a in alerts)


def test_broken_camera_does_not_stop_the_others(tmp_path, mosquitto_broker, mqtt_collector):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    subscriber = mqtt_collector("site/#")
    config = scene_config(str(clip.path), mosquitto_broker, tmp_path)
    dead = {
        "name": "dead",
        "url": f"rtsp://127.0.0.1:{free_port()}/nothing",
        "open_timeout_s": 1,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
    }
    config = config.model_copy(update={"cameras": [*config.cameras, type(config.cameras[0]).model_validate(dead)]})
    with RunningDaemon(config, BlobDetector()) as running:
        assert wait_until(lambda: len(starts(subscriber)) >= clip.objects, 30)
        assert wait_until(
            lambda: sample(running.metrics(), "surveil_camera_reconnects_total", 'camera="dead"') >= 2, 10
        )
        metrics = running.metrics()
    assert sample(metrics, "surveil_camera_up", 'camera="dead"') == 0
    assert sample(metrics, "surveil_frames_captured_total", 'camera="dead"') == 0
    assert sample(metrics, "surveil_frames_processed_total", 'camera="scene"') > clip.frames / 2
    assert json.loads(subscriber.on_topic("site/dead/status")[-1].payload)["state"] == "down"
