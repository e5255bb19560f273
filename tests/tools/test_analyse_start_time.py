"""`surveil analyse` without --start-time dates alerts from each recording's modification time, not 1970."""

from __future__ import annotations

import os

import pytest

from surveil.config import Config
from surveil.tools.analyse import analyse_recordings
from tests.support.scene import SECONDS, BlobDetector, make_scene_clip
from tests.tools.test_analyse_offset import CONFIG

RECORDED = 1_764_900_000.0  # 2025-12-05 02:00 UTC: the clip's modification time


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    made = make_scene_clip(tmp_path_factory.mktemp("scene") / "scene.mp4")
    os.utime(made.path, (RECORDED, RECORDED))
    return made


@pytest.mark.parametrize(("start_time", "first"), [(None, RECORDED), (1_000_000.0, 1_000_000.0)])
def test_alert_times_start_from_the_file_or_the_option(clip, start_time, first):
    alerts = []
    analyse_recordings(
        Config.model_validate(CONFIG), [clip.path], BlobDetector(), on_alert=alerts.append, start_time=start_time
    )
    assert alerts
    assert all(first <= a.ts <= first + SECONDS for a in alerts), [a.ts for a in alerts]
