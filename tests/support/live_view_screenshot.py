"""The README's screenshots, taken from a real run of the demo:

    .venv/bin/python -m tests.support.live_view_screenshot docs/images

Starts `surveil run -c configs/demo.yaml` (the shipped clip and model; state in a temporary
folder; no MQTT broker needed), waits until it has written an incident clip, then saves
``live-view.png`` (the live page), ``review.png`` (the incident review) and ``review-clip.png``
(its first incident with a clip, playing) with headless Chromium. Needs chromium and playwright (see README)."""

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
        with chromium_page(width=1280, height=800) as page:
            page.goto(f"http://127.0.0.1:{port}/review")
            page.screenshot(path=str(folder / "review.png"))  # the newest incidents, some clips still pending
            card = page.locator("article.incident", has=page.locator("video")).first
            video = card.locator("video")
            video.evaluate("v => v.play()")
            if not wait_until(lambda: video.evaluate(PLAYING), 20):
                raise SystemExit("the first clip did not play")
            card.screenshot(path=str(folder / "review-clip.png"))  # one incident, its clip playing
    print(f"wrote live-view.png, review.png and review-clip.png in {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=REPO / "docs/images")
    screenshot_demo(parser.parse_args().folder)
