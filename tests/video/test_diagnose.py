"""Issue 18 items 2-3: the reason probe sends credentials only when challenged, and never hangs.

A hostile RTSP endpoint on 127.0.0.1 (tests/support/fake_rtsp.py) answers the probe's DESCRIBE:
401 with no challenge, Basic or Digest challenges, junk without an end of line, a slow drip, endless
headers. For each: what the probe sent (no Authorization without a challenge; Basic only over a
verified rtsps:// or where allowed; Digest right when challenged), that it returned (a hang fails
at the timeout mark, not by a clock check), that it read no more than its byte caps, and that the
reason names the cause. Then the same through ``open_video_capture``, as the daemon and
``surveil snapshot`` use it.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from surveil.config import CameraConfig
from surveil.video.diagnose import (
    MAX_ANSWER_BYTES,
    MAX_HEADER_BYTES,
    MAX_STATUS_LINE,
    probe_stream,
    reason_kind,
)
from surveil.video.opening import CaptureOpenError, open_video_capture
from tests.support.fake_rtsp import FakeRtspServer

PASSWORD = "Pr0be-s3cret"
TIMEOUT_S = 1.5

# id, server behaviour (+ options), userinfo, probe options, words in the reason, reason label, what was sent
AUTH_CASES = [
    ("no-challenge", "401-no-challenge", {}, f"admin:{PASSWORD}", {}, "no authentication challenge", "unauthorized", None),
    ("no-challenge-allow-basic", "401-no-challenge", {}, f"admin:{PASSWORD}", {"allow_basic": True}, "no authentication challenge", "unauthorized", None),
    ("basic-plain-rtsp", "401-basic", {}, f"admin:{PASSWORD}", {}, "Basic authentication", "unauthorized", None),
    ("basic-allowed", "401-basic", {}, f"admin:{PASSWORD}", {"allow_basic": True}, "offers video", "error", "Basic"),
    ("basic-wrong-password", "401-basic", {}, "admin:wrong-one", {"allow_basic": True}, "rejected the credentials", "unauthorized", "Basic"),
    ("digest", "401-digest", {}, f"admin:{PASSWORD}", {}, "offers video", "error", "Digest"),
    ("digest-qop", "401-digest", {"qop": True}, f"admin:{PASSWORD}", {}, "offers video", "error", "Digest"),
    ("digest-sha256", "401-digest", {"algorithm": "SHA-256", "qop": True}, f"admin:{PASSWORD}", {}, "offers video", "error", "Digest"),
    ("digest-md5-sess", "401-digest", {"algorithm": "MD5-sess", "qop": True}, f"admin:{PASSWORD}", {}, "offers video", "error", "Digest"),
    ("digest-encoded", "401-digest", {"password": "p@ss w:rd"}, "admin:p%40ss%20w:rd", {}, "offers video", "error", "Digest"),
    ("digest-wrong-password", "401-digest", {}, "admin:wrong-one", {}, "rejected the credentials", "unauthorized", "Digest"),
    ("digest-then-close", "401-digest-then-close", {}, f"admin:{PASSWORD}", {}, "offers video", "error", "Digest"),
    ("unknown-scheme", "401-unknown", {}, f"admin:{PASSWORD}", {"allow_basic": True}, "unsupported authentication", "unauthorized", None),
    ("no-credentials", "401-digest", {}, None, {}, "needs credentials in the URL", "unauthorized", None),
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("case_id", "behaviour", "options", "userinfo", "probe_options", "words", "label", "sent"),
    AUTH_CASES,
    ids=[c[0] for c in AUTH_CASES],
)
def test_credentials_go_only_where_challenged(case_id, behaviour, options, userinfo, probe_options, words, label, sent):
    options = {"password": PASSWORD, **options}
    with FakeRtspServer(behaviour, **options) as server:
        result = probe_stream(server.url(userinfo), TIMEOUT_S, **probe_options)
    assert words in result.reason, result.reason
    assert reason_kind(result.reason) == label, result.reason
    assert PASSWORD not in result.reason
    assert server.requests, "the probe sent no DESCRIBE"
    assert all("authorization" not in r.headers for r in server.requests if r.headers["cseq"] == "1"), (
        "credentials sent before any challenge"
    )
    if sent is None:
        assert server.authorizations == [], server.authorizations
    else:
        assert server.authorizations and all(a.startswith(f"{sent} ") for a in server.authorizations)
    for request in server.requests:
        assert PASSWORD not in request.url and "admin" not in request.url  # no userinfo in the request line
        if "authorization" in request.headers and request.headers["authorization"].startswith("Digest"):
            assert PASSWORD not in request.raw.decode("latin-1")


# id, behaviour, most bytes the probe may read, words in the reason, reason label
HOSTILE_CASES = [
    ("junk-forever", "junk", MAX_STATUS_LINE, "not an RTSP server", "error"),
    ("huge-headers", "huge-headers", MAX_STATUS_LINE + MAX_HEADER_BYTES, "longer than", "error"),
    ("slow-drip", "drip", MAX_ANSWER_BYTES, "timed out", "timeout"),
]


@pytest.mark.timeout(60)  # the hang guard: a probe that does not end fails here
@pytest.mark.parametrize(
    ("case_id", "behaviour", "cap", "words", "label"), HOSTILE_CASES, ids=[c[0] for c in HOSTILE_CASES]
)
def test_hostile_endpoints_end_within_the_caps(case_id, behaviour, cap, words, label):
    with FakeRtspServer(behaviour) as server:
        result = probe_stream(server.url(f"admin:{PASSWORD}"), TIMEOUT_S, allow_basic=True)
    assert words in result.reason, result.reason
    assert reason_kind(result.reason) == label, result.reason
    assert 0 < result.bytes_read <= cap, (result.bytes_read, cap)
    assert server.authorizations == []
    assert result.requests == 1


@pytest.mark.timeout(60)
def test_a_drip_is_read_byte_by_byte_until_the_deadline():
    """The drip sends one byte per 10 ms: the probe reads a few, then stops at its deadline."""
    with FakeRtspServer("drip", drip_s=0.01) as server:
        result = probe_stream(server.url(), 0.5)
    assert "sends no complete RTSP answer within 0.5 s (timed out after" in result.reason, result.reason
    assert result.bytes_read < MAX_HEADER_BYTES  # it ended by the deadline, not by a cap


@pytest.mark.timeout(60)
@pytest.mark.parametrize("behaviour", ["junk", "drip", "huge-headers", "401-no-challenge"])
def test_open_video_capture_returns_from_a_hostile_endpoint(behaviour):
    """What the daemon's capture thread and `surveil snapshot` call: it must come back and say why."""
    with FakeRtspServer(behaviour) as server:
        camera = CameraConfig(name="cam", url=server.url(f"admin:{PASSWORD}"), open_timeout_s=2, read_timeout_s=2)
        with pytest.raises(CaptureOpenError) as caught:
            open_video_capture(camera)
    message = str(caught.value)
    assert "cannot open rtsp://admin:***@127.0.0.1" in message, message
    assert PASSWORD not in message
    probe_requests = [r for r in server.requests if r.headers.get("user-agent") == "surveil-probe"]
    assert all("authorization" not in r.headers for r in probe_requests)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.slow  # starts openssl to make a certificate
