"""The one redaction path: no password, token or key from the config reaches any output.

Two mechanisms, used together wherever text leaves the process (log records, MQTT payloads,
camera status reasons, exception messages, CLI errors):

- **URL rules**, which need no config. A URL is cut up the way FFmpeg's ``av_url_split`` cuts it
  (OpenCV hands stream URLs to FFmpeg), not the way RFC 3986 or ``urllib`` would:

  - the scheme is case-insensitive, and up to two ``/`` may follow its ``:`` (``rtsp:host``,
    ``RTSP:/host`` and ``rtsp://host`` are one URL to FFmpeg);
  - the authority runs to the first ``/``, ``?`` or ``#`` (a space does not end it: a password
    may hold one); the userinfo ends at the **last** ``@`` in the authority and the password is
    everything after its first ``:`` (``rtsp://admin:p@ss@host`` → ``rtsp://admin:***@host``);
  - the value of every parameter whose name looks like a secret (``passcode``, ``pwd``,
    ``X-Amz-Signature``, ``api_key``, ...; see :func:`is_secret_name`) becomes ``***``.

  It **fails closed**: when what follows a scheme cannot be split safely — a port that is not a
  number (``rtsp://admin:secret``), a broken IPv6 bracket, an ``@`` after the authority that
  another parser would read as the userinfo end, a ``%3A`` in a user name that decodes to a
  password separator — everything after the scheme is masked whole: ``rtsp://***``. A URL
  inside a URL (``?src=rtsp://u:p@cam/``) is masked by the same rules; one that is
  percent-encoded masks the outer URL's path whole.
- **Known secrets**: every secret value of a loaded config (camera URL passwords and secret
  query values as :func:`url_secrets` finds them, the MQTT password; see ``config_secrets``) is
  remembered by :func:`remember` and replaced by ``***`` wherever it appears, in any form (also
  percent-encoded or decoded), whatever surrounds it: a URL in an FFmpeg or OpenCV message, a
  ``repr()``, a traceback. Secrets shorter than ``MIN_SECRET_LENGTH`` characters are only removed
  by the URL rules (replacing every "ab" in every log line would destroy the logs, not protect
  the password).

:func:`redact_url` knows its whole argument is one URL (a config value), so a URL's end is
its end; :func:`redact` reads free text (a log line, an exception), where a URL ends at its
authority's end or at the first white space of its path. ``RedactingFilter`` applies both
mechanisms to every log record; ``configure_logging`` puts it on the root handler, so no logger
can bypass it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4
# How far past a scheme free text is read as one URL (a config URL has at most 4096 characters):
# a line with thousands of schemes costs linear time, not quadratic.
MAX_URL_SCAN = 4096

# Parameter names whose values are secrets. Anywhere in the (lower-cased) name:
_SECRET_WORDS = re.compile(
    r"pass|pwd|secret|token|auth|cred|signature|session|jwt|bearer|cookie|private|ticket|api_?key|otp"
)
# As a whole part of the name (split at '_', '.', '-') or as its end (``accesskey``, ``urlsig``):
_SECRET_PARTS = frozenset({"pw", "key", "sig", "sid", "code", "pin", "hash", "hmac", "sign", "hdnts"})
_SECRET_ENDS = ("key", "sig", "sid", "pw")

# Where a URL starts in free text: any scheme followed by '://', or a stream scheme FFmpeg knows
# followed by ':' and at most one '/' (av_url_split skips up to two; 'rtsp:host/x' is a URL).
_STREAM_SCHEMES = r"rtsps?|rtspu|rtmp[a-z]{0,2}|https?|mmsh?|mmst|srt|rist|rtp|udp|tcp|tls|ftp|sftp|smb|icecast|hls"
_SCHEME = re.compile(rf"(?i)(?<![a-z0-9+.\-])(?:[a-z][a-z0-9+.\-]{{0,31}}://|(?:{_STREAM_SCHEMES}):/?(?=[^\s/]))")
# A URL with '//' ends where the next one starts (FFmpeg's authority cannot hold a '/').
_NEXT_URL = re.compile(r"(?i)(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,31}://")
_WHOLE_SCHEME = re.compile(r"(?i)\s*(?:[a-z][a-z0-9+.\-]{0,31}://|[a-z][a-z0-9+.\-]{1,31}:/{0,2}(?=[^\s]))")
# host[:port] after the userinfo: a bracketed IPv6 literal or a plain host, then digits only
# after ':'; in free text the punctuation a sentence puts after a URL may follow.
_HOSTPORT = re.compile(r"(?:\[[^\]\s/?#@\[]*\]|[^\s\[\]/?#@:]*)(?::\d*)?[)\]'\",.;:>]*")
# "name=" where a parameter starts: in a query, a fragment, a path (Dahua and Hikvision put them
# there) or anywhere in a line. Names that are no secret consume nothing, so 'a=1;pwd=x' is seen.
_PARAM_NAME = re.compile(r"(?<![A-Za-z0-9_.%+\-\[\]])([A-Za-z0-9_.%+\-\[\]]{1,96})=")
# Where a secret value ends: in a whole URL at the next '&' or '#' (';', ',', ')' and spaces may be
# part of it); in free text also at white space and at the quotes and brackets that close a URL.
_VALUE_END_WHOLE = re.compile(r"[&#]")
_VALUE_END_FREE = re.compile(r"[&#\s\"<>]")

_SPACE = re.compile(r"\s")

_lock = threading.Lock()
_known: tuple[str, ...] = ()  # longest first


def is_secret_name(name: str) -> bool:
    """Whether a parameter of this name carries a secret (``passcode``, ``X-Amz-Signature``, ``accessKey``)."""
    lowered = unquote_plus(name).lower()  # the server decodes 'pass%77ord' to 'password'
    if _SECRET_WORDS.search(lowered) or lowered.endswith(_SECRET_ENDS):
        return True
    return any(part in _SECRET_PARTS for part in re.split(r"[_.\-\[\]]+", lowered))


class _Span(NamedTuple):
    """What follows one scheme: text[start:end] is shown as ``shown``; ``secrets`` were in it."""

    start: int
    end: int
    shown: str
    secrets: list[str]


def redact_url(url: str | int) -> str:
    """A URL (or any text) with userinfo passwords, secret-named parameters and known secrets masked.

    The whole argument is taken as one URL when it starts with a scheme (a config value): its
    end is the URL's end, so a space in a password or a parameter value is masked with it."""
    text = _replace_known(str(url))
    if not _WHOLE_SCHEME.match(text):
        return _redact_free(text)
    return _apply(text, _whole_url_spans(text))


