"""The one redaction path: no password, token or key from the config reaches any output.

Two mechanisms, used together wherever text leaves the process (log records, MQTT payloads,
camera status reasons, exception messages, CLI errors):

- **URL rules**, which need no config: the password in a URL's userinfo
  (``rtsp://user:pass@host`` → ``rtsp://user:***@host``) and the value of every query
  parameter whose name looks like a secret (``pwd``, ``password``, ``token``, ``key``,
  ``signature``, ...; see ``SECRET_NAME``) become ``***``.
- **Known secrets**: every secret value of a loaded config (camera URL passwords and secret
  query values, the MQTT password; see ``config_secrets``) is remembered by
  :func:`remember` and replaced by ``***`` wherever it appears, in any form (also
  percent-encoded), whatever surrounds it: a URL in an FFmpeg or OpenCV message, a
  ``repr()``, a traceback. Secrets shorter than ``MIN_SECRET_LENGTH`` characters are
  only removed by the URL rules (replacing every "ab" in every log line would destroy the
  logs, not protect the password).

``RedactingFilter`` applies both to every log record; ``configure_logging`` puts it on the
root handler, so no logger can bypass it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET_LENGTH = 4

# Query / form parameter names whose values are secrets (matched as whole name or suffix/prefix part).
SECRET_NAME = re.compile(
    r"(?i)^(?:.*[_.-])?(pass|passwd|password|pwd|pw|passphrase|secret|token|access_?token|api_?key|apikey|key|auth|"
    r"authorization|signature|sig|credential|credentials|session|sessionid|sid|jwt|bearer)(?:[_.-].*)?$"
)
# scheme://userinfo@ : the password is whatever follows the first ':' in the userinfo.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:?#'\"]*):([^\s/@?#'\"]*)@")
# name=value pairs in a query string or anywhere in a line (Dahua/Hikvision put them in paths too).
_PAIR = re.compile(r"(?i)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,64})=([^&;\s'\"#<>,)]*)")

_lock = threading.Lock()
_known: tuple[str, ...] = ()  # longest first


def redact_url(url: str | int) -> str:
    """A URL (or any text) with userinfo passwords, secret-named parameters and known secrets masked."""
    return redact(str(url))


def redact(text: str) -> str:
    """``text`` with every secret masked (URL rules and known secrets)."""
    if not text:
        return text
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    return _PAIR.sub(_mask_pair, text)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def redact_json(text: str) -> str:
    """``redact`` inside the string literals of a JSON document only: a secret such as ``null`` or
    ``1883`` can never turn a value or a number into ``***`` and break the document."""
    if not text:
        return text
    return _JSON_STRING.sub(lambda m: redact(m.group(0)), text)


def _mask_pair(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if value and value != MASK and SECRET_NAME.match(name):
        return f"{name}={MASK}"
    return match.group(0)


def remember(secrets: Iterable[str | None]) -> None:
    """Add secret values to mask from now on (never forgotten: a reload cannot un-leak one)."""
    global _known
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, unquote(secret), quote(secret, safe=""), quote(secret, safe="!$&'()*+,;=:")):
            if len(form) >= MIN_SECRET_LENGTH:
                forms.add(form)
    with _lock:
        _known = tuple(sorted(set(_known) | forms, key=len, reverse=True))


def forget_all() -> None:
    """For tests: drop every remembered secret."""
    global _known
    with _lock:
        _known = ()


def url_secrets(url: str | int) -> list[str]:
    """The secret parts of one URL: the userinfo password and the values of secret-named parameters."""
    text = str(url)
    found = [m.group(3) for m in _USERINFO.finditer(text) if m.group(3)]
    found += [m.group(2) for m in _PAIR.finditer(text) if m.group(2) and SECRET_NAME.match(m.group(1))]
    return found


def secret_value(value: Any) -> str | None:
    """The plain text of a pydantic SecretStr (or a str), else None."""
    getter = getattr(value, "get_secret_value", None)
    if getter is not None:
        return str(getter())
    return value if isinstance(value, str) else None


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, exception and stack text (on a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we can
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def quiet_native_logs(environ: Any = None) -> None:
    """OpenCV and FFmpeg print to stderr themselves, URLs with passwords included, past every log
    filter: keep them quiet unless the operator set these variables (call before cv2 is used)."""
    env = os.environ if environ is None else environ
    env.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    env.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
