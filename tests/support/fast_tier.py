"""The fast tier's promise, enforced: a test not marked ``slow`` starts no broker, daemon
(in a process of its own or in-process), browser, RTSP server or Prometheus.

``pytest -m "not slow"`` is the inner loop; it stays fast only while every test that launches
one of those programs carries the marker. ``guard_popen`` wraps ``subprocess.Popen`` for the
session and fails such a launch from an unmarked test, naming the program (playwright drives
Chromium through its own driver process, which is caught the same way).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

SERVICE_PROGRAMS = frozenset({"mosquitto", "prometheus", "chromium", "chromium-browser", "chrome", "headless_shell"})
SURVEIL_LONG_RUNNING = frozenset({"run", "bench"})  # `surveil check-config` and friends exit at once


def service_launched(args: Any) -> str | None:
    """The long-running service ``args`` would start (a readable name), or None."""
    argv = [os.fspath(a) for a in args] if isinstance(args, Sequence) and not isinstance(args, str) else [str(args)]
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in SERVICE_PROGRAMS:
        return program
    if any("playwright" in part for part in argv[:3]):
        return "playwright (Chromium)"
    if any(os.path.basename(part) == "rtsp_server.py" for part in argv):
        return "the RTSP test server"
    if program == "surveil" and len(argv) > 1 and argv[1] in SURVEIL_LONG_RUNNING:
        return f"surveil {argv[1]}"
    if "-m" in argv:
        module_at = argv.index("-m") + 1
        rest = argv[module_at:]
        if rest[:1] == ["surveil"] and len(rest) > 1 and rest[1] in SURVEIL_LONG_RUNNING:
            return f"surveil {rest[1]}"
    return None


class FastTierViolation(AssertionError):
    pass


def guard_popen(is_slow: Callable[[], bool]) -> Callable[[], None]:
    """Wrap Popen so that an unmarked test cannot start a service; returns the undo."""
    original = subprocess.Popen.__init__

    def checked_init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        service = service_launched(args)
        if service is not None and not is_slow():
            raise FastTierViolation(
                f"this test starts {service}: mark it @pytest.mark.slow (the fast tier starts no broker, "
                "daemon, browser or RTSP server)"
            )
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = checked_init  # type: ignore[method-assign]

    def undo() -> None:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]

    return undo


def guard_daemon_run(is_slow: Callable[[], bool]) -> Callable[[], None]:
    """Wrap the in-process daemon's run loop the same way; returns the undo."""
    from surveil.service.daemon import Daemon

    original = Daemon.run

    def checked_run(self: Daemon, *args: Any, **kwargs: Any) -> Any:
        if not is_slow():
            raise FastTierViolation("this test runs the daemon in-process: mark it @pytest.mark.slow")
        return original(self, *args, **kwargs)

    Daemon.run = checked_run  # type: ignore[method-assign]

    def undo() -> None:
        Daemon.run = original  # type: ignore[method-assign]

    return undo
