"""check-config as a new user meets it: typos in keys, rule types, paths and class names, a missing
zone, an example's placeholder password — each found in one pass, at its own line, with a
"did you mean" where there is a close name (surveil.config.first_run, surveil.config.loader)."""

from __future__ import annotations

import pytest

from surveil.config.first_run import did_you_mean
from surveil.config.placeholders import PLACEHOLDERS, is_placeholder
from tests.support.polling import wait_until
from tests.support.surveil_cli import REPO, check_config, closed_port, start_surveil, stop_surveil

MODEL = REPO / "models" / "pedestrian-mnv2-s8.pt"  # the demo's model: its one class is `pedestrian`
VIDEO = REPO / "configs" / "media" / "pets2009-s2l1.mp4"
ZONE = "      - {name: east, polygon: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}\n"


def config(rules: str, url: str = str(VIDEO), weights: str = str(MODEL), extra: str = "") -> str:
    return (
        f"cameras:\n  - name: plaza\n    url: {url}\n    zones:\n{ZONE}    rules:\n{rules}"
        f"detector:\n  weights: {weights}\n{extra}"
    )


INTRUSION = "      - {id: east-in, type: zone_intrusion, zone: east, classes: [pedestrian]}\n"

# (case id, file text, exit status, fragments of its message)
CASES = [
    ("good", config(INTRUSION), 0, ["OK (1 camera(s)"]),
    (
        "person-for-a-pedestrian-model",
        config("      - {id: east-in, type: zone_intrusion, zone: east, classes: [person]}\n"),
        2,
        ["line 7: cameras[0].rules[0].classes", "'person' is not a class", "did you mean 'pedestrian'"],
    ),
    (
        "weights-typo",
        config(INTRUSION, weights=str(MODEL).replace("-s8", "-s9")),
        2,
        ["line 9: detector.weights", f"did you mean '{MODEL}'"],
    ),
    (
        "video-typo",
        config(INTRUSION, url=str(VIDEO).replace("s2l1", "s2ll")),
        2,
        ["line 3: cameras[0].url", f"did you mean '{VIDEO}'"],
    ),
    (
        "three-problems-in-one-pass",
        config(
            "      - {id: east-in, type: zone_intrusion, zone: east, classes: [person]}\n",
            url=str(VIDEO) + ".missing",
            extra="  classes: [pedestrian, car]\n",
        ),
        2,
        [
            "(3 problem(s))",
            "line 3: cameras[0].url",
            "line 7: cameras[0].rules[0].classes",
            "line 10: detector.classes",
        ],
    ),
    (
        "misspelt-key",
        config(INTRUSION).replace("    zones:", "    fps_limt: 5\n    zones:"),
        2,
        ["line 4: cameras[0].fps_limt", "did you mean 'fps_limit'"],
    ),
    (
        "misspelt-rule-type",
        config("      - {id: east-in, type: zone_intrusoin, zone: east}\n"),
        2,
        ["line 7: cameras[0].rules[0]", "unknown type 'zone_intrusoin'", "did you mean 'zone_intrusion'"],
    ),
    (
        "misspelt-rule-option",
        config("      - {id: east-loiter, type: loitering, zone: east, dwel_s: 20}\n"),
        2,
        ["line 7: cameras[0].rules[0].loitering.dwel_s", "did you mean 'dwell_s'"],
    ),
    (
        "missing-zone-at-the-rules-line",
        config(INTRUSION + "      - {id: west-loiter, type: loitering, zone: west, dwell_s: 20}\n"),
        2,
        ["line 8: cameras[0].rules[1].zone", "no zone named 'west'"],
    ),
    (
        "placeholder-password",
        config(INTRUSION, extra="mqtt:\n  username: surveil\n  password: change-me\n"),
        2,
        ["placeholder", "line 12: mqtt.password"],
    ),
]


def test_check_config_on_first_run_mistakes(tmp_path):
    paths = {}
    for case_id, text, _status, _fragments in CASES:
        paths[case_id] = tmp_path / f"{case_id}.yaml"
        paths[case_id].write_text(text)
    result = check_config(*paths.values())
    assert "Traceback" not in result.stderr
    for case_id, _text, status, fragments in CASES:
        message = result.message_for(paths[case_id])
        assert ("OK" in message) == (status == 0), f"{case_id}: {message}"
        for fragment in fragments:
            assert fragment in message, f"{case_id}: {fragment!r} not in\n{message}"


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("person", ["pedestrian"], " (did you mean 'pedestrian'?)"),  # a synonym, not a spelling
        ("pedestrain", ["pedestrian", "car"], " (did you mean 'pedestrian'?)"),
        ("fps_limt", ["fps_limit", "loop"], " (did you mean 'fps_limit'?)"),
        ("car", ["pedestrian"], ""),
    ],
)
def test_did_you_mean(word, choices, expected):
    assert did_you_mean(word, choices) == expected


@pytest.mark.parametrize(("value", "refused"), [("change-me", True), (" CHANGEME ", True), ("s3cr3t-Pw", False)])
def test_placeholders(value, refused):
    assert is_placeholder(value) is refused
    assert all(p == p.lower() for p in PLACEHOLDERS)


@pytest.mark.slow
def test_surveil_run_warns_of_a_rule_that_could_never_alert(tmp_path):
    """`surveil run` starts (the daemon fails itself where it must) but says what check-config says."""
    path = tmp_path / "person.yaml"
    body = config("      - {id: east-in, type: zone_intrusion, zone: east, classes: [person]}\n")
    path.write_text(
        body + f"mqtt:\n  port: {closed_port()}\n  spool_path: {tmp_path / 'spool.sqlite3'}\n"
        "metrics:\n  listen: 127.0.0.1:0\n"
    )
    log = tmp_path / "run.log"
    process = start_surveil(path, log_path=log)
    try:
        assert wait_until(lambda: "detector ready" in log.read_text() or process.poll() is not None, 120)
    finally:
        stop_surveil(process)
    text = log.read_text()
    assert "detector ready" in text, text[-2000:]
    warning = next(line for line in text.splitlines() if "is not a class" in line)
    assert "WARNING" in warning and "line 7: cameras[0].rules[0].classes: 'person'" in warning, warning
