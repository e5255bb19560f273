"""Issue 7, class 5: no secret in any output.

Mechanism (surveil/redact.py): one redaction path. URL rules (userinfo password, secret-named
query parameters) plus every secret value of the loaded config, masked in every log record (a
filter on the root handler), camera status reasons (MQTT, alerts), MQTT payloads, CLI errors;
OpenCV/FFmpeg's own stderr quiet. The daemon test plants secrets in a table of URL forms and
greps everything a real run writes: stdout/stderr (JSON logs), MQTT (retained status, alerts,
availability), the metrics page, the alert log."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from surveil import redact
from tests.support.mqtt_broker import MqttCollector
from tests.support.polling import free_port, wait_until
from tests.support.surveil_cli import SHIPPED_MODEL, check_config, closed_port, start_surveil, stop_surveil

URL_FORMS = [  # (id, url with {port}, the secret)
    ("rtsp-userinfo", "rtsp://admin:Ui-s3cret-1@127.0.0.1:{port}/Streaming/Channels/101", "Ui-s3cret-1"),
    ("query-user-pwd", "rtsp://127.0.0.1:{port}/cam/realmonitor?channel=1&user=admin&pwd=Qp-s3cret-2", "Qp-s3cret-2"),
    ("query-token", "http://127.0.0.1:{port}/video.mjpg?token=Tk-s3cret-3&res=hd", "Tk-s3cret-3"),
    ("http-basic", "http://viewer:Hb-s3cret-4@127.0.0.1:{port}/mjpg/video.mjpg", "Hb-s3cret-4"),
    ("query-password-encoded", "rtsp://127.0.0.1:{port}/live?username=admin&password=Pe%23s3cret-5", "Pe#s3cret-5"),
    ("query-api-key", "https://127.0.0.1:{port}/stream?api_key=Ak-s3cret-6", "Ak-s3cret-6"),
    (
        "query-signature",
        "http://127.0.0.1:{port}/s.m3u8?X-Amz-Signature=Sg-s3cret-7&X-Amz-Credential=Cr-s3cret-8",
        "Sg-s3cret-7",
    ),
]
MQTT_PASSWORD = "Mq-s3cret-9"


@pytest.mark.parametrize(("case_id", "url", "secret"), URL_FORMS, ids=[c[0] for c in URL_FORMS])
def test_url_rules_mask_every_form_without_knowing_the_secret(case_id, url, secret):
    redact.forget_all()
    shown = redact.redact_url(url.format(port=554))
    assert secret not in shown and urllib.parse.quote(secret, safe="") not in shown, shown
    assert "127.0.0.1" in shown and "***" in shown


def test_remembered_secrets_are_masked_anywhere_in_any_form():
    redact.forget_all()
    redact.remember(["p@ss w0rd#1"])
    for text in ["login failed for p@ss w0rd#1", "url=rtsp://h/x?p=p%40ss%20w0rd%231", "repr: 'p@ss w0rd#1'"]:
        assert "w0rd" not in redact.redact(text), text
    redact.forget_all()


def test_check_config_never_echoes_a_rejected_secret(tmp_path):
    cases = {
        "password-as-number": "mqtt:\n  password: 98765432123\n",
        "password-as-list": "mqtt:\n  password: [Ls-s3cret]\n",
        "url-with-secret-too-long": "cameras:\n  - name: a\n    url: rtsp://u:Lg-s3cret@h/" + "x" * 5000 + "\n",
        "url-as-mapping": "cameras:\n  - name: a\n    url: {Mp-s3cret: 1}\n",
        "web-password-too-short": "web:\n  username: a\n  password: Sh-s3c\n",
    }
    files = {}
    for name, text in cases.items():
        files[name] = tmp_path / f"{name}.yaml"
        body = text if text.startswith("cameras") else "cameras:\n  - name: a\n    url: x.mp4\n" + text
        files[name].write_text(body)
    result = check_config(*files.values())
    assert result.returncode == 2
    for secret in ("98765432123", "Ls-s3cret", "Lg-s3cret", "Sh-s3c"):
        assert secret not in result.stderr + result.stdout, result.stderr


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            return response.read().decode()
    except OSError:
        return ""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_in_anything_a_daemon_run_writes(tmp_path, mosquitto_broker_factory, log_format):
    broker = mosquitto_broker_factory(users={"surveil": MQTT_PASSWORD})
    collector = MqttCollector(broker.host, broker.port, topic="#", persistent=False, auth=("surveil", MQTT_PASSWORD))
    port = closed_port()
    metrics_port = free_port()
    cameras = [
        {
            "name": case_id,
            "url": url.format(port=port),
            "open_timeout_s": 1,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            "rules": [{"id": "health", "type": "stream_health", "for_s": 1}],
        }
        for case_id, url, _ in URL_FORMS
    ]
    cameras.append(
        {
            "name": "file-cam",
            "url": str(tmp_path / "missing-Fc-s3cret-10.mp4"),
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
        }
    )
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": cameras,
                "detector": {"weights": str(SHIPPED_MODEL), "device": "cpu", "threads": 1},
                "mqtt": {
                    "host": broker.host,
                    "port": broker.port,
                    "username": "surveil",
                    "password": "${MQTT_PASSWORD}",
                },
                "alerts": {"jsonl_path": str(tmp_path / "alerts.jsonl")},
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "logging": {"level": "DEBUG", "format": log_format},
            }
        )
    )
    log_path = tmp_path / "daemon.log"
    process = start_surveil(config, env={"MQTT_PASSWORD": MQTT_PASSWORD}, log_path=log_path)
    try:
        collector.wait_subscribed()
        down = lambda: {m.topic for m in collector.messages if m.topic.endswith("/status")}  # noqa: E731
        assert wait_until(lambda: len(down()) >= len(cameras), 120), (down(), log_path.read_text()[-3000:])
        alerts = lambda: [m for m in collector.messages if "/alerts/" in m.topic]  # noqa: E731
        assert wait_until(lambda: len(alerts()) >= len(URL_FORMS), 30), (
            "stream_health alerts (with the down reason) expected"
        )
        metrics_page = _scrape(metrics_port)
        assert "surveil_camera_up" in metrics_page
        time.sleep(1.0)  # a few reconnect rounds more
    finally:
        status = stop_surveil(process)
        collector.close()
    retained = MqttCollector(
        broker.host, broker.port, topic="#", persistent=False, auth=("surveil", MQTT_PASSWORD)
    )  # what a newcomer sees
    try:
        retained.wait_subscribed()
        time.sleep(1.0)
        retained_text = "\n".join(f"{m.topic} {m.payload.decode(errors='replace')}" for m in retained.messages)
    finally:
        retained.close()
    logs = log_path.read_text()
    assert status == 0, logs[-3000:]
    everything = {
        "logs": logs,
        "mqtt": "\n".join(f"{m.topic} {m.payload.decode(errors='replace')}" for m in collector.messages),
        "retained": retained_text,
        "metrics": metrics_page,
        "alerts.jsonl": (tmp_path / "alerts.jsonl").read_text(),
    }
    secrets = [s for _, _, s in URL_FORMS] + ["Cr-s3cret-8", MQTT_PASSWORD]
    for where, text in everything.items():
        for secret in secrets:
            for form in {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}:
                assert form not in text, f"{secret!r} ({form!r}) leaked into {where}"
    assert "cannot open rtsp://admin:***@127.0.0.1" in logs  # what the operator sees instead
    assert "reason" in everything["retained"]
    if log_format == "json":
        for line in logs.splitlines():
            json.loads(line)  # quiet OpenCV/FFmpeg: nothing but our JSON lines


def test_a_secret_that_looks_like_json_never_breaks_a_payload():
    redact.forget_all()
    redact.remember(["null", "1883", "true"])
    document = json.dumps({"reason": "login null failed", "port": 1883, "snapshot": None, "up": True})
    assert json.loads(redact.redact_json(document)) == {
        "reason": "login *** failed",
        "port": 1883,
        "snapshot": None,
        "up": True,
    }
    redact.forget_all()


# Issue 18 item 1: the URL forms FFmpeg reads differently from the old redactor. (id, url, secret)
FFMPEG_FORMS = [
    ("last-at", "rtsp://admin:La@s3cret-11@127.0.0.1:{port}/live", "La@s3cret-11"),
    ("at-and-colon", "rtsp://admin:Ac:s3c@ret-12@127.0.0.1:{port}/live", "Ac:s3c@ret-12"),
    ("upper-scheme", "RTSP://admin:Us-s3cret-13@127.0.0.1:{port}/live", "Us-s3cret-13"),
    ("no-slashes", "rtsp:admin:Ns-s3cret-14@127.0.0.1:{port}/live", "Ns-s3cret-14"),
    ("passcode", "rtsp://127.0.0.1:{port}/live?channel=1&passcode=Pc-s3cret-15", "Pc-s3cret-15"),
    ("space", "rtsp://admin:Sp s3cret-16@127.0.0.1:{port}/live", "Sp s3cret-16"),
    ("encoded-at", "rtsp://admin:Pe%40s3cret-17@127.0.0.1:{port}/live", "Pe@s3cret-17"),
]


def _pieces(secret: str) -> set[str]:
    """The secret and every part of it a parser could cut off at '@', ':' or a space (4+ characters)."""
    parts = {p for p in secret.replace("@", " ").replace(":", " ").split(" ") if len(p) >= 4}
    return parts | {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("case_id", "url", "secret"), FFMPEG_FORMS, ids=[c[0] for c in FFMPEG_FORMS])
def test_snapshot_and_status_never_show_an_ffmpeg_form_secret(tmp_path, capsys, case_id, url, secret):
    """`surveil snapshot` of a camera that will not open (its error names the masked URL and the
    probe's reason), and the same error as a status payload and a log record."""
    from surveil.cli import main

    config = tmp_path / "site.yaml"
    camera = {"name": "cam", "url": url.format(port=closed_port()), "open_timeout_s": 1, "read_timeout_s": 1}
    config.write_text(yaml.safe_dump({"cameras": [camera], "mqtt": {"enabled": False}}))
    assert main(["snapshot", "-c", str(config), "cam", "-o", str(tmp_path / "cam.png")]) != 0
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "cannot open" in shown or "file not found" in shown, shown
    redact.forget_all()  # what the URL rules alone do, without the config's remembered secrets
    status = redact.redact_json(json.dumps({"camera": "cam", "up": False, "reason": redact.redact(url)}))
    record = logging.LogRecord("surveil", logging.WARNING, __file__, 1, "camera %s: down: %s", ("cam", url), None)
    redact.RedactingFilter().filter(record)
    for where, text in {"snapshot": shown, "status": status, "log": record.getMessage()}.items():
        for piece in _pieces(secret):
            assert piece not in text, f"{piece!r} of {secret!r} leaked into {where}: {text}"


@pytest.mark.parametrize(("case_id", "url", "secret"), FFMPEG_FORMS, ids=[c[0] for c in FFMPEG_FORMS])
def test_the_live_view_reason_never_shows_an_ffmpeg_form_secret(case_id, url, secret):
    """/cameras.json shows ``public_reason`` of the reason the pipeline redacted (its one door)."""
    from surveil.video.opening import mask_url
    from surveil.web.server import public_reason

    redact.forget_all()
    raw = f"camera cam: cannot open {url.format(port=554)}: connection refused by 127.0.0.1:554"
    for reason in (raw, f"camera cam: cannot open {mask_url(url.format(port=554))}: connection refused"):
        shown = json.dumps({"reason": public_reason(redact.redact(reason))})
        for piece in _pieces(secret):
            assert piece not in shown, (piece, shown)
