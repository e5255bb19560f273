"""Issue 18, item 8: check-config never echoes a rejected value that could be a secret.

``mqtt.host: "u:pw@broker"`` came back verbatim in the error. The class: any option whose name
says it holds an address or a credential (url, host, password, token, ...), and any value in any
option that looks like a URL or credentials. All cases in one real check-config run.
"""

from __future__ import annotations

import pytest
import yaml

from tests.support.surveil_cli import check_config

PW = "Zq9-secret-pw"
CAMERA = {"name": "a", "url": "x.mp4"}

# (label, config with the secret in a rejected value, option named in the message)
CASES = [
    ("mqtt.host userinfo", {"cameras": [CAMERA], "mqtt": {"host": f"u:{PW}@broker"}}, "mqtt.host"),
    ("mqtt.host URL", {"cameras": [CAMERA], "mqtt": {"host": f"mqtt://u:{PW}@broker:1883"}}, "mqtt.host"),
    ("mqtt.host with a space", {"cameras": [CAMERA], "mqtt": {"host": f"broker {PW}"}}, "mqtt.host"),
    ("mqtt.password wrong type", {"cameras": [CAMERA], "mqtt": {"password": [PW]}}, "mqtt.password"),
    ("mqtt.username wrong type", {"cameras": [CAMERA], "mqtt": {"username": {"x": PW}}}, "mqtt.username"),
    ("web.auth_token too short", {"cameras": [CAMERA], "web": {"auth_token": PW[:8]}}, "web.auth_token"),
    ("camera url wrong type", {"cameras": [{"name": "a", "url": [f"rtsp://u:{PW}@cam/x"]}]}, "url"),
    ("camera name is a URL", {"cameras": [{"name": f"rtsp://u:{PW}@cam", "url": "x.mp4"}]}, "name"),
    ("camera name with userinfo", {"cameras": [{"name": f"u:{PW}@cam", "url": "x.mp4"}]}, "name"),
    ("logging.level is a URL", {"cameras": [CAMERA], "logging": {"level": f"http://u:{PW}@x"}}, "logging.level"),
    ("detector.backend password=", {"cameras": [CAMERA], "detector": {"backend": f"password={PW}"}}, "backend"),
    ("metrics.listen userinfo", {"cameras": [CAMERA], "metrics": {"listen": f"u:{PW}@0.0.0.0:9"}}, "listen"),
]


def test_no_rejected_value_that_could_be_a_secret_is_echoed(tmp_path):
    files = {}
    for index, (label, config, option) in enumerate(CASES):
        path = tmp_path / f"{index:02d}.yaml"
        path.write_text(yaml.safe_dump(config))
        files[path] = (label, option)
    result = check_config(*files)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for path, (label, option) in files.items():
        message = result.message_for(path)
        assert "invalid configuration" in message and option in message, f"{label}: {message}"
        assert PW not in message and PW[:8] not in message, f"{label} echoed the secret:\n{message}"


@pytest.mark.parametrize(
    ("field", "value", "hidden"),
    [
        ("mqtt.host", "broker", True),
        ("cameras[0].url", "x", True),
        ("web.auth_token", "x", True),
        ("mqtt.port", 99999, False),
        ("cameras[0].name", "bad name", False),
        ("cameras[0].name", "a@b", True),
        ("logging.level", "https://x", True),
        ("detector.backend", "token: x", True),
    ],
)
def test_which_values_are_hidden(field, value, hidden):
    from surveil.config.loader import _may_be_secret

    assert _may_be_secret(field, value) is hidden
