"""The live page and /status.json: offered vs processed fps, drop ratio, frame time, MQTT, spool,
open incidents, a legend."""

from __future__ import annotations

import http.client
import json

import pytest

from surveil.service.status import CameraView
from surveil.web.live_page import render_live_page
from surveil.web.server import WebServer, render_index


class Provider:
    def camera_views(self):
        return [CameraView("gate", "up", "streaming", 2.5, 10, offered_fps=10.0, drop_ratio=0.75, last_frame_ts=1e9)]

    def frame_version(self, camera):
        return None

    def annotated_frame(self, camera):
        return None


class WithService(Provider):
    def service_status(self):
        incident = {"incident_id": "i1", "camera": "gate", "rule": "door", "rule_type": "zone_intrusion",
                    "started_ts": 1e9, "subjects": []}  # fmt: skip
        return {"mqtt": {"enabled": True, "connected": False, "spool": 20}, "incidents": [incident]}


def _status(provider) -> dict:
    server = WebServer("127.0.0.1", 0, provider).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/status.json")
        return json.loads(connection.getresponse().read())
    finally:
        server.close()


@pytest.mark.parametrize(("provider", "mqtt", "incidents"), [(Provider(), None, None), (WithService(), 20, 1)])
def test_status_json(provider, mqtt, incidents):
    status = _status(provider)
    (camera,) = status["cameras"]
    assert (camera["fps"], camera["offered_fps"], camera["drop_ratio"], camera["last_frame_ts"]) == (
        2.5,
        10.0,
        0.75,
        1e9,
    )
    assert status["now"] > 1.7e9
    assert (status.get("mqtt") or {}).get("spool") == mqtt
    assert (len(status["incidents"]) if "incidents" in status else None) == incidents


def test_page_has_rates_legend_clock_and_panels():
    page = render_index(Provider().camera_views(), "n0nce")
    assert '<span class="fps">2.5</span> fps analysed of <span class="offered">10.0</span> offered' in page
    assert '<span class="drop">75</span> % dropped' in page
    for part in ('id="clock"', 'id="mqtt"', 'id="spool"', 'id="incidents"', 'class="legend"', 'href="/review"'):
        assert part in page
    assert "raw detection not (yet) tracked" in page
    assert '<script nonce="n0nce">' in page


def test_page_without_cameras():
    assert "No cameras are enabled." in render_live_page([], "n")