def redact(text: str) -> str:
    """``text`` with every secret masked (URL rules and known secrets)."""
    if not text:
        return text
    return _redact_free(_replace_known(text))


def url_secrets(url: str | int) -> list[str]:
    """The secret parts of one URL (or of the URLs in a text, such as a file path the config
    resolved around an ``RTSP:/...`` value): the userinfo password, the values of secret-named
    parameters, and the whole rest of a URL that cannot be split safely."""
    text = str(url)
    spans = list(_whole_url_spans(text)) if _WHOLE_SCHEME.match(text) else list(_free_spans(text))
    found = [s for span in spans for s in span.secrets]
    if not _WHOLE_SCHEME.match(text):
        found += [s for span in _pair_spans(text, _VALUE_END_FREE) for s in span.secrets]
    return [s for s in dict.fromkeys(found) if s and s != MASK]


def _replace_known(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_free(text: str) -> str:
    text = _apply(text, _free_spans(text))
    return _apply(text, _pair_spans(text, _VALUE_END_FREE))


def _apply(text: str, spans: Iterable[_Span]) -> str:
    out, done = [], 0
    for span in spans:
        out += [text[done : span.start], span.shown]
        done = span.end
    out.append(text[done:])
    return "".join(out)


def _whole_url_spans(text: str) -> Iterator[_Span]:
    """The one span of a whole URL: authority masked, then its path, query and fragment."""
    match = _WHOLE_SCHEME.match(text)
    assert match is not None
    span = _authority_span(text, match.end(), len(text), whole=True)
    after = text[match.end() :]
    inner = [*_pair_spans(after, _VALUE_END_WHOLE), *_free_spans(after), *_free_spans(unquote(after), decode=False)]
    secrets = span.secrets + [s for found in inner for s in found.secrets]
    if span.shown == MASK:
        yield span._replace(secrets=secrets)
        return
    rest = text[span.end :]
    shown = _apply(rest, _pair_spans(rest, _VALUE_END_WHOLE))
    shown = _apply(shown, _free_spans(shown))  # a URL inside this one: '?src=rtsp://u:p@cam/'
    decoded = unquote(shown)
    if _apply(decoded, _free_spans(decoded, decode=False)) != decoded:  # ... or percent-encoded: masked whole
        shown = shown[:1] + MASK
    yield _Span(span.start, len(text), span.shown + shown, secrets)


def _free_spans(text: str, *, decode: bool = True) -> Iterator[_Span]:
    """One span per URL authority found in free text, left to right, never overlapping.
    ``decode``: also look for a percent-encoded URL in each URL's path (one level deep)."""
    position = 0
    while (match := _SCHEME.search(text, position)) is not None:
        limit = min(len(text), match.end() + MAX_URL_SCAN)
        following = _NEXT_URL.search(text, match.end(), limit)
        limit = following.start() if following else limit
        line_end = _first_of(text, "\r\n", match.end(), limit)
        span = _authority_span(text, match.end(), line_end, whole=False, decode=decode)
        yield span
        position = max(span.end, match.end())


def _authority_span(text: str, start: int, limit: int, *, whole: bool, decode: bool = False) -> _Span:
    """Split ``text[start:limit]`` after a scheme as av_url_split does; mask the password, or
    everything up to the end of the URL when it cannot be split safely."""
    auth_end = _first_of(text, "/?#", start, limit)
    # the end of the URL as far as it can be known: its end, or the first white space of its path
    url_end = limit if whole else _first_space(text, auth_end, limit)
    authority = text[start:auth_end]
    at = authority.rfind("@")
    userinfo, host = (authority[:at], authority[at + 1 :]) if at >= 0 else (None, authority)
    if not whole:
        host = re.split(r"\s", host, maxsplit=1)[0]
    host_end = start + (at + 1 if at >= 0 else 0) + len(host)
    parsed = _mask_userinfo(userinfo)[1] if userinfo is not None else []
    if not whole:  # a masked range that cuts into a later URL ('rtsp:u:p w@h') takes in its authority too
        position = start
        while (inner := _SCHEME.search(text, position, url_end)) is not None:
            url_end = max(url_end, _first_space(text, _first_of(text, "/?#", inner.end(), limit), limit))
            position = inner.end()
    whole_mask = _Span(start, url_end, MASK, [text[start:url_end], *_greedy_password(text, start, url_end), *parsed])
    if _HOSTPORT.fullmatch(host) is None:
        return whole_mask
    tail = text[auth_end:url_end]
    if "@" in tail and ":" in text[start : auth_end + tail.rfind("@")]:
        return whole_mask  # 'rtsp://u:pa/ss@h/': FFmpeg ends the authority at '/', other parsers at '@'
    if decode and "%" in tail:
        decoded = unquote(tail)
        if _apply(decoded, _free_spans(decoded, decode=False)) != decoded:
            return whole_mask  # '?src=rtsp%3A%2F%2Fu%3Ap%40cam': a URL with a password, encoded
    if userinfo is None:
        return _Span(start, host_end, text[start:host_end], [])
    shown, secrets = _mask_userinfo(userinfo)
    return _Span(start, host_end, f"{shown}@{host}", secrets)


def _mask_userinfo(userinfo: str) -> tuple[str, list[str]]:
    user, colon, password = userinfo.partition(":")
    if "%3a" in user.lower() or (not colon and "@" in user):
        return MASK, [userinfo]  # decodes to a ':' (a password after it), or an ambiguous '@'
    if not colon or not password:
        return userinfo, []
    return f"{user}:{MASK}", [password]


def _greedy_password(text: str, start: int, end: int) -> list[str]:
    """The password as a parser that ends the userinfo at the last '@' of the whole URL sees it."""
    at = text.rfind("@", start, end)
    userinfo = text[start:at] if at >= 0 else ""
    return [userinfo.partition(":")[2]] if ":" in userinfo else []


def _first_of(text: str, chars: str, start: int, limit: int) -> int:
    found = [i for i in (text.find(c, start, limit) for c in chars) if i >= 0]
    return min(found, default=limit)


def _first_space(text: str, start: int, limit: int) -> int:
    match = _SPACE.search(text, start, limit)
    return match.start() if match else limit


def _pair_spans(text: str, value_end: re.Pattern[str]) -> Iterator[_Span]:
    """One span per value of a secret-named parameter in ``text``."""
    position = 0
    while (match := _PARAM_NAME.search(text, position)) is not None:
        position = match.end()
        if not is_secret_name(match.group(1)):
            continue
        stop = value_end.search(text, match.end())
        end = stop.start() if stop else len(text)
        value = text[match.end() : end]
        if value and value != MASK:
            yield _Span(match.end(), end, MASK, [value])
        position = max(position, end)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def redact_json(text: str) -> str:
    """``redact`` inside the string literals of a JSON document only: a secret such as ``null`` or
    ``1883`` can never turn a value or a number into ``***`` and break the document. Each literal
    is decoded first (a secret with a quote or a backslash is escaped in JSON) and encoded again."""
    if not text:
        return text
    return _JSON_STRING.sub(_redact_json_string, text)


def _redact_json_string(match: re.Match[str]) -> str:
    literal = match.group(0)
    try:
        value = json.loads(literal)
    except ValueError:  # not a valid literal: masked whole if it holds a secret
        return literal if redact(literal) == literal else f'"{MASK}"'
    shown = redact(value)
    return literal if shown == value else json.dumps(shown, ensure_ascii=False)


def remember(secrets: Iterable[str | None]) -> None:
    """Add secret values to mask from now on (never forgotten: a reload cannot un-leak one)."""
    global _known
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        variants = (
            secret,
            unquote(secret),
            unquote_plus(secret),
            quote(secret, safe=""),
            quote(secret, safe="!$&'()*+,;=:"),
            quote_plus(secret, safe=""),
            json.dumps(secret)[1:-1],
        )
        forms.update(form for form in variants if len(form) >= MIN_SECRET_LENGTH and form != MASK)
    with _lock:
        _known = tuple(sorted(set(_known) | forms, key=len, reverse=True))


def forget_all() -> None:
    """For tests: drop every remembered secret."""
    global _known
    with _lock:
        _known = ()


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
