"""Issue 18 item 1: URLs are redacted the way FFmpeg reads them, and fail closed.

FFmpeg (``av_url_split``) takes the scheme case-insensitively with up to two slashes after its
``:``, ends the authority at the first ``/``, ``?`` or ``#``, ends the userinfo at the LAST ``@``
of the authority and the user name at its first ``:``; OpenCV hands it stream URLs as they are.
Hypothesis builds URLs that way — random scheme case, ``@``, ``:``, spaces and percent-escapes in
passwords, IPv6 hosts, ports, secret-named parameters in query and fragment — with every secret
made of tokens (upper-case letters with a digit) that nothing else in the URL can contain. No
token may survive ``redact_url`` (a config value), ``redact`` (the URL inside a log line, an
FFmpeg message, a repr), ``redact_json``, a log record through ``RedactingFilter``, nor the
remembered secrets of ``url_secrets`` when the decoded secret turns up on its own. Then a table
of text after a scheme that cannot be split safely: masked whole.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote, unquote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveil import redact

TOKEN = st.from_regex(r"\A[A-Z]{2}[0-9][A-Z0-9]{2,5}\Z")  # no scheme, host or user name contains one
LOWER = st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z")
# joins tokens inside a password: anything FFmpeg keeps in the userinfo (no '/', '?', '#')
USERINFO_GLUE = st.sampled_from(
    ["@", ":", " ", "@@", "%40", "%3A", "%20", "%25", "%2F", "!", "$", "&", "'", "(", "*", "+", ",", ";", "=", "~", "-"]
)
# joins tokens inside a query value (a raw '&', '#' or space would end it on the wire too)
VALUE_GLUE = st.sampled_from(
    ["%20", "+", ":", "@", "/", "=", "%26", "%23", "~", ".", "-", "!", "*", "(", ")", ";", ","]
)
SECRET_NAMES = st.sampled_from(
    ["passcode", "password", "pass", "pwd", "passwd", "token", "key", "secret", "auth", "signature", "sig", "apikey",
     "api_key", "access_token", "X-Amz-Signature", "X-Amz-Credential", "AccessKey", "sessionid", "PassWord", "authkey"]
)  # fmt: skip
SCHEMES = st.sampled_from(["rtsp", "rtsps", "http", "https", "rtmp"])
SLASHES = st.sampled_from(["//", "//", "//", "/", ""])  # av_url_split skips up to two
HOSTS = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}\Z"),
    st.from_regex(r"\A10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z"),
    st.sampled_from(["[::1]", "[fe80::1%25eth0]", "[2001:db8::7]"]),
)


def random_case(draw: st.DrawFn, text: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


@st.composite
def secret(draw: st.DrawFn, glue: st.SearchStrategy[str]) -> tuple[str, list[str]]:
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=3))
    text = tokens[0]
    for token in tokens[1:]:
        text += draw(glue) + token
    if draw(st.booleans()):
        text = draw(glue) + text
    if draw(st.booleans()):
        text += draw(glue)
    return text, tokens


@st.composite
def ffmpeg_urls(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(url, the tokens of its secrets, the secrets as FFmpeg sends them: decoded)."""
    tokens: list[str] = []
    decoded: list[str] = []
    scheme = random_case(draw, draw(SCHEMES))
    url = f"{scheme}:{draw(SLASHES)}"
    if draw(st.integers(0, 4)):
        user = draw(st.sampled_from(["admin", "ops@site", "viewer.1", "a-b", ""]))
        password, found = draw(secret(USERINFO_GLUE))
        url += f"{user}:{password}@"
        tokens += found
        decoded.append(unquote(password))
    url += draw(HOSTS)
    if draw(st.booleans()):
        url += f":{draw(st.integers(1, 65535))}"
    path = draw(st.lists(LOWER, max_size=3))
    params = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            value, found = draw(secret(VALUE_GLUE))
            params.append(f"{draw(SECRET_NAMES)}={value}")
            tokens += found
            decoded.append(unquote_plus(value))
        else:
            params.append(f"{draw(LOWER)}={draw(LOWER)}")
    slash: bool = draw(st.booleans())
    if path or params or slash:
        url += "/" + "/".join(path)
    if params:
        url += "?" + "&".join(params)
    if draw(st.booleans()):
        if draw(st.booleans()):
            value, found = draw(secret(VALUE_GLUE))
            url += f"#{draw(SECRET_NAMES)}={value}"
            tokens += found
            decoded.append(unquote_plus(value))
        else:
            url += f"#{draw(LOWER)}"
    return url, tokens, decoded


