"""Config loading: good files load; each bad file gives exit 2 with a message naming the problem."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from surveil.config import ConfigError, load_config, substitute_env

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
cameras:
  - name: gate
    url: rtsp://user:${CAM_PASSWORD:-secret}@10.0.0.5/stream1
    fps_limit: 5
    zones:
      - name: door
        polygon: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    lines:
      - {name: threshold, a: [0.1, 0.9], b: [0.9, 0.9], forward: leaving, backward: entering}
    rules:
      - {id: door-intrusion, type: zone_intrusion, zone: door, classes: [person], min_frames: 3,
         schedule: {timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri], start: "22:00", end: "06:00"}}
      - {id: door-count, type: line_crossing, line: threshold, directions: [entering]}
  - name: lobby
    url: clips/lobby.mp4
detector:
  weights: coco
mqtt:
  host: broker.local
  password: ${MQTT_PASSWORD}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_config_loads_with_env_and_relative_paths(tmp_path):
    config = load_config(write(tmp_path, GOOD), environ={"MQTT_PASSWORD": "hunter2"})
    assert [c.name for c in config.cameras] == ["gate", "lobby"]
    assert config.cameras[0].url == "rtsp://user:secret@10.0.0.5/stream1"
    assert config.cameras[0].kind == "stream"
    assert config.cameras[1].kind == "file"
    assert config.cameras[1].url == str(tmp_path / "clips" / "lobby.mp4")
    assert config.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config.mqtt)
    rules = config.cameras[0].rules
    assert [(r.id, r.type) for r in rules] == [("door-intrusion", "zone_intrusion"), ("door-count", "line_crossing")]
    assert rules[0].classes == ["person"] and rules[0].schedule.timezone == "Europe/Berlin"


def test_shipped_configs_are_valid():
    passwords = {"GATE_PASSWORD": "gate-pw-7", "BACKYARD_PASSWORD": "yard-pw-9"}  # site-example's ${VAR}s
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name.startswith("train"):
            continue
        load_config(path, environ=passwords)


RULES = "cameras:\n  - name: a\n    url: x.mp4\n    zones:\n      - {name: z, polygon: [[0, 0], [1, 0], [1, 1]]}\n    rules:\n"
BAD_CONFIGS = [
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    colour: red\n",
        ["line 4", "cameras[0].colour", "unknown option"],
        id="unknown-key",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    fps_limit: fast\n",
        ["line 4", "cameras[0].fps_limit", "valid number", "'fast'"],
        id="wrong-type",
    ),
    pytest.param(
        "cameras:\n  - name: a\n", ["line 2", "cameras[0].url", "required option is missing"], id="missing-url"
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    zones:\n      - name: z\n        polygon: [[0, 0], [1, 1]]\n",
        ["line 6", "cameras[0].zones[0].polygon", "at least 3"],
        id="polygon-too-few-points",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    zones:\n      - name: z\n        polygon: [[0, 0], [1.5, 0], [1, 1]]\n",
        ["line 6", "cameras[0].zones[0].polygon", "less than or equal to 1"],
        id="polygon-out-of-range",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    zones:\n      - name: z\n        polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]\n",
        ["line 6", "polygon", "cross"],
        id="polygon-self-intersecting",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: rtsp://u:${NO_SUCH_VAR_X}@h/s\n",
        ["line 3", "NO_SUCH_VAR_X", "not set"],
        id="unset-env-var",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\ndetector:\n  device: gpu\n",
        ["line 5", "detector.device", "pattern"],
        id="bad-device",
    ),
    pytest.param("cameras: []\n", ["line 1", "cameras", "at least 1"], id="no-cameras"),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n  - name: a\n    url: y.mp4\n",
        ["unique", "repeated: a"],
        id="duplicate-camera",
    ),
    pytest.param("cameras:\n  - name: a\n    url: [x.mp4\n", ["line", "not valid YAML"], id="broken-yaml"),
    pytest.param(
        "cameras:\n  - name: a b\n    url: x.mp4\n", ["line 2", "cameras[0].name", "pattern"], id="bad-camera-name"
    ),
    pytest.param("- just\n- a list\n", ["YAML mapping"], id="not-a-mapping"),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\nmqtt:\n  qos: 3\n", ["line 5", "mqtt.qos", "1 or 2"], id="bad-qos"
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    zones:\n      - name: z\n        polygon: [[0, 0], [1, 0], [1, 1]]\n        intrusion: true\n        min_frames: 3\n",
        ["line 5", "cameras[0].zones[0]", "moved to the camera's `rules:` list", "type: zone_intrusion, zone: z"],
        id="old-style-zone-rule",
    ),
    pytest.param(
        RULES + "      - {id: r, type: zone_intrusion, zone: nowhere}\n",
        ["no zone named 'nowhere'", "zones: z"],
        id="rule-unknown-zone",
    ),
    pytest.param(
        RULES + "      - {id: r, type: line_crossing, line: l}\n", ["no line named 'l'"], id="rule-unknown-line"
    ),
    pytest.param(
        RULES
        + "      - {id: r, type: loitering, zone: z, dwell_s: 10}\n      - {id: r, type: crowding, zone: z, min_count: 2}\n",
        ["rule ids must be unique", "repeated: r"],
        id="duplicate-rule-id",
    ),
    pytest.param(
        RULES + "      - {id: r, type: teleport, zone: z}\n",
        ["line 7", "cameras[0].rules[0]", "type", "zone_intrusion"],
        id="unknown-rule-type",
    ),
    pytest.param(
        RULES + "      - {id: r, type: loitering, zone: z}\n",
        ["line 7", "cameras[0].rules[0]", "dwell_s", "missing"],
        id="loitering-without-dwell",
    ),
    pytest.param(
        RULES + "      - {id: r, type: crowding, zone: z, min_count: 3, end_below: 5}\n",
        ["end_below must be <= min_count"],
        id="crowding-hysteresis-backwards",
    ),
    pytest.param(
        RULES + "      - {id: r, type: zone_intrusion, zone: z, schedule: {timezone: Mars/Olympus}}\n",
        ["unknown IANA time zone", "Mars/Olympus"],
        id="bad-timezone",
    ),
    pytest.param(
        RULES + "      - {id: r, type: zone_intrusion, zone: z, schedule: {start: '25:00'}}\n",
        ["schedule.start", "pattern"],
        id="bad-schedule-time",
    ),
    pytest.param(
        "cameras:\n  - name: a\n    url: x.mp4\n    lines:\n      - {name: l, a: [0.5, 0.5], b: [0.5, 0.5]}\n",
        ["line 5", "different points"],
        id="line-of-one-point",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_names_the_problem(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_check_config_command_exits_2_without_traceback(tmp_path, text, expected):
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def test_check_config_command_accepts_good_file(tmp_path):
    path = write(tmp_path, GOOD)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "lobby.mp4").touch()  # check-config requires a file camera's video to exist
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MQTT_PASSWORD": "x", "PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "OK (2 camera(s)" in result.stdout


@pytest.mark.parametrize(
    ("form", "returncode", "expected"),
    [
        (lambda f: [str(f)], 0, "OK (2 camera(s)"),
        (lambda f: ["-c", str(f)], 0, "OK (2 camera(s)"),  # as `surveil run -c` spells it
        (lambda f: [str(f), "--config", str(f)], 0, "OK (2 camera(s)"),
        (lambda f: [], 2, "needs a config file"),
    ],
    ids=["positional", "-c", "both", "none"],
)
def test_check_config_takes_files_as_run_does(tmp_path, form, returncode, expected):
    path = write(tmp_path, GOOD)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "lobby.mp4").touch()
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "check-config", *form(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MQTT_PASSWORD": "x", "PATH": "/usr/bin"},
    )
    assert result.returncode == returncode, result.stderr
    assert expected in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${X}", {"X": "1"}, "1"),
        ("${X:-d}", {}, "d"),
        ("${X:-d}", {"X": "v"}, "v"),
        ("a-${X}-${Y:-}", {"X": "${Y}"}, "a-${Y}-"),  # one pass: a value is never substituted again
    ],
)
def test_substitute_env_in_one_value(value, env, expected):
    """Substitution works on parsed scalar values; tests/config/test_env.py runs it through the real command."""
    assert substitute_env(value, env) == expected


def test_config_reference_doc_is_up_to_date():
    from surveil.config import markdown_reference

    doc = (REPO / "docs" / "config.md").read_text()
    assert doc.strip() == markdown_reference().strip(), (
        "regenerate: python -m surveil.config --markdown > docs/config.md"
    )


@pytest.mark.parametrize(
    ("state_dir_option", "environ", "expected_folder"),
    [
        (None, {}, "."),  # next to the config file
        (None, {"STATE_DIRECTORY": "/var/lib/surveil"}, "/var/lib/surveil"),  # systemd's StateDirectory=
        ("state", {"STATE_DIRECTORY": "/var/lib/surveil"}, "state"),  # explicit option wins, relative to the file
        ("/srv/surveil", {}, "/srv/surveil"),
    ],
)
def test_output_paths_resolve_against_the_state_folder(tmp_path, state_dir_option, environ, expected_folder):
    text = "cameras:\n  - name: a\n    url: in.mp4\nalerts:\n  jsonl_path: alerts.jsonl\n"
    if state_dir_option:
        text += f"state_dir: {state_dir_option}\n"
    config = load_config(write(tmp_path, text), environ=environ)
    folder = (tmp_path / expected_folder).resolve()
    assert config.mqtt.spool_path == str(folder / "surveil-spool.sqlite3")
    assert config.alerts.jsonl_path == str(folder / "alerts.jsonl")
    assert config.cameras[0].url == str(tmp_path / "in.mp4")  # inputs stay relative to the config file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras:\n  - name: a\n    url: x.mp4\n    colour: red\n", "line 4"),
        (
            "cameras:\n  - name: a\n    url: x.mp4\ndetector:\n  weights: no-such-model.pt\nmqtt: {enabled: false}\nmetrics: {enabled: false}\n",
            "does not exist",
        ),
    ],
    ids=["schema-error", "missing-model-file"],
)
@pytest.mark.slow
def test_run_command_exits_2_on_unusable_config(tmp_path, text, expected):
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "surveil", "run", "-c", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