@pytest.mark.timeout(60)
def test_basic_goes_over_rtsps_only_with_a_verified_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with FakeRtspServer("401-basic", password=PASSWORD, tls=server_tls) as server:
        unverified = probe_stream(server.url(f"admin:{PASSWORD}", scheme="rtsps"), TIMEOUT_S)
        assert "unverified certificate" in unverified.reason, unverified.reason
        assert server.authorizations == []
        trusting = ssl.create_default_context(cafile=str(cert))
        verified = probe_stream(server.url(f"admin:{PASSWORD}", scheme="rtsps"), TIMEOUT_S, tls_context=trusting)
        assert "offers video" in verified.reason, verified.reason
        assert [a.split(" ")[0] for a in server.authorizations] == ["Basic"]


MALFORMED = [
    f"rtsp://admin:{PASSWORD}",  # the "port" is the password
    f"rtsp://admin:{PASSWORD}@[::1/stream",
    f"RTSP://admin:{PASSWORD}@127.0.0.1:99999/stream",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("url", MALFORMED, ids=["port-is-password", "open-bracket", "port-out-of-range"])
def test_a_malformed_url_is_named_without_quoting_it(url):
    result = probe_stream(url, TIMEOUT_S)
    assert "malformed URL" in result.reason, result.reason
    assert PASSWORD not in result.reason
    assert result.bytes_read == 0 and result.requests == 0


@pytest.mark.timeout(60)  # a socket timeout holds per read: without the deadline this drip takes 27 minutes
def test_a_tls_handshake_drip_ends_at_the_deadline():
    with FakeRtspServer("tls-drip", drip_s=0.05) as server:
        result = probe_stream(server.url(f"admin:{PASSWORD}", scheme="rtsps"), TIMEOUT_S)
    assert "no TLS handshake" in result.reason and "timed out" in result.reason, result.reason
    assert reason_kind(result.reason) == "timeout"
    assert result.requests == 0


@pytest.mark.timeout(60)
def test_a_not_found_path_is_named_with_its_secrets_masked():
    with FakeRtspServer("404") as server:
        result = probe_stream(server.url(path=f"/cam/user=admin&password={PASSWORD}"), TIMEOUT_S)
    assert "not found (404): no stream at path /cam/user=admin&password=***" in result.reason, result.reason
    assert reason_kind(result.reason) == "not_found"
