"""The live view in a real headless Chromium (Debian's ``chromium`` driven by Playwright): the page
loads, lists the cameras, its live image updates, its status refreshes; auth works the way a
browser uses it. Screenshots are kept in var/test-artifacts/."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from surveil.config import WebConfig
from surveil.service.status import CameraView
from surveil.web.server import WebServer
from tests.support.browser import ARTIFACTS, chromium_page, image_ready, require_browser
from tests.support.polling import wait_until

TOKEN = "browser-token-0123456789"

pytestmark = pytest.mark.slow  # a browser start is 1-2 s, each test 2-12 s


class MovingCameras:
    """Two cameras whose frames change (a bar sweeps across) while a feeder thread runs."""

    def __init__(self) -> None:
        self.version = 0
        self.fps = 3.0
        self.state = "up"

    def camera_views(self):
        return [
            CameraView("gate", self.state, "streaming", self.fps, self.version),
            CameraView("yard", "starting", "", 0.0, 0),
        ]

    def frame_version(self, camera):
        if camera not in ("gate", "yard"):
            raise KeyError(camera)
        return self.version if camera == "gate" and self.version else None

    def annotated_frame(self, camera):
        version = self.frame_version(camera)
        if version is None:
            return None
        image = np.zeros((180, 320, 3), np.uint8)
        x = (version * 16) % 300
        image[:, x : x + 20] = (0, 200, 255)
        return version, image


@pytest.fixture
def live_server():
    require_browser()
    cameras = MovingCameras()
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(0.1):
            cameras.version += 1

    feeder = threading.Thread(target=feed, daemon=True)
    servers: list[WebServer] = []

    def start(**web) -> tuple[WebServer, MovingCameras]:
        server = WebServer("127.0.0.1", 0, cameras, config=WebConfig(max_fps=10, **web)).start()
        servers.append(server)
        if not feeder.is_alive():
            feeder.start()
        return server, cameras

    yield start
    stop.set()
    for server in servers:
        server.close()


def test_page_lists_cameras_and_its_live_image_updates(live_server):
    server, cameras = live_server()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page() as page:
        page.goto(f"http://127.0.0.1:{server.port}/")
        assert page.title() == "surveil — live view"
        assert page.locator("section.camera h2").all_inner_texts() == ["gate", "yard"]
        live = 'section[data-camera="gate"] img.live'
        assert wait_until(lambda: image_ready(page, live), 10), "the live image never showed a frame"
        first = page.locator(live).screenshot()
        assert wait_until(lambda: page.locator(live).screenshot() != first, 5), "the live image did not change"
        # the status line refreshes itself from /cameras.json
        cameras.fps, cameras.state = 7.25, "down"
        assert wait_until(lambda: page.inner_text('section[data-camera="gate"] .fps') == "7.3", 6)
        assert page.get_attribute('section[data-camera="gate"] .state', "class") == "state down"
        page.screenshot(path=str(ARTIFACTS / "live-page-fake-cameras.png"), full_page=True)


def test_browser_with_a_token_link_gets_a_session_and_sees_the_stream(live_server):
    server, _ = live_server(auth_token=TOKEN)
    with chromium_page() as page:
        response = page.goto(f"http://127.0.0.1:{server.port}/")
        assert response.status == 401
        response = page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")
        assert response.status == 200 and page.url == f"http://127.0.0.1:{server.port}/", (
            "redirected: no token in the address bar"
        )
        assert TOKEN not in page.content()
        assert wait_until(lambda: image_ready(page, 'section[data-camera="gate"] img.live'), 10), (
            "the stream needs the session cookie"
        )


def test_browser_basic_auth(live_server):
    server, _ = live_server(username="watch", password="correct horse")
    with chromium_page(http_credentials={"username": "watch", "password": "wrong password"}) as page:
        assert page.goto(f"http://127.0.0.1:{server.port}/").status == 401
    with chromium_page(http_credentials={"username": "watch", "password": "correct horse"}) as page:
        assert page.goto(f"http://127.0.0.1:{server.port}/").status == 200
        assert wait_until(lambda: image_ready(page, 'section[data-camera="gate"] img.live'), 10)


def test_live_page_of_a_running_daemon(tmp_path):
    """The whole path: H.264 clip → capture → detector → analyser → renderer → MJPEG → Chromium."""
    require_browser()
    from tests.support.live_daemon import running_daemon

    with running_daemon(tmp_path) as daemon, chromium_page() as page:
        page.goto(f"http://127.0.0.1:{daemon.metrics_port}/")
        assert page.locator("section.camera h2").all_inner_texts() == ["scene", "gate"]
        live = 'section[data-camera="scene"] img.live'
        assert wait_until(lambda: image_ready(page, live), 20)
        first = page.locator(live).screenshot()
        time.sleep(0.5)
        assert wait_until(lambda: page.locator(live).screenshot() != first, 10), "the live image did not change"
        assert wait_until(lambda: page.inner_text('section[data-camera="gate"] .state') == "down", 10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "live-page-daemon.png"), full_page=True)
        assert "hunter2" not in page.content()


def test_review_page_of_the_demo_lists_incidents_with_snapshot_and_playable_clip(tmp_path):
    """`surveil run -c configs/demo.yaml`: /review lists the incidents /review/incidents.json has, a
    snapshot <img> loads and a clip <video> reports a duration (it decoded the H.264 MP4)."""
    require_browser()
    from tests.support.demo_run import running_demo

    with running_demo(tmp_path, clips=1) as port, chromium_page() as page:
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/review")
        assert page.title() == "surveil — incidents"
        listed = page.eval_on_selector_all("article.incident", "items => items.map(i => i.dataset.incident)")
        stored = [r["incident_id"] for r in page.request.get(f"{base}/review/incidents.json").json()]
        # The demo keeps running: incidents that began after the page loaded come first in the JSON.
        assert listed and listed[0] in stored, (listed, stored)
        newer = stored.index(listed[0])
        assert listed == stored[newer : newer + len(listed)]
        assert wait_until(lambda: image_ready(page, "article.incident img"), 10), "no snapshot loaded"
        video = page.locator("article.incident video").first
        assert wait_until(lambda: video.evaluate("v => v.readyState >= 1 && v.duration > 0"), 20)
        assert video.evaluate("v => v.duration") >= 1.0  # pre_s + post_s at least
        camera_only = page.goto(f"{base}/review?camera=plaza&phase=end")
        assert camera_only.status == 200
        phases = page.locator("article.incident .phase").all_inner_texts()
        assert phases and set(phases) == {"end"}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-page-demo.png"), full_page=True)


def test_live_page_shows_rates_mqtt_spool_and_open_incidents(live_server):
    """What the page fills in from /status.json: the camera's offered rate and drop ratio, the frame's
    time, the MQTT state with the spool size, the incidents in progress."""
    server, _ = live_server()
    incident = {"incident_id": "i1", "camera": "gate", "rule": "door", "rule_type": "zone_intrusion",
                "started_ts": time.time() - 5, "subjects": [{"track_id": 7, "class": "person"}]}  # fmt: skip
    server.provider.service_status = lambda: {  # type: ignore[attr-defined]
        "mqtt": {"enabled": True, "connected": False, "spool": 20},
        "incidents": [incident],
    }
    with chromium_page() as page:
        page.goto(f"http://127.0.0.1:{server.port}/")
        assert wait_until(lambda: page.inner_text("#mqtt") == "disconnected", 6)
        assert page.inner_text("#spool") == "20"
        assert "gate · door (zone_intrusion)" in page.inner_text("#incidents")
        assert "#7 person" in page.inner_text("#incidents")
        assert page.inner_text("#clock") != "—"
        assert page.locator(".legend li").count() >= 5
        width = page.eval_on_selector('section[data-camera="gate"] img.live', "img => img.clientWidth")
        assert width >= 600  # scaled to its card, not left at the frame's 320 px
