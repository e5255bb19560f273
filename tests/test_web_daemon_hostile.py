"""A real `surveil run` daemon under hostile HTTP clients stays small, keeps analysing and keeps serving.

One daemon (a subprocess, JSON logs) analyses a looping H.264 file camera with the shipped
native-resolution model under OpenVINO at 4 fps (a quarter of what it can do here), beside a camera that never delivers a frame; its web view wants a token. Each case measures
an undisturbed window first, then attacks for a while, and asserts against those figures of the
same test, never against wall-clock constants:

(a) the daemon's RSS peak stays within RSS_MARGIN_MB of its undisturbed peak, and returns near it;
(b) frames analysed per second during the attack stay >= FPS_RATIO of the undisturbed rate (the
    lower of a window before and one after the attack: other work on the machine drifts);
(c) afterwards a new viewer of the live stream gets 200 within a bounded number of polls;
(d) the log has no traceback and is JSON lines throughout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.hostile_http import (
    abandoned_streams,
    cookie_bombs,
    huge_headers,
    many_connections,
    rss_mb,
    run_for,
    slowloris,
)
from tests.support.polling import free_port
from tests.support.scene import make_scene_clip
from tests.support.surveil_cli import SHIPPED_MODEL, closed_port, start_surveil, stop_surveil

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a hang guard; every loop is bounded

TOKEN = "hostile-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NATIVE_MODEL = SHIPPED_MODEL.with_name("pedestrian-mnv2-s8.pt")
RSS_MARGIN_MB = 150  # peak RSS under attack <= undisturbed peak + this
RSS_AFTER_MB = 60  # RSS once the attack is over <= undisturbed peak + this (memory is given back)
FPS_RATIO = 0.7  # analysed fps under attack >= this x the undisturbed fps
WINDOW_S = 8.0  # length of the undisturbed and the attacked window
POLLS = 50  # polls (0.1 s apart) for the daemon to serve a viewer again after an attack
FIGURES: list[str] = []


class Daemon:
    def __init__(self, process, port: int, log: Path):
        self.process, self.port, self.log = process, port, log

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={**BEARER, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read() if "mjpeg" not in path else b""
        except urllib.error.HTTPError as error:
            return error.code, b""
        except OSError:
            return 0, b""

    def processed(self) -> float | None:
        """surveil_frames_processed_total of the file camera, None while /metrics does not answer."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        prefix = 'surveil_frames_processed_total{camera="scene"'
        return sum(float(line.split()[-1]) for line in body.decode().splitlines() if line.startswith(prefix))

    def processed_soon(self) -> tuple[float, float]:
        """(counter, monotonic time) from the first scrape that answers within POLLS polls."""
        for _ in range(POLLS):
            count = self.processed()
            if count is not None:
                return count, time.monotonic()
            time.sleep(0.1)
        pytest.fail(f"/metrics did not answer within {POLLS} polls")

    def rss(self) -> float:
        return rss_mb(self.process.pid)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    clip = make_scene_clip(tmp / "scene.mp4")
    port = free_port()
    config = {
        "cameras": [
            # fps_limit well inside the detector's capacity: the analysed rate then falls only when the
            # daemon's threads are starved (a client holding the GIL), not when the attacking clients of
            # this same test take a share of the 2 CPU cores
            {"name": "scene", "url": str(clip.path), "realtime": True, "loop": True, "fps_limit": 4},
            {  # never delivers a frame: its live view has nothing to write
                "name": "gate",
                "url": f"rtsp://127.0.0.1:{closed_port()}/stream1",
                "open_timeout_s": 1,
                "reconnect_min_s": 1,
                "reconnect_max_s": 2,
            },
        ],
        "detector": {"weights": str(NATIVE_MODEL), "backend": "openvino", "device": "cpu", "threads": 1},
        "mqtt": {"enabled": False},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "web": {"auth_token": TOKEN, "max_streams": 8},
        "logging": {"format": "json"},
        "state_dir": str(tmp / "state"),
    }
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp / "run.log"
    process = start_surveil(path, log_path=log)
    running = Daemon(process, port, log)
    try:
        for _ in range(600):  # 60 s for the model to load and the first frames to be analysed
            if process.poll() is not None or (running.processed() or 0) >= 10:
                break
            time.sleep(0.1)
        assert (running.processed() or 0) >= 10, log.read_text()[-3000:]
        yield running
    finally:
        assert stop_surveil(process) == 0, log.read_text()[-3000:]
        print("\n" + "\n".join(FIGURES))


