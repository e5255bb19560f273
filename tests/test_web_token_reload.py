"""Issue 18, item 8: web tokens - a revoked token ends its streams; a `+` in a token works as sent.

Real sockets: the web server on its own (tests.test_web's FakeCameras), and one real daemon
reloaded by its SIGHUP path (slow)."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import quote, quote_plus

import pytest
from prometheus_client import CollectorRegistry

from surveil.config import WebConfig
from surveil.web.server import BOUNDARY, WebServer
from tests.support.live_daemon import running_daemon, write_config
from tests.support.polling import wait_until
from tests.test_web import FakeCameras

OLD = "old-token-0123456789abcdef"
NEW = "new-token-0123456789abcdef"


@pytest.fixture
def server():
    provider = FakeCameras()
    provider.advance("gate")
    web = WebServer("127.0.0.1", 0, provider, registry=CollectorRegistry(), config=WebConfig(auth_token=OLD)).start()
    feeder_stop = threading.Event()

    def feed() -> None:  # a new analysed frame every 50 ms, so open streams keep sending
        while not feeder_stop.wait(0.05):
            provider.advance("gate")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield web
    feeder_stop.set()
    web.close()


def _open_stream(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)  # hang guard
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.status
    assert response.fp.readline() == f"--{BOUNDARY}\r\n".encode()
    return response


def _ends(response: http.client.HTTPResponse, guard_s: float = 15.0) -> bool:
    """Read until the server closes the stream (True) or the hang guard fires (False; frames keep coming)."""
    deadline = time.monotonic() + guard_s
    try:
        while response.fp.read1(4096):
            if time.monotonic() > deadline:
                return False
    except TimeoutError:
        return False
    return True


def _cookie(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/", headers={"Authorization": f"Bearer {OLD}"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.getheader("Set-Cookie", "").split(";", 1)[0]


# (label, how the stream authenticates: request path suffix and headers)
CREDENTIALS = [
    ("bearer", "", lambda port: {"Authorization": f"Bearer {OLD}"}),
    ("query", f"?token={OLD}", lambda port: {}),
    ("session cookie", "", lambda port: {"Cookie": _cookie(port)}),
]


@pytest.mark.parametrize(("label", "suffix", "headers"), CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
@pytest.mark.parametrize(
    ("new_config", "ends"),
    [
        (WebConfig(auth_token=NEW), True),  # revoked
        (WebConfig(auth_token=OLD, max_fps=8), None),  # same token, other settings: the stream goes on
        (WebConfig(auth_token=OLD, enabled=False), True),  # the live view switched off
    ],
    ids=["new token", "same token", "web disabled"],
)
def test_a_reload_ends_the_streams_whose_credentials_no_longer_pass(server, label, suffix, headers, new_config, ends):
    response = _open_stream(server.port, f"/cameras/gate/live.mjpeg{suffix}", headers(server.port))
    assert response.fp.read(200)  # streaming
    server.configure(new_config)
    if ends:
        assert _ends(response), f"{label}: the stream outlived the reload"
    else:
        time.sleep(0.5)
        assert response.fp.read(200), f"{label}: the stream ended although its token still passes"
        response.close()


TOKENS = ["plus+in+token-0123456789", "+leading-and-trailing+0123", "space and+plus-0123456789", "pct%2B-0123456789"]


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize(
    ("label", "encode"),
    [
        ("raw", lambda t: t.replace(" ", "%20").replace("%2B", "%252B") if "%" in t else t.replace(" ", "%20")),
        ("percent-encoded", lambda t: quote(t, safe="")),
        ("form-encoded", lambda t: quote_plus(t)),
    ],
)
def test_a_token_with_a_plus_works_as_sent(token, label, encode):
    provider = FakeCameras()
    web = WebServer("127.0.0.1", 0, provider, config=WebConfig(auth_token=token)).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        connection.request("GET", f"/cameras.json?token={encode(token)}")
        status = connection.getresponse().status
        connection.close()
        assert status == 200, f"{label} {token!r} -> {status}"
        wrong = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        wrong.request("GET", f"/cameras.json?token={encode(token)}x")
        assert wrong.getresponse().status == 401
        wrong.close()
    finally:
        web.close()


@pytest.mark.slow
def test_sighup_with_a_new_token_ends_a_daemon_stream_opened_with_the_old_one(tmp_path):
    with running_daemon(tmp_path) as daemon:
        path, clip = daemon.config_path, tmp_path / "scene.mp4"
        write_config(path, clip, auth_token=OLD)
        old = daemon.pipeline
        daemon._reload_requested.set()
        assert wait_until(lambda: daemon.pipeline is not old, 30)
        port = daemon.metrics_port
        assert port is not None
        assert wait_until(lambda: _status(port, "/cameras/scene/latest.jpg", OLD) == 200, 30)
        response = _open_stream(port, "/cameras/scene/live.mjpeg", {"Authorization": f"Bearer {OLD}"})
        assert response.fp.read(200)
        write_config(path, clip, auth_token=NEW)
        old = daemon.pipeline
        daemon._reload_requested.set()  # what the SIGHUP handler does (signals only reach the main thread)
        assert wait_until(lambda: daemon.pipeline is not old, 30)
        assert _ends(response), "the stream opened with the revoked token kept streaming"
        assert _status(port, "/cameras/scene/latest.jpg", OLD) == 401
        assert _status(port, "/cameras/scene/latest.jpg", NEW) == 200


def _status(port: int, path: str, token: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    status = connection.getresponse().status
    connection.close()
    return status
