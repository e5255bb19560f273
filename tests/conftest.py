"""Shared fixtures. Fixtures that start real services live in tests/support/ and are
re-exported here so every test module can use them by name."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _forget_remembered_secrets() -> Iterator[None]:
    """load_config remembers a config's secrets for redaction (process-wide): one test's passwords
    must not mask another test's output."""
    yield
    from surveil import redact

    redact.forget_all()


# ---------------------------------------------------------------- the fast tier
# `pytest -m "not slow"` starts no broker, daemon, browser or RTSP server: a test that does must be
# marked slow, or its launch fails (tests/support/fast_tier.py).
_RUNNING: dict[str, pytest.Item | None] = {"item": None}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    _RUNNING["item"] = item
    try:
        return (yield)
    finally:
        _RUNNING["item"] = None


# A test that asks for one of these fixtures starts a real service: it is slow by definition.
SERVICE_FIXTURES = frozenset({"mosquitto_broker", "mosquitto_broker_factory", "mqtt_collector", "rtsp_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _running_test_is_slow() -> bool:
    item = _RUNNING["item"]
    return item is None or item.get_closest_marker("slow") is not None


@pytest.fixture(scope="session", autouse=True)
def _fast_tier_guard() -> Iterator[None]:
    from tests.support.fast_tier import guard_daemon_run, guard_popen

    undo = [guard_popen(_running_test_is_slow), guard_daemon_run(_running_test_is_slow)]
    yield
    for step in undo:
        step()


# fixtures that start real services, shared by all test modules
from tests.support.media import h264_clip  # noqa: E402,F401
from tests.support.mqtt_broker import mosquitto_broker, mosquitto_broker_factory, mqtt_collector  # noqa: E402,F401
from tests.support.rtsp import rtsp_server  # noqa: E402,F401

# ---------------------------------------------------------------- the alert contract
# Every alert payload built in this process (AlertUpdate.to_dict: analyser, incident book, sinks)
# is checked against docs/alert.schema.json. A violation fails the test that produced it, even when
# the payload was built on a sink's thread; a test that builds a wrong payload on purpose is marked
# `alert_schema_exempt`. Payloads from daemons in other processes: tests.support.alert_schema.validate_alert.


class AlertSchemaStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = 0
        self.violations: list[str] = []
        self.enabled = False
        self.exempt = False


ALERT_SCHEMA_STATS = AlertSchemaStats()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alert_schema_exempt: do not check in-process alert payloads against docs/alert.schema.json"
    )


@pytest.fixture(scope="session", autouse=True)
def _alert_schema_wrapper() -> Iterator[AlertSchemaStats]:
    """Wrap AlertUpdate.to_dict once per session so that every payload is validated and counted."""
    from surveil.types import AlertUpdate
    from tests.support.alert_schema import schema_errors

    try:
        import jsonschema  # noqa: F401
    except ImportError:
        warnings.warn(
            "jsonschema is not installed: alert payloads are not validated (and tests/test_alert_schema.py cannot be collected)",
            stacklevel=1,
        )
        yield ALERT_SCHEMA_STATS
        return
    original = AlertUpdate.to_dict
    stats = ALERT_SCHEMA_STATS

    @functools.wraps(original)
    def to_dict(self: AlertUpdate, published_at: float) -> dict:
        payload = original(self, published_at)
        errors = [] if stats.exempt else schema_errors(payload)
        with stats.lock:
            stats.checked += 1
            if errors:
                shown = {**payload, "snapshot_jpeg_b64": "..." if payload.get("snapshot_jpeg_b64") else None}
                stats.violations.append("; ".join(errors) + f" in {shown}")
        return payload

    AlertUpdate.to_dict = to_dict  # type: ignore[method-assign]
    stats.enabled = True
    try:
        yield stats
    finally:
        AlertUpdate.to_dict = original  # type: ignore[method-assign]
        stats.enabled = False


@pytest.fixture(autouse=True)
def _alert_schema_guard(request: pytest.FixtureRequest, _alert_schema_wrapper: AlertSchemaStats) -> Iterator[None]:
    """Fail the test if any alert payload built while it ran broke the schema."""
    stats = _alert_schema_wrapper
    stats.exempt = request.node.get_closest_marker("alert_schema_exempt") is not None
    with stats.lock:
        before = len(stats.violations)
    yield
    stats.exempt = False
    with stats.lock:
        new = stats.violations[before:]
    if new:
        pytest.fail(
            f"{len(new)} alert payload(s) break docs/alert.schema.json:\n" + "\n".join(v[:2000] for v in new[:5]),
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    stats = ALERT_SCHEMA_STATS
    if stats.checked:
        terminalreporter.write_line(
            f"alert schema: {stats.checked} in-process alert payload(s) checked against docs/alert.schema.json, "
            f"{len(stats.violations)} violation(s)"
        )
