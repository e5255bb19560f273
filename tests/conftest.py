"""Shared fixtures. Fixtures that start real services live in tests/support/ and are
re-exported here so every test module can use them by name."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data beside the checkout; tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


# fixtures that start real services, shared by all test modules
from tests.support.media import h264_clip  # noqa: E402,F401
from tests.support.mqtt_broker import mosquitto_broker, mosquitto_broker_factory, mqtt_collector  # noqa: E402,F401
from tests.support.rtsp import rtsp_server  # noqa: E402,F401
