"""Issue 7, class 8: startup failures are messages with exit 2 (systemd does not restart exit 2).

Mechanism: surveil/service/startup.py ``preflight`` runs before the model loads and checks that
`state_dir`, the spool and the alert log can be written and that `metrics.listen` can be
bound; the sinks turn a spool or alert log that still cannot be opened into a PipelineError.
The CLI prints either and exits 2. Each case runs the real `surveil run`."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support.surveil_cli import SHIPPED_MODEL, run_surveil

NOBODY = 65534


def _config(folder: Path, **overrides) -> Path:
    body = {
        "cameras": [{"name": "a", "url": str(folder / "missing.mp4")}],
        "detector": {"weights": str(SHIPPED_MODEL), "device": "cpu", "threads": 1},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": 1},
        "metrics": {"enabled": False},
        "web": {"enabled": False},
        "state_dir": str(folder / "state"),
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name:
            body[section] = {**body.get(section, {}), name: value}
        else:
            body[key] = value
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture
def folder():
    """A world-readable folder (the read-only case runs the daemon as `nobody`)."""
    path = Path(tempfile.mkdtemp(prefix="surveil-startup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _port_in_use(folder: Path, holder: list) -> tuple[dict, list[str]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    holder.append(sock)
    port = sock.getsockname()[1]
    return {"metrics.enabled": True, "metrics.listen": f"127.0.0.1:{port}"}, [
        "metrics.listen",
        f"127.0.0.1:{port}",
        "in use",
    ]


def _state_dir_under_a_file(folder: Path, holder: list) -> tuple[dict, list[str]]:
    (folder / "plain-file").write_text("x")
    return {"state_dir": str(folder / "plain-file" / "state")}, [
        "state_dir",
        str(folder / "plain-file" / "state"),
        "Not a directory",
    ]


def _state_dir_read_only(folder: Path, holder: list) -> tuple[dict, list[str]]:
    state = folder / "readonly"
    state.mkdir()
    state.chmod(0o555)
    return {"state_dir": str(state)}, ["state_dir", f"cannot write to the folder {state}", "Permission denied"]


def _state_dir_on_proc(folder: Path, holder: list) -> tuple[dict, list[str]]:
    return {"state_dir": "/proc/surveil-state"}, ["state_dir", "/proc/surveil-state"]


def _spool_is_a_folder(folder: Path, holder: list) -> tuple[dict, list[str]]:
    (folder / "state" / "spool.sqlite3").mkdir(parents=True)
    return {"mqtt.spool_path": "spool.sqlite3"}, [
        "mqtt.spool_path",
        str(folder / "state" / "spool.sqlite3"),
        "is a folder",
    ]


def _spool_not_a_database(folder: Path, holder: list) -> tuple[dict, list[str]]:
    (folder / "state").mkdir()
    (folder / "state" / "spool.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    return {"mqtt.spool_path": "spool.sqlite3"}, [
        "mqtt.spool_path",
        str(folder / "state" / "spool.sqlite3"),
        "not a database",
    ]


def _jsonl_in_unwritable_place(folder: Path, holder: list) -> tuple[dict, list[str]]:
    return {"alerts.jsonl_path": "/proc/alerts.jsonl"}, ["alerts.jsonl_path", "/proc"]


def _listen_on_foreign_address(folder: Path, holder: list) -> tuple[dict, list[str]]:
    return {"metrics.enabled": True, "metrics.listen": "192.0.2.1:9108"}, [
        "metrics.listen",
        "192.0.2.1:9108",
        "assign requested address",
    ]


CASES = [
    ("metrics-port-in-use", _port_in_use),
    ("state-dir-under-a-file", _state_dir_under_a_file),
    ("state-dir-read-only", _state_dir_read_only),
    ("state-dir-on-proc", _state_dir_on_proc),
    ("spool-path-is-a-folder", _spool_is_a_folder),
    ("spool-not-a-database", _spool_not_a_database),
    ("alert-log-unwritable", _jsonl_in_unwritable_place),
    ("listen-on-foreign-address", _listen_on_foreign_address),
]


@pytest.mark.parametrize(("case_id", "make"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.slow
def test_startup_failure_is_a_message_and_exit_2(folder, case_id, make):
    holder: list = []
    try:
        overrides, fragments = make(folder, holder)
        config = _config(folder, **overrides)
        user = None
        if case_id == "state-dir-read-only" and os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("root ignores file modes and setpriv is missing")
            user = NOBODY  # root may write anywhere: run as nobody, as a systemd service user would
        result = run_surveil(config, timeout=180, user=user)
    finally:
        for sock in holder:
            sock.close()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    message = result.stderr
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message[-2000:]!r}"
