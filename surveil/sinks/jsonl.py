"""Alert sink that appends one JSON object per line to a local file."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TextIO

from surveil.types import AlertUpdate

log = logging.getLogger(__name__)


class JsonlAlertSink:
    """Append each alert as one line of ``AlertUpdate.to_json`` to ``path``; thread-safe.

    Each line is flushed to the OS as soon as it is written, so another process tailing
    the file sees it at once and a crash of this process loses no written line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        log.info("writing alerts to %s", self.path)

    def publish_alert(self, alert: AlertUpdate) -> None:
        """Write one alert as one line (``published_ts`` = now)."""
        line = alert.to_json(published_at=time.time()) + "\n"
        with self._lock:
            if self._file is None:
                raise RuntimeError(f"alert log {self.path} is closed")
            self._file.write(line)
            self._file.flush()

    write = publish_alert

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> JsonlAlertSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
