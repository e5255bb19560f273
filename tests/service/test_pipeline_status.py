"""What the pipeline tells the live page: offered vs processed fps, drop ratio, the newest frame's
time, MQTT state, spool size and the incidents in progress."""

from __future__ import annotations

import time

from surveil.service.metrics import Metrics
from surveil.service.pipeline import Pipeline
from tests.support.polling import wait_until
from tests.support.scene import BlobDetector, make_scene_clip, right_half_config


class SlowBlobs(BlobDetector):
    """0.2 s a frame: the camera offers 10 fps, the detector takes 5 at most, the rest are dropped."""

    def detect(self, images):
        time.sleep(0.2)
        return super().detect(images)


def test_views_show_offered_processed_and_dropped_frames_and_open_incidents(tmp_path):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    config = right_half_config(clip.path, tmp_path)
    pipeline = Pipeline(config, Metrics(), detector=SlowBlobs())
    started = time.time()
    pipeline.start()
    try:
        assert wait_until(lambda: pipeline.service_status()["incidents"], 8), "no incident opened"
        status = pipeline.service_status()
        assert wait_until(lambda: pipeline.camera_views()[0].fps > 0, 5)  # a rate needs a second of frames
        (view,) = pipeline.camera_views()
    finally:
        pipeline.stop()
    assert view.offered_fps > view.fps > 0
    assert 0.2 < view.drop_ratio < 1.0  # half or more of 10 fps cannot be analysed at 0.2 s a frame
    assert view.drop_ratio == 1 - view.fps / view.offered_fps
    assert view.last_frame_ts is not None and started <= view.last_frame_ts <= time.time()
    assert status["mqtt"] == {"enabled": False, "connected": False, "spool": 0}
    assert {i["rule"] for i in status["incidents"]} == {"right"} and status["review"] is False