FREE_TEXT = [
    "camera cam: cannot open {}: connection refused by 127.0.0.1:554 (nothing listens there)",
    "[rtsp @ 0x55d0c8a0] method DESCRIBE failed: 401 Unauthorized {}",
    "VideoCapture({!r}) failed",
    "{}",
    "open {}\nnext line: ok",
]


def leaked(text: str, tokens: list[str]) -> list[str]:
    return [token for token in tokens if token in text]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ffmpeg_urls(), st.sampled_from(FREE_TEXT))
def test_no_generated_secret_survives_any_path(generated, template):
    url, tokens, decoded = generated
    redact.forget_all()
    shown = redact.redact_url(url)
    assert not leaked(shown, tokens), (url, shown)
    line = template.format(url)
    assert not leaked(redact.redact(line), tokens), (line, redact.redact(line))
    document = json.dumps({"reason": line, "url": url})
    masked = redact.redact_json(document)
    assert not leaked(masked, tokens), (document, masked)
    json.loads(masked)
    record = logging.LogRecord("surveil", logging.ERROR, __file__, 1, "open %s failed: %r", (url, line), None)
    redact.RedactingFilter().filter(record)
    assert not leaked(record.getMessage(), tokens), record.getMessage()
    # the remembered secrets of a loaded config mask the secret on its own, decoded as FFmpeg sends it
    redact.remember(redact.url_secrets(url))
    for secret in decoded:
        text = f"auth failed for {secret!r} / {secret}"
        assert not leaked(redact.redact(text), [t for t in tokens if t in secret]), (url, redact.redact(text))
    redact.forget_all()


@settings(max_examples=200, deadline=None)
@given(ffmpeg_urls())
def test_redaction_is_idempotent_and_keeps_the_scheme(generated):
    url, _, _ = generated
    redact.forget_all()
    once = redact.redact_url(url)
    assert redact.redact_url(once) == once
    assert once.lower().startswith(url.split(":", 1)[0].lower() + ":")


# Text after a scheme that cannot be split safely: masked whole. (url, what must not survive)
FAIL_CLOSED = [
    ("rtsp://admin:QX7SECRET", "QX7SECRET"),  # no '@': a "port" that is not a number
    ("RTSP://admin:QX7SECRET", "QX7SECRET"),
    ("rtsp:admin:QX7SECRET", "QX7SECRET"),
    ("rtsp://admin:QX7/SECRET@host/x", "SECRET"),  # FFmpeg ends the authority at '/', others at '@'
    ("rtsp://admin:QX7 SECRET", "SECRET"),
    ("rtsp://a:b@[::1/QX7SECRET", "QX7SECRET"),  # a bracket never closed
    ("rtsp://a:b@[::1]:55x4/QX7SECRET@x", "QX7SECRET"),
    ("rtsp://a:b@ho st:554/QX7SECRET@host2", "QX7SECRET"),
    ("rtsp://QX7%3ASECRET@host/x", "SECRET"),  # '%3A' decodes to the password separator
    ("rtsp://QX7@SECRET@host/x", "SECRET"),  # '@' in a user name without a password
    ("http://host:8080:QX7SECRET/x", "QX7SECRET"),
    ("rtsp://host/x?user=a&pass%77ord=QX7SECRET", "QX7SECRET"),  # the server decodes the name
    ("http://proxy/p?src=rtsp://admin:QX7SECRET@cam/x&y=1", "QX7SECRET"),  # a URL in a URL
    ("http://proxy/p?src=rtsp%3A%2F%2Fadmin%3AQX7SECRET%40cam%2Fx", "QX7SECRET"),  # ... percent-encoded
    ("ffmpeg:rtsp://user:QX7SECRET@cam/x", "QX7SECRET"),  # go2rtc-style source prefix
    ("rtsp://host/x?a=1;pwd=QX7SECRET", "QX7SECRET"),
]


@pytest.mark.parametrize(("url", "secret"), FAIL_CLOSED, ids=[u for u, _ in FAIL_CLOSED])
def test_text_that_cannot_be_split_safely_is_masked_whole(url, secret):
    redact.forget_all()
    shown = redact.redact_url(url)
    assert secret not in shown, shown
    assert secret not in redact.redact(f"cannot open {url}: refused"), redact.redact(f"cannot open {url}: refused")
    redact.remember(redact.url_secrets(url))
    assert secret not in redact.redact(f"opening {url} as a file"), redact.redact(f"opening {url} as a file")
    redact.forget_all()


