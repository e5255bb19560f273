"""The fast tier's guard recognises every long-running program the suite starts, and nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.fast_tier import FastTierViolation, service_launched


@pytest.mark.parametrize(
    ("args", "service"),
    [
        (["/usr/sbin/mosquitto", "-c", "m.conf"], "mosquitto"),
        (["/usr/bin/prometheus", "--config.file=p.yml"], "prometheus"),
        (["/usr/bin/chromium", "--headless"], "chromium"),
        (["/x/playwright/driver/node", "/x/playwright/driver/package/cli.js", "run-driver"], "playwright (Chromium)"),
        (["/usr/bin/python3", "tests/support/rtsp_server.py", "--port", "8554"], "the RTSP test server"),
        ([sys.executable, "-m", "surveil", "run", "-c", "site.yaml"], "surveil run"),
        (["setpriv", "--reuid=1", sys.executable, "-m", "surveil", "run", "-c", "x"], "surveil run"),
        (["/venv/bin/surveil", "bench", "-c", "demo.yaml"], "surveil bench"),
        ([sys.executable, "-m", "surveil", "check-config", "site.yaml"], None),
        (["ffmpeg", "-y", "-i", "in.mp4", "out.mp4"], None),
        (["git", "ls-files"], None),
        ("echo surveil run", None),
        ([], None),
    ],
)
def test_service_launches_are_recognised(args: list[str] | str, service: str | None) -> None:
    assert service_launched(args) == service


def test_an_unmarked_test_cannot_start_a_daemon() -> None:
    with pytest.raises(FastTierViolation, match=r"mark it @pytest\.mark\.slow"):
        subprocess.Popen([sys.executable, "-m", "surveil", "run", "-c", "/nonexistent.yaml"])


def test_an_unmarked_test_cannot_run_the_daemon_in_process(tmp_path) -> None:
    from surveil.config import Config
    from surveil.service.daemon import Daemon

    daemon = Daemon(tmp_path / "x.yaml", Config.model_validate({"cameras": [{"name": "a", "url": "x.mp4"}]}))
    with pytest.raises(FastTierViolation, match="in-process"):
        daemon.run()


@pytest.mark.slow
def test_a_slow_test_may_start_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "run", "-c", "/nonexistent.yaml"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
