"""The live view served by a running daemon: real H.264 clip → capture → detector → analyser →
``latest.jpg`` drawn by the renderer; camera URLs never reach a page; a reload keeps serving."""

from __future__ import annotations

import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from surveil.analysis.render import ACTIVE_COLOUR, ZONE_COLOUR
from tests.support.live_daemon import CENTRE, SECRET, running_daemon, write_config
from tests.support.pixels import outline_hits
from tests.support.polling import wait_until
from tests.support.scene import HEIGHT, WIDTH

pytestmark = pytest.mark.slow  # a real broker / a running daemon in every test

TOKEN = "reloaded-token-0123456789"


@pytest.fixture
def running(tmp_path):
    with running_daemon(tmp_path) as daemon:
        yield daemon, daemon.config_path, tmp_path / "scene.mp4"


def fetch(daemon, path, headers=None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.metrics_port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_latest_jpg_shows_the_zone_outline_where_the_polygon_is(running):
    daemon, _, _ = running
    assert wait_until(lambda: fetch(daemon, "/cameras/scene/latest.jpg")[0] == 200, 30)
    _status, body = fetch(daemon, "/cameras/scene/latest.jpg")
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (HEIGHT, WIDTH, 3)
    colours = [ZONE_COLOUR, ACTIVE_COLOUR]
    assert outline_hits(image, CENTRE, colours) >= 0.9
    # and not just anywhere: a polygon where no zone is finds (almost) none of it
    assert outline_hits(image, [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2], [0.1, 0.2]], colours) <= 0.1
    assert fetch(daemon, "/cameras/nope/latest.jpg")[0] == 404


def test_pages_show_camera_names_never_their_urls(running):
    daemon, _, _ = running
    assert wait_until(lambda: b'"state": "down"' in fetch(daemon, "/cameras.json")[1], 30), fetch(
        daemon, "/cameras.json"
    )
    for path in ("/", "/cameras.json"):
        status, body = fetch(daemon, path)
        text = body.decode()
        assert status == 200 and "gate" in text and "scene" in text
        assert SECRET not in text and "rtsp://" not in text and "viewer" not in text


def test_reload_keeps_serving_and_applies_new_auth(running):
    daemon, path, clip = running
    server, port = daemon._http, daemon.metrics_port
    assert wait_until(lambda: fetch(daemon, "/cameras/scene/latest.jpg")[0] == 200, 30)
    write_config(path, clip, auth_token=TOKEN)
    old = daemon.pipeline
    daemon._reload_requested.set()
    assert wait_until(lambda: daemon.pipeline is not old, 30)
    assert daemon._http is server and daemon.metrics_port == port
    assert fetch(daemon, "/")[0] == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert wait_until(lambda: fetch(daemon, "/cameras/scene/latest.jpg", bearer)[0] == 200, 30)
    assert b"surveil_frames_processed_total" in fetch(daemon, "/metrics", bearer)[1]