def test_a_space_in_a_query_value_is_masked_in_the_url_and_wherever_remembered():
    """A raw space cannot cross the RTSP request line, so free text ends a value there; the
    config value (redact_url) and the remembered secret cover the whole of it."""
    redact.forget_all()
    url = "rtsp://host/x?channel=1&Passcode=QX7 SECRET;x&x=1"
    assert redact.redact_url(url) == "rtsp://host/x?channel=1&Passcode=***&x=1"
    redact.remember(redact.url_secrets(url))
    assert "SECRET" not in redact.redact(f"cannot open {url}: refused")
    assert "SECRET" not in redact.redact("password 'QX7 SECRET;x' rejected")


# The forms from the issue, as shown: the user name and the host stay readable.
AS_SHOWN = [
    ("rtsp://admin:p@ss@host/x", "rtsp://admin:***@host/x"),
    ("RTSP://admin:Pw-Up-1@10.0.0.5:554/h264", "RTSP://admin:***@10.0.0.5:554/h264"),
    ("rtsp://admin:pass word@host/x", "rtsp://admin:***@host/x"),
    ("rtsp://host/cam?channel=1&passcode=Pc-9911", "rtsp://host/cam?channel=1&passcode=***"),
    ("rtsp://user@example.com:Em-4411@[fe80::1%25eth0]:554/x", "rtsp://user@example.com:***@[fe80::1%25eth0]:554/x"),
    ("rtsp://admin@10.0.0.5/h264", "rtsp://admin@10.0.0.5/h264"),
    ("rtsp://admin:secret", "rtsp://***"),
    ("/videos/a.mp4", "/videos/a.mp4"),
    ("rtsp://10.0.0.5:554/h264?codec=h264&channel=2", "rtsp://10.0.0.5:554/h264?codec=h264&channel=2"),
]


@pytest.mark.parametrize(("url", "shown"), AS_SHOWN, ids=[u for u, _ in AS_SHOWN])
def test_the_issue_forms_are_shown_masked(url, shown):
    redact.forget_all()
    assert redact.redact_url(url) == shown


def test_a_config_url_resolved_as_a_file_path_is_still_masked():
    """An upper-case scheme is a file path to the config loader: it prefixes the config's folder."""
    redact.forget_all()
    path = "/etc/surveil/RTSP:/admin:p@ss-Fp77@cam.local/Streaming/Channels/101"
    assert redact.url_secrets(path) == ["p@ss-Fp77"]
    assert "Fp77" not in redact.redact_url(path)
    assert "Fp77" not in redact.redact(f"camera a: file not found: {path}")


UNTOUCHED = [
    "metrics on http://127.0.0.1:9108/metrics",
    "web UI on http://0.0.0.0:8080 (token required)",
    "camera a: cannot open rtsp://admin:***@10.0.0.5:554/h264: connection refused by 10.0.0.5:554 (nothing listens there)",
    "camera a: cannot open rtsp://10.0.0.5:554: connection refused",
    "see https://docs.example.com/config#cameras for the options",
    "reconnecting to rtsp://[::1]:8554/h264?channel=1&subtype=0&codec=h264 in 2.5 s",
    "OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp|analyzeduration;500000",
    "alert zone=entrance class=person score=0.91 track=12",
    "time: 12:30:45 host: a",
]


@pytest.mark.parametrize("line", UNTOUCHED)
def test_lines_without_secrets_are_left_alone(line):
    redact.forget_all()
    assert redact.redact(line) == line


def test_two_urls_in_one_line_are_masked_each_on_its_own():
    """Found by hypothesis: the first URL's masked range ended inside the second one's password."""
    redact.forget_all()
    url = "rtsp://admin:QX71@QX72 QX73@a"
    line = f"open {url} failed: 'camera cam: cannot open {url}: connection refused'"
    shown = redact.redact(line)
    assert shown == "open rtsp://admin:***@a failed: 'camera cam: cannot open rtsp://admin:***@a: connection refused'"
    no_slashes = "rtsp:admin:QX71@QX72 QX73@a"
    shown = redact.redact(f"open rtsp://h:1x/p/{no_slashes} then {no_slashes}: refused")
    assert not [t for t in ("QX71", "QX72", "QX73") if t in shown], shown
