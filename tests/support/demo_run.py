"""`surveil run -c configs/demo.yaml` as a subprocess (the shipped clip and model, state in a given
folder, no MQTT broker: alerts wait in the spool), for browser tests and the README screenshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.browser import REPO
from tests.support.polling import free_port, wait_until
from tests.support.polling import scraped_metric as metric


@contextmanager
def running_demo(state_dir: Path, clips: int = 1, timeout: float = 240.0) -> Iterator[int]:
    """The demo's web port, once it has written ``clips`` incident clips (0: once it has raised an alert)."""
    port = free_port()
    env = {
        **os.environ,
        "SURVEIL_METRICS_LISTEN": f"127.0.0.1:{port}",
        "SURVEIL_STATE_DIR": str(state_dir),
        "MQTT_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "surveil", "run", "-c", "configs/demo.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if clips:
            ready = wait_until(lambda: metric(port, "surveil_review_clips_total") >= clips, timeout, interval=0.5)
        else:
            ready = wait_until(lambda: metric(port, "surveil_alerts_total") >= 1, timeout, interval=0.5)
        if not ready:
            raise RuntimeError(f"the demo wrote no clip / raised no alert within {timeout:.0f} s")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
