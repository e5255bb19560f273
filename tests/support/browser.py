"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's own browser download is not used (no network): the browser is the system one at
``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). Tests that need it
skip with a reason when it or the ``playwright`` package is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts"  # screenshots kept from the last test run (git-ignored)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_page(width: int = 1100, height: int = 700, **context_options) -> Iterator[object]:
    """A fresh page in a headless Chromium (its own context: no cookies from other tests).

    ``context_options`` go to Playwright's ``new_context``, e.g. ``http_credentials``."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
            yield context.new_page()
        finally:
            browser.close()


def require_browser() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")


def image_ready(page, selector: str) -> bool:
    """The <img> has decoded at least one frame."""
    return bool(page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0"))