CASES = [  # (name, attack, attack window in undisturbed windows)
    ("slowloris", slowloris, 1),
    ("huge headers", huge_headers, 2),  # http.server took ~20 MB/s of heads here: long enough to show it
    ("many connections", many_connections, 1),
    ("abandoned streams", abandoned_streams("gate", f"Authorization: Bearer {TOKEN}\r\n".encode()), 1),
    # the web side took 0.3-0.5 cores under this one (a thread per connection, header parsing, replies),
    # competing with the detector for the CPU; the server's threads now run 10 nicer (surveil.web.limits)
    ("cookie bombs", cookie_bombs, 1),
]


@pytest.mark.parametrize(("name", "attack", "windows"), CASES, ids=[c[0] for c in CASES])
def test_daemon_stays_small_fast_and_serving_under(daemon, name, attack, windows):
    undisturbed: list[float] = []  # RSS swings by tens of MiB with the detector's own work: sample it
    count0, time0 = daemon.processed_soon()
    _sample_for(WINDOW_S, lambda: undisturbed.append(daemon.rss()))
    count1, time1 = daemon.processed_soon()
    rss_before = max(undisturbed)
    fps_before = (count1 - count0) / (time1 - time0)
    assert fps_before > 0, "the camera is analysed before the attack"

    peak = [rss_before]
    rounds = run_for(attack, daemon.port, windows * WINDOW_S, sample=lambda: peak.append(daemon.rss()))
    count2, time2 = daemon.processed_soon()
    fps_under = (count2 - count1) / (time2 - time1)

    served = _served_within(daemon, "/cameras/scene/live.mjpeg", POLLS)
    rss_after = min(_settled_rss(daemon))
    count3, time3 = daemon.processed_soon()  # and undisturbed again: the machine's own load drifts
    time.sleep(WINDOW_S)
    count4, time4 = daemon.processed_soon()
    fps_before = min(fps_before, (count4 - count3) / (time4 - time3))
    assert fps_before > 0, "the camera is analysed again after the attack"
    FIGURES.append(
        f"{name:18s} RSS undisturbed peak {rss_before:6.0f} MiB, peak {max(peak):6.0f}, after {rss_after:6.0f}; "
        f"analysed fps undisturbed {fps_before:5.2f}, under attack {fps_under:5.2f} (ratio {fps_under / fps_before:.2f}); "
        f"{rounds} attack rounds"
    )
    assert max(peak) <= rss_before + RSS_MARGIN_MB, FIGURES[-1]
    assert rss_after <= rss_before + RSS_AFTER_MB, FIGURES[-1]
    assert fps_under >= FPS_RATIO * fps_before, FIGURES[-1]
    assert served, "a new viewer gets the live stream after the attack"
    _assert_clean_log(daemon.log)


def _sample_for(seconds: float, sample, every: float = 0.2) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample()
        time.sleep(every)


def _served_within(daemon: Daemon, path: str, polls: int) -> bool:
    for _ in range(polls):
        if daemon.get(path)[0] == 200:
            return True
        time.sleep(0.1)
    return False


def _settled_rss(daemon: Daemon, polls: int = 20) -> list[float]:
    """RSS samples over a few seconds after the attack (freed memory may take a moment to be returned)."""
    samples = []
    for _ in range(polls):
        samples.append(daemon.rss())
        time.sleep(0.1)
    return samples


def _assert_clean_log(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    for line in text.splitlines():
        try:
            json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
