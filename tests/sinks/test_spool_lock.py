"""Issue 18.5: one process per spool file (flock on <spool>.lock), re-entrant within a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from surveil.service.startup import StartupError, claim_spool
from surveil.sinks.spool import AlertSpool, SpoolLock, SpoolLockedError

HOLDER = textwrap.dedent(
    """
    import sys
    from surveil.sinks.spool import AlertSpool
    spool = AlertSpool(sys.argv[1])
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    """
)


@pytest.fixture
def other_process(tmp_path):
    """Start a process holding the spool; yield (spool path, process)."""
    path = tmp_path / "state" / "spool.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield path, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("opener", "error"),
    [
        pytest.param(lambda path: AlertSpool(path), SpoolLockedError, id="AlertSpool"),
        pytest.param(lambda path: SpoolLock.acquire(path), SpoolLockedError, id="SpoolLock"),
        pytest.param(lambda path: claim_spool(path, "mqtt.spool_path"), StartupError, id="preflight"),
    ],
)
def test_a_second_process_cannot_open_a_held_spool(other_process, opener, error):
    path, proc = other_process
    with pytest.raises(error) as caught:
        opener(path)
    message = str(caught.value)
    assert str(path) in message and f"pid {proc.pid}" in message and "its own" in message


def test_the_lock_goes_with_the_process(other_process):
    path, proc = other_process
    proc.kill()
    proc.wait(timeout=30)
    with AlertSpool(path) as spool:  # a SIGKILLed holder leaves no lock behind
        spool.append("t", b"x", 1)
        assert len(spool) == 1


def test_re_entrant_within_one_process_and_released_on_close(tmp_path: Path):
    path = tmp_path / "spool.sqlite3"
    first = AlertSpool(path)
    second = AlertSpool(path)  # the daemon's start-up check and its spool, say
    second.close()
    first.close()
    assert SpoolLock.lock_path(path) not in SpoolLock._held
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from surveil.sinks.spool import AlertSpool; AlertSpool(sys.argv[1]).close()",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
