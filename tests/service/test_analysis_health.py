"""Issue 18, item 7: an analysis stage that keeps failing shows in /healthz, the metrics and the watchdog.

Before: 17 analysis failures in 30 s (LinAlgError in the tracker) while /healthz said ok and the
watchdog kept being pinged. Now every failure counts in ``surveil_analysis_errors_total{camera}``,
and a run of failures (no success between) that lasts over a window makes the camera *failing*:
/healthz answers 503 with the camera and the error, and the supervisor withholds the watchdog ping.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from surveil.service.pipeline import AnalysisFailures, Health
from tests.support.live_daemon import running_daemon
from tests.support.polling import wait_until

# (label, events, failing cameras) - events: ("fail"|"ok", camera, time)
CASES = [
    ("no event", [], []),
    ("one failure", [("fail", "a", 0.0)], []),
    ("a burst within a moment", [("fail", "a", t / 100) for t in range(50)], []),
    ("few failures over a long time", [("fail", "a", 0.0), ("fail", "a", 30.0)], []),
    ("persistent", [("fail", "a", t) for t in range(12)], ["a"]),
    ("persistent, then one success", [*[("fail", "a", t) for t in range(12)], ("ok", "a", 12.0)], []),
    (
        "a success in the middle restarts the run",
        [*[("fail", "a", t) for t in range(6)], ("ok", "a", 6.0), *[("fail", "a", t) for t in range(7, 12)]],
        [],
    ),
    ("only the failing camera", [*[("fail", "a", t) for t in range(12)], *[("ok", "b", t) for t in range(12)]], ["a"]),
    ("two cameras", [*[("fail", c, t) for t in range(12) for c in "ab"]], ["a", "b"]),
]


@pytest.mark.parametrize(("label", "events", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_run_of_failures_over_the_window_is_failing(label, events, expected):
    failures = AnalysisFailures(min_failures=5, window_s=10.0)
    for kind, camera, now in events:
        if kind == "fail":
            failures.failed(camera, RuntimeError("boom"), now)
        else:
            failures.succeeded(camera)
    failing = failures.failing()
    assert [line.split(":", 1)[0] for line in failing] == expected, label
    assert all("RuntimeError: boom" in line for line in failing)


def test_the_reason_never_shows_a_secret():
    from surveil.redact import remember

    remember(["pw-in-an-error-message"])
    failures = AnalysisFailures(min_failures=1, window_s=0.0)
    failures.failed("a", ValueError("rtsp://u:pw-in-an-error-message@cam/stream"), 0.0)
    assert "pw-in-an-error-message" not in failures.failing()[0]


def test_liveness_names_the_failing_camera(tmp_path):
    from surveil.config import Config
    from surveil.service.daemon import Daemon

    daemon = Daemon(tmp_path / "x.yaml", Config.model_validate({"cameras": [{"name": "a", "url": "x.mp4"}]}))
    health = Health(True, False, (), analysis_failing=("a: analysis failed 9 times in a row over 12 s (latest: X)",))
    daemon._health = (health, time.monotonic())
    assert daemon.liveness() == (False, "a: analysis failed 9 times in a row over 12 s (latest: X)")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(port: int, name: str, camera: str) -> float:
    for line in _get(port, "/metrics")[1].splitlines():
        if line.startswith(f'{name}{{camera="{camera}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_a_daemon_whose_analysis_keeps_failing_is_not_live_and_stops_pinging(tmp_path):
    with running_daemon(tmp_path) as daemon:
        port, pipeline = daemon.metrics_port, daemon.pipeline
        assert port is not None and pipeline is not None
        assert wait_until(lambda: _get(port, "/healthz")[0] == 200 and daemon._health[0] is not None, 30)
        pings: list[float] = []

        def ping() -> bool:
            pings.append(time.monotonic())
            return True

        daemon.notifier.watchdog = ping  # type: ignore[method-assign]
        pipeline.analysis_failures = AnalysisFailures(min_failures=3, window_s=1.0)  # the window, shortened
        analyzer = pipeline.analyzers["scene"]

        def broken(_ctx):
            raise ArithmeticError("singular matrix (as the tracker raised at measurement_noise 1e-300)")

        analyzer.process = broken  # type: ignore[method-assign]
        assert wait_until(lambda: _get(port, "/healthz")[0] == 503, 30), _get(port, "/healthz")
        _status, body = _get(port, "/healthz")
        assert body.startswith("fail: scene: analysis failed") and "ArithmeticError: singular matrix" in body
        assert _sample(port, "surveil_analysis_errors_total", "scene") >= 3
        assert _sample(port, "surveil_analysis_errors_total", "gate") == 0
        withheld = len(pings)
        time.sleep(2.5)  # the supervisor checks every second: no ping while failing
        assert len(pings) == withheld
        del analyzer.process  # repaired: the next analysed frame clears it
        assert wait_until(lambda: _get(port, "/healthz")[0] == 200, 30), _get(port, "/healthz")
        assert wait_until(lambda: len(pings) > withheld, 10)
