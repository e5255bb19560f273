"""A real GStreamer RTSP server for tests, run as a separate process.

The server (``rtsp_server.py``) needs Debian's ``/usr/bin/python3`` with python3-gi and
gir1.2-gst-rtsp-server-1.0; the venv has no ``gi``. Tests that use it skip, with the reason,
where those are missing.

Fixtures (import them into a conftest to share; ``rtsp_server`` needs ``h264_clip`` from
``tests.support.media`` in scope too):
- ``rtsp_server``: a started ``RtspServer`` on a free loopback port, relaying ``h264_clip``
  in a loop; killed after the test. ``kill()``, ``start()``, ``restart()``, ``freeze()``,
  ``thaw()`` act on the real process.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.media import Clip
from tests.support.polling import free_port, wait_until  # noqa: F401  (re-exported)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
START_TIMEOUT_S = 15.0


@functools.cache
def gst_rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "missing = [e for e in ('qtdemux', 'h264parse', 'rtph264pay', 'appsrc', 'appsink') "
        "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))"
    )
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks gi/GstRtspServer (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0): {last}"
    if result.stdout.strip():
        return f"GStreamer elements missing: {result.stdout.strip()} (gstreamer1.0-plugins-good/bad)"
    return None


class RtspServer:
    """One ``rtsp_server.py`` process serving ``clip`` at ``rtsp://127.0.0.1:<port><path>``."""

    def __init__(self, clip: Path, port: int, log_path: Path, path: str = "/cam") -> None:
        self.clip = clip
        self.port = port
        self.path = path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the process and wait for its READY line; retries while the port is still busy."""
        deadline = time.monotonic() + timeout
        while True:
            if self._try_start(deadline):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"RTSP server did not start on port {self.port}:\n{self._log_tail()}")
            time.sleep(0.2)

    def _try_start(self, deadline: float) -> bool:
        cmd = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--clip",
            str(self.clip),
            "--path",
            self.path,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        line = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                chunk = os.read(fd, 256)
                line += chunk
                if line.startswith(b"READY"):
                    return True
                if not chunk:
                    break
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL the server (works on a frozen one too) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open, nothing is sent — a hung camera."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


@pytest.fixture
def rtsp_server(h264_clip: Clip, tmp_path: Path) -> Iterator[RtspServer]:
    """A running RTSP server relaying ``h264_clip`` on a free loopback port; killed afterwards."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(h264_clip.path, free_port(), tmp_path / "rtsp-server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
