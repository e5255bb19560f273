"""The README's screenshots, taken from a real run of the demo:

    .venv/bin/python -m tests.support.live_view_screenshot docs/images

Starts `surveil run -c configs/demo.yaml` (the shipped clip and model; state in a temporary
folder; no MQTT broker needed), waits until it has written an incident clip, then saves
``live-view.png`` (the live page) and ``review.png`` (the incident review, its first clip
playing) with headless Chromium. Needs chromium and playwright (see README)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.browser import REPO, chromium_page, image_ready
from tests.support.demo_run import running_demo
from tests.support.polling import wait_until

PLAYING = "v => v.readyState >= 2 && v.currentTime > 0.5 && !v.paused"


def screenshot_demo(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as state, running_demo(Path(state), clips=2) as port:
        with chromium_page(width=1280, height=900) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            if not wait_until(lambda: image_ready(page, "img.live"), 30):
                raise SystemExit("the live image did not load")
            time.sleep(4)  # a few streamed frames, and the status line refreshed
            page.screenshot(path=str(folder / "live-view.png"), full_page=True)
        with chromium_page(width=1280, height=900) as page:
            page.goto(f"http://127.0.0.1:{port}/review")
            video = page.locator("video").first
            video.evaluate("v => v.play()")
            if not wait_until(lambda: video.evaluate(PLAYING), 20):
                raise SystemExit("the first clip did not play")
            page.screenshot(path=str(folder / "review.png"))
    print(f"wrote {folder / 'live-view.png'} and {folder / 'review.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=REPO / "docs/images")
    screenshot_demo(parser.parse_args().folder)
