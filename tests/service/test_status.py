"""The one processed-frame meter: the live view's fps and ``surveil_camera_processed_fps`` read it."""

from __future__ import annotations

import pytest

from surveil.service.metrics import Metrics
from surveil.service.status import PROCESSED_FPS_WINDOW_S, ProcessedRate


def test_processed_rate_over_its_window():
    meter = ProcessedRate(window_s=5)
    assert meter.rate("yard", 0.0) == 0.0
    for i in range(11):
        meter.tick("gate", 100 + i * 0.5)  # 2 per second
    assert meter.rate("gate", 100.5) == 0.0  # younger than a second: no rate yet
    assert meter.rate("gate", 105.0) == pytest.approx(2.0)  # the 10 ticks in (100, 105], over 5 s
    assert meter.rate("gate", 107.0) == pytest.approx(6 / 5)  # the 6 in (102, 107]
    assert meter.rate("gate", 200.0) == 0.0
    assert meter.rate("yard", 200.0) == 0.0


def test_the_gauge_and_the_live_view_read_one_meter():
    metrics = Metrics()
    for i in range(30):
        metrics.frame_processed("gate", 50 + i * 0.25)  # 4 per second
    now = 50 + 29 * 0.25
    metrics.update_processed_fps(["gate"], now)
    gauge = metrics.registry.get_sample_value("surveil_camera_processed_fps", {"camera": "gate"})
    assert gauge == round(metrics.processed_fps("gate", now), 3)
    assert metrics.processed_fps("gate", now) == pytest.approx(30 / (now - 50))
    assert PROCESSED_FPS_WINDOW_S == 10.0  # docs/metrics.md: "over the last 10 s"
