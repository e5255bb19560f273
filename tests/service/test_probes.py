"""Issue 9: /healthz and /readyz for Kubernetes probes, on the daemon's HTTP server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from surveil.config import WebConfig
from surveil.service.pipeline import Health
from surveil.web.server import WebServer
from tests.support.live_daemon import running_daemon
from tests.support.polling import wait_until


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Probes:
    def __init__(self, live=(True, "fine"), ready=(False, "loading the model")):
        self.live, self.ready = live, ready

    def camera_views(self):
        return []

    def frame_version(self, camera):
        raise KeyError(camera)

    def annotated_frame(self, camera):
        raise KeyError(camera)

    def liveness(self):
        return self.live

    def readiness(self):
        return self.ready


@pytest.mark.parametrize(
    "config",
    [
        WebConfig(),
        WebConfig(auth_token="0123456789abcdef-token"),  # kubelet sends no credentials: probes stay open
        WebConfig(enabled=False),  # /metrics only: probes still answer
    ],
)
def test_probe_status_codes(config):
    provider = Probes()
    server = WebServer("127.0.0.1", 0, provider, config=config).start()
    try:
        assert _get(server.port, "/healthz") == (200, "ok: fine\n")
        assert _get(server.port, "/readyz") == (503, "fail: loading the model\n")
        provider.live, provider.ready = (False, "thread(s) died: detect"), (True, "1 of 1 owned camera(s) delivering")
        assert _get(server.port, "/healthz") == (503, "fail: thread(s) died: detect\n")
        assert _get(server.port, "/readyz") == (200, "ok: 1 of 1 owned camera(s) delivering\n")
    finally:
        server.close()


def test_provider_without_probes_is_404():
    class Bare(Probes):
        liveness = readiness = None

    server = WebServer("127.0.0.1", 0, Bare()).start()
    try:
        assert _get(server.port, "/healthz")[0] == 404
    finally:
        server.close()


@pytest.mark.slow
def test_daemon_probes(tmp_path):
    """A real daemon (scene clip + a camera that stays down): ready once the scene delivers; not live when a thread dies."""
    with running_daemon(tmp_path) as daemon:
        port = daemon.metrics_port
        assert wait_until(lambda: _get(port, "/readyz")[0] == 200, 30), _get(port, "/readyz")
        assert _get(port, "/readyz")[1] == "ok: 1 of 2 owned camera(s) delivering\n"
        assert wait_until(lambda: daemon._health[0] is not None, 10)
        assert _get(port, "/healthz") == (200, "ok: threads alive, detector progressing\n")
        stalled = Health(threads_alive=True, detector_stalled=True, dead_threads=())
        daemon.pipeline.housekeeping = lambda: stalled  # what the supervisor sees next second
        assert wait_until(lambda: _get(port, "/healthz")[0] == 503, 10)
        assert _get(port, "/healthz")[1].startswith("fail: detector has finished no batch for 60 s")


def test_liveness_fails_when_the_supervisor_stops_checking(tmp_path):
    from surveil.config import Config
    from surveil.service.daemon import Daemon

    daemon = Daemon(tmp_path / "x.yaml", Config.model_validate({"cameras": [{"name": "a", "url": "x.mp4"}]}))
    assert daemon.liveness() == (True, "starting")
    assert daemon.readiness() == (False, "loading the model")
    daemon._health = (Health(threads_alive=True, detector_stalled=False, dead_threads=()), time.monotonic() - 60)
    ok, why = daemon.liveness()
    assert not ok and "has not checked the pipeline for 60 s" in why
