"""Issue 7, class 4: ``${VAR}`` substitution cannot change the structure of the file.

Mechanism (surveil/config.py ``_substitute_nodes``): the file is parsed first; ``${VAR}`` is then
replaced inside string scalar values of the composed YAML graph, never in keys, never in
comments (they are gone by then), and the result is never parsed again. A value that is exactly
``${VAR}`` still becomes a number or a boolean where the option wants one (pydantic converts
the string). Errors keep their line numbers."""

from __future__ import annotations

import pytest

from surveil.config import ConfigError, load_config
from tests.support.surveil_cli import check_config

BASE = """\
cameras:
  - name: gate
    url: rtsp://viewer:${CAM_PASSWORD}@192.0.2.10/stream1   # the camera's password
mqtt:
  host: ${MQTT_HOST:-localhost}
  port: ${MQTT_PORT:-1883}
  enabled: ${MQTT_ENABLED:-true}
  username: surveil
  password: ${MQTT_PASSWORD}
metrics:
  listen: 127.0.0.1:9108
"""

HOSTILE_VALUES = [
    ("space-hash", "hunter2 #not-a-comment"),
    ("hash-only", "#"),
    ("null-word", "null"),
    ("tilde", "~"),
    ("empty", ""),
    ("bool-word", "yes"),
    ("number", "0123"),
    ("newline-injects-keys", "x\nmetrics:\n  listen: 0.0.0.0:1\ndetector:\n  weights: /tmp/evil.pt"),
    ("flow-syntax", "{a: 1}, [b]"),
    ("quotes", 'it\'s "quoted"'),
    ("yaml-alias", "*alias"),
    ("yaml-tag", "!!python/object/apply:os.system ['id']"),
    ("document-markers", "---\n...\n"),
    ("another-variable", "${MQTT_HOST}"),
    ("colon-space", "key: value"),
    ("unicode", "pässwörd-🔑"),
]


@pytest.mark.parametrize(("case_id", "secret"), HOSTILE_VALUES, ids=[c[0] for c in HOSTILE_VALUES])
def test_value_arrives_verbatim_and_structure_is_unchanged(tmp_path, case_id, secret):
    path = tmp_path / "site.yaml"
    path.write_text(BASE)
    env = {"MQTT_PASSWORD": secret, "CAM_PASSWORD": secret, "MQTT_HOST": "broker.example"}
    config = load_config(path, environ=env)
    assert config.mqtt.password.get_secret_value() == secret
    assert config.cameras[0].url == f"rtsp://viewer:{secret}@192.0.2.10/stream1"
    assert config.metrics.listen == "127.0.0.1:9108"
    assert config.detector.weights == "coco"
    assert config.mqtt.host == "broker.example" and config.mqtt.port == 1883 and config.mqtt.enabled is True


def test_check_config_accepts_every_hostile_value(tmp_path):
    """The real command, once per value (the environment is per process)."""
    path = tmp_path / "site.yaml"
    path.write_text(BASE)
    for case_id, secret in HOSTILE_VALUES:
        result = check_config(path, env={"MQTT_PASSWORD": secret, "CAM_PASSWORD": secret})
        assert result.returncode == 0, f"{case_id}: {result.stderr}"
        assert secret not in result.stderr + result.stdout or len(secret) < 4


TYPED = [
    ("port-number", "mqtt:\n  port: ${P}\n", {"P": "8883"}, lambda c: c.mqtt.port == 8883),
    ("bool-false", "mqtt:\n  enabled: ${E}\n", {"E": "false"}, lambda c: c.mqtt.enabled is False),
    ("float", "detector:\n  max_wait_ms: ${W}\n", {"W": "12.5"}, lambda c: c.detector.max_wait_ms == 12.5),
    ("qos-literal", "mqtt:\n  qos: ${Q:-2}\n", {}, lambda c: c.mqtt.qos == 2),
    (
        "part-of-a-value",
        "mqtt:\n  topic_prefix: site-${SITE}/cams\n",
        {"SITE": "7"},
        lambda c: c.mqtt.topic_prefix == "site-7/cams",
    ),
    (
        "inside-a-list",
        "detector:\n  classes: [person, '${EXTRA}']\n",
        {"EXTRA": "car"},
        lambda c: c.detector.classes == ["person", "car"],
    ),
    (
        "quoted-in-flow-mapping",
        'mqtt: {password: "${P}"}\n',
        {"P": "a}b, c: d"},
        lambda c: c.mqtt.password.get_secret_value() == "a}b, c: d",
    ),
    (
        "comment-not-required",
        "# ${NOT_SET_ANYWHERE} is only mentioned here\nmqtt:\n  port: 1883  # ${NOR_HERE}\n",
        {},
        lambda c: c.mqtt.port == 1883,
    ),
    (
        "through-an-alias",
        "x: &p ${P}\nmqtt:\n  password: *p\n",
        {"P": "s3cr3t"},
        None,
    ),  # `x` is unknown: error, not substitution trouble
]


@pytest.mark.parametrize(("case_id", "text", "env", "check"), TYPED, ids=[c[0] for c in TYPED])
def test_typed_and_placed_values(tmp_path, case_id, text, env, check):
    path = tmp_path / "site.yaml"
    path.write_text("cameras:\n  - name: a\n    url: x.mp4\n" + text)
    if check is None:
        with pytest.raises(ConfigError, match="unknown option"):
            load_config(path, environ=env)
        return
    assert check(load_config(path, environ=env))


ERRORS = [
    ("unset-variable", "mqtt:\n  password: ${NOT_SET_X}\n", ["line 5", "${NOT_SET_X} is not set"]),
    ("unset-in-list", "detector:\n  classes:\n    - person\n    - ${NOT_SET_Y}\n", ["line 7", "${NOT_SET_Y}"]),
    ("keys-are-not-substituted", "mqtt:\n  ${KEY}: 1\n", ["line 5", "mqtt.${KEY}", "unknown option"]),
    ("number-that-is-not", "mqtt:\n  port: ${P}\n", ["line 5", "mqtt.port", "valid integer"]),
]


def test_errors_keep_their_line_numbers(tmp_path):
    files = {}
    for case_id, text, _fragments in ERRORS:
        files[case_id] = tmp_path / f"{case_id}.yaml"
        files[case_id].write_text("cameras:\n  - name: a\n    url: x.mp4\n" + text)
    result = check_config(*files.values(), env={"KEY": "port", "P": "eighteen"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for case_id, _text, fragments in ERRORS:
        message = result.message_for(files[case_id])
        for fragment in fragments:
            assert fragment in message, f"{case_id}: {fragment!r} not in {message!r}"
