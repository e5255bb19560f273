"""The README's screenshot of the live view, taken from a real run of the demo.

    .venv/bin/python -m tests.support.live_view_screenshot docs/images/live-view.png

Starts `surveil run -c configs/demo.yaml` (the shipped clip and model; state in a temporary
folder; no MQTT broker needed), waits until it has raised an alert, opens the live page in
headless Chromium, and saves a screenshot of it. Needs chromium and playwright (see README)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.browser import REPO, chromium_page, image_ready
from tests.support.polling import free_port, wait_until
from tests.support.polling import scraped_metric as metric


def screenshot_demo(output: Path, timeout: float = 180.0) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        env = {
            **os.environ,
            "SURVEIL_METRICS_LISTEN": f"127.0.0.1:{port}",
            "SURVEIL_STATE_DIR": state,
            "MQTT_PORT": str(free_port()),
        }  # no broker there: alerts wait in the (temporary) spool
        process = subprocess.Popen(
            [sys.executable, "-m", "surveil", "run", "-c", "configs/demo.yaml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not wait_until(lambda: metric(port, "surveil_alerts_total") >= 1, timeout, interval=0.5):
                raise SystemExit("the demo raised no alert in time")
            with chromium_page(width=560, height=520) as page:
                page.goto(f"http://127.0.0.1:{port}/")
                if not wait_until(lambda: image_ready(page, "img.live"), 30):
                    raise SystemExit("the live image did not load")
                time.sleep(3)  # a few streamed frames, and the status line refreshed
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output), full_page=True)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    print(f"wrote {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=REPO / "docs/images/live-view.png")
    screenshot_demo(parser.parse_args().output)
