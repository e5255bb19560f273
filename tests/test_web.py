"""The daemon's HTTP server on its own: routes, status codes, the MJPEG stream, auth, escaping.

A small in-memory ViewProvider stands in for the pipeline (the server must not need one); the
daemon-level tests are in tests/test_web_daemon.py, the browser tests in tests/test_web_browser.py."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from surveil.config import WebConfig
from surveil.service.status import CameraView
from surveil.web.server import BOUNDARY, WebServer, public_reason, render_index

TOKEN = "0123456789abcdef-token"


class FakeCameras:
    """Two cameras; ``advance(name)`` analyses a new frame (its number drawn as grey level)."""

    def __init__(self, reason: str = "streaming"):
        self.versions: dict[str, int] = {}
        self.drawn = 0
        self.reason = reason
        self.lock = threading.Lock()

    def advance(self, camera: str) -> None:
        with self.lock:
            self.versions[camera] = self.versions.get(camera, 0) + 1

    def camera_views(self):
        return [CameraView("gate", "up", self.reason, 2.5, 10), CameraView("yard", "starting", "", 0.0, 0)]

    def frame_version(self, camera):
        if camera not in ("gate", "yard"):
            raise KeyError(camera)
        return self.versions.get(camera)

    def annotated_frame(self, camera):
        version = self.frame_version(camera)
        if version is None:
            return None
        with self.lock:
            self.drawn += 1
        return version, np.full((48, 64, 3), (version * 40) % 256, np.uint8)


@pytest.fixture
def serve():
    servers = []

    def start(provider=None, **web) -> tuple[WebServer, FakeCameras]:
        provider = provider or FakeCameras()
        registry = CollectorRegistry()
        Counter("surveil_test_total", "A test counter.", registry=registry).inc(3)
        server = WebServer("127.0.0.1", 0, provider, registry=registry, config=WebConfig(**web)).start()
        servers.append(server)
        return server, provider

    yield start
    for server in servers:
        server.close()


def get(server: WebServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def read_parts(
    server: WebServer, path: str, count: int, headers: dict[str, str] | None = None, timeout: float = 10
) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace stream."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    parts = []
    try:
        assert response.fp.readline() == f"--{BOUNDARY}\r\n".encode()
        while len(parts) < count:
            headers_ = {}
            while (line := response.fp.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                headers_[key.lower()] = value.strip()
            assert headers_["content-type"] == "image/jpeg"
            parts.append(response.fp.read(int(headers_["content-length"])))
            assert response.fp.readline() == b"\r\n"
            assert response.fp.readline() == f"--{BOUNDARY}\r\n".encode()
    finally:
        connection.close()
    return parts


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


# ---------------------------------------------------------------- routes


def test_metrics_are_prometheus_text(serve):
    server, _ = serve()
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert "surveil_test_total 3.0" in body.decode()


def test_index_lists_cameras_with_status_fps_and_live_images(serve):
    server, _ = serve()
    status, headers, body = get(server, "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    for name in ("gate", "yard"):
        assert f'data-camera="{name}"' in page
        assert f'src="/cameras/{name}/latest.jpg" data-live="/cameras/{name}/live.mjpeg"' in page
    assert '<span class="state up">up</span>' in page and '<span class="fps">2.5</span>' in page
    assert "script-src 'nonce-" in headers["Content-Security-Policy"]
    status, headers, body = get(server, "/cameras.json")
    cameras = json.loads(body)
    assert [c["name"] for c in cameras] == ["gate", "yard"]
    assert cameras[0] | {"reason": "streaming"} == cameras[0] and cameras[0]["latest"] == "/cameras/gate/latest.jpg"


def test_page_escapes_html_and_never_shows_urls_or_paths(serve):
    reason = 'camera gate: cannot open rtsp://viewer:hunter2@192.0.2.10:554/stream1 <script>alert("x")</script>'
    server, _ = serve(FakeCameras(reason=reason))
    for path in ("/", "/cameras.json"):
        text = get(server, path)[2].decode()
        assert "hunter2" not in text and "rtsp://" not in text and "192.0.2.10" not in text
        assert '<script>alert("x")' not in text
    assert "&lt;script&gt;" in get(server, "/")[2].decode()
    assert public_reason("no frame could be read from /srv/video/secret-site.mp4") == "no frame could be read from …"


def test_latest_jpg_404_for_unknown_camera_503_before_a_frame_then_the_frame(serve):
    server, cameras = serve()
    assert get(server, "/cameras/nope/latest.jpg")[0] == 404
    status, headers, _ = get(server, "/cameras/gate/latest.jpg")
    assert status == 503 and headers["Retry-After"] == "1"
    cameras.advance("gate")
    status, headers, body = get(server, "/cameras/gate/latest.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"
    assert decode(body).shape == (48, 64, 3)
    assert get(server, "/nothing-here")[0] == 404


def test_frames_are_drawn_only_on_request_and_once_per_new_frame(serve):
    server, cameras = serve()
    for _ in range(5):
        cameras.advance("gate")
    assert cameras.drawn == 0, "nobody watches: nothing is drawn"
    for _ in range(3):
        assert get(server, "/cameras/gate/latest.jpg")[0] == 200
    assert cameras.drawn == 1, "the same frame is drawn once, however often it is fetched"
    cameras.advance("gate")
    get(server, "/cameras/gate/latest.jpg")
    assert cameras.drawn == 2


def test_live_stream_sends_new_frames_at_a_capped_rate(serve):
    server, cameras = serve(max_fps=5)
    cameras.advance("gate")
    stop = threading.Event()

    def analyse_fast() -> None:  # 50 frames a second: far more than the cap
        while not stop.wait(0.02):
            cameras.advance("gate")

    feeder = threading.Thread(target=analyse_fast, daemon=True)
    feeder.start()
    try:
        started = time.monotonic()
        parts = read_parts(server, "/cameras/gate/live.mjpeg", 6)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        feeder.join()
    assert elapsed >= 5 / 5 * 0.9, f"6 parts at most 5 fps take >= 1 s, took {elapsed:.2f} s"
    levels = [int(decode(p).mean()) for p in parts]
    assert len(set(levels)) > 1, "the live image changes"


def test_live_streams_are_capped_and_end_when_the_server_closes(serve):
    server, cameras = serve(max_streams=1)
    cameras.advance("gate")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/cameras/gate/live.mjpeg")
    response = connection.getresponse()
    assert response.status == 200
    assert wait_for_status(server, "/cameras/yard/live.mjpeg", 503)
    server.close()  # returns (a hung close fails the test at its timeout)
    assert response.read() is not None  # the stream has ended: read() to EOF returns
    connection.close()


def wait_for_status(server, path, status, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(server, path)[0] == status:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- auth


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_token_auth_header_query_and_session_cookie(serve):
    server, cameras = serve(auth_token=TOKEN)
    cameras.advance("gate")
    for path in ("/", "/cameras.json", "/cameras/gate/latest.jpg", "/cameras/gate/live.mjpeg", "/metrics"):
        status, headers, _ = get(server, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert get(server, "/", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    assert get(server, "/?token=wrong")[0] == 401
    status, headers, body = get(server, "/", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and TOKEN not in body.decode()
    assert get(server, "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(server, f"/cameras/gate/latest.jpg?token={TOKEN}")[0] == 200
    # a browser opens /?token=...: redirected to / with a session cookie that is not the token
    status, headers, _ = get(server, f"/?token={TOKEN}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert TOKEN not in cookie and "HttpOnly" in headers["Set-Cookie"]
    assert get(server, "/cameras/gate/latest.jpg", {"Cookie": cookie})[0] == 200
    assert get(server, "/", {"Cookie": cookie.split("=")[0] + "=forged"})[0] == 401


def test_basic_auth_and_open_metrics(serve):
    server, _ = serve(username="watch", password="correct horse", protect_metrics=False)
    status, headers, _ = get(server, "/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert get(server, "/", basic("watch", "wrong password"))[0] == 401
    assert get(server, "/", basic("other", "correct horse"))[0] == 401
    assert get(server, "/", {"Authorization": "Basic !!notbase64"})[0] == 401
    assert get(server, "/", basic("watch", "correct horse"))[0] == 200
    assert get(server, "/metrics")[0] == 200, "protect_metrics: false leaves /metrics open"


def test_reconfigure_changes_auth_without_a_new_socket(serve):
    server, _ = serve()
    port = server.port
    assert get(server, "/")[0] == 200
    server.configure(WebConfig(auth_token=TOKEN))
    assert server.port == port
    assert get(server, "/")[0] == 401


def test_web_config_is_strict():
    with pytest.raises(ValueError, match="both username and password"):
        WebConfig(username="watch")
    with pytest.raises(ValueError):
        WebConfig(auth_token="short")
    with pytest.raises(ValueError):
        WebConfig(max_fps=0)
    with pytest.raises(ValueError):
        WebConfig(unknown=1)


def test_disabled_views_leave_metrics(serve):
    server, _ = serve(enabled=False)
    assert get(server, "/")[0] == 404
    assert get(server, "/cameras/gate/latest.jpg")[0] == 404
    assert get(server, "/metrics")[0] == 200


def test_render_index_without_cameras():
    assert "No cameras are enabled." in render_index([], "n")
