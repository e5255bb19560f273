"""Logging in text (for people) or JSON lines (for log shippers)."""

from __future__ import annotations

import json
import logging
import sys
import time

from surveil.redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        if record.exc_info or record.exc_text:  # exc_text: already formatted (and redacted) by RedactingFilter
            entry["exc"] = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # on the handler: it sees the records of every logger
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A library's or numpy's warning goes through the same handler (format, redaction) as a WARNING of
    # the `py.warnings` logger, instead of a raw line on stderr that breaks a JSON-lines log.
    logging.captureWarnings(True)
