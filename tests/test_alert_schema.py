"""docs/alert.schema.json: valid itself, met by every alert the analyser makes, broken by wrong payloads.

The scene below is scripted track by track (tracks go straight into ``FrameContext.tracks``) so
that every alerting rule type starts, updates (where the type has updates) and ends.
"""

from __future__ import annotations

import copy
import json

import jsonschema  # the contract is checked with it: a missing package fails this module, never skips it
import numpy as np
import pytest

from surveil.analysis.analyzer import build_analyzer
from surveil.config import CameraConfig, TrackerConfig
from surveil.rules.base import FrameContext
from surveil.sinks.mqtt.publisher import counts_payload
from surveil.types import AlertUpdate, Detections, Track
from tests.support.alert_schema import (
    SCHEMA_PATH,
    schema,
    schema_errors,
    validate_alert,
    validate_camera_status,
    validate_counts,
)

CLASS_NAMES = ["__background__", "person", "backpack"]
W, H, FPS = 480, 360, 10.0
WALL0 = 1_800_000_000.0

CAMERA = {
    "name": "yard",
    "url": "rtsp://camera.invalid/stream",
    "zones": [{"name": "lawn", "polygon": [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]}],
    "lines": [{"name": "gate", "a": [0.9, 0.0], "b": [0.9, 1.0], "forward": "westbound", "backward": "eastbound"}],
    "rules": [
        {
            "id": "lawn-intrusion",
            "type": "zone_intrusion",
            "zone": "lawn",
            "classes": ["person"],
            "update_interval_s": 0.5,
        },
        {
            "id": "lawn-loiter",
            "type": "loitering",
            "zone": "lawn",
            "classes": ["person"],
            "dwell_s": 1,
            "update_interval_s": 0.5,
        },
        {"id": "gate-count", "type": "line_crossing", "line": "gate", "classes": ["person"], "band": 0.05},
        {
            "id": "lawn-crowd",
            "type": "crowding",
            "zone": "lawn",
            "classes": ["person"],
            "min_count": 2,
            "for_s": 0.3,
            "end_after_s": 0.3,
            "update_interval_s": 0.2,
        },
        {"id": "lawn-people", "type": "zone_occupancy", "zone": "lawn", "classes": ["person"]},
        {
            "id": "left-bag",
            "type": "abandoned_object",
            "classes": ["backpack"],
            "stationary_s": 1,
            "update_interval_s": 0.5,
        },
        {
            "id": "tamper",
            "type": "camera_tamper",
            "for_s": 0.5,
            "recover_s": 0.5,
            "learn_s": 1,
            "update_interval_s": 0.1,
        },
        {"id": "health", "type": "stream_health", "for_s": 1, "watch": ["frozen"], "update_interval_s": 0.5},
        {"id": "health-down", "type": "stream_health", "for_s": 1, "watch": ["down"]},
    ],
}

EXPECTED = {
    ("zone_intrusion", "start"),
    ("zone_intrusion", "update"),
    ("zone_intrusion", "end"),
    ("loitering", "start"),
    ("loitering", "update"),
    ("loitering", "end"),
    ("line_crossing", "start"),
    ("line_crossing", "end"),  # a crossing is an instant: it has no updates
    ("crowding", "start"),
    ("crowding", "update"),
    ("crowding", "end"),
    ("abandoned_object", "start"),
    ("abandoned_object", "update"),
    ("abandoned_object", "end"),
    ("camera_tamper", "start"),
    ("camera_tamper", "update"),
    ("camera_tamper", "end"),
    ("stream_health", "start"),
    ("stream_health", "update"),
    ("stream_health", "end"),
}


def _track(
    track_id: int, class_id: int, feet: tuple[float, float], t: float, height: float = 60.0, born: float = 0.0
) -> Track:
    x, y = feet
    return Track(track_id, "yard", class_id, (x - height / 5, y - height, x + height / 5, y), 0.9, born, t, 5, 0)


def _scene_image(step: int, rng: np.random.Generator) -> np.ndarray:
    """A textured view with a little noise (never frozen), a dark spell, then a swapped view."""
    base = np.tile(np.linspace(40, 220, W, dtype=np.float32), (H, 1))
    base += 30 * np.sin(np.arange(H, dtype=np.float32) / 7.0)[:, None]
    if 60 <= step < 66:
        return np.full((H, W, 3), 3, np.uint8)  # covered lens: dark
    if 66 <= step < 80:
        base = 255.0 - base  # another view (inverted): changed
    noisy = base + rng.normal(0, 4, base.shape)
    return np.repeat(np.clip(noisy, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _tracks_at(step: int, t: float) -> list[Track]:
    tracks = []
    if step < 40:  # person 1 walks into the lawn and stays (intrusion, loitering, crowd with person 2)
        tracks.append(_track(1, 1, (200.0, 150.0 + min(step, 10) * 5), t))
    elif step < 44:
        pass  # person 1 lost for 0.4 s ...
    elif step < 55:  # ... and comes back as track 7 close by: folded into the same incidents
        tracks.append(
            _track(7, 1, (205.0 + (step - 44) * 2, 200.0), t, born=44 / FPS)
        )  # a new identity, born after the loss
    if 5 <= step < 30:
        tracks.append(_track(2, 1, (300.0, 200.0 + (step % 3)), t))
    if step < 30:  # person 3 walks west across the gate line, back east, and west again
        x = 470.0 - 6 * step if step < 10 else (410.0 + 6 * (step - 10) if step < 20 else 470.0 - 6 * (step - 20))
        tracks.append(_track(3, 1, (x, 300.0), t))
    if 10 <= step < 45:
        tracks.append(_track(4, 2, (100.0, 320.0), t, height=30.0))  # a backpack put down, then taken
    return tracks


def _analyser(snapshots: bool):
    camera = CameraConfig.model_validate(CAMERA)
    return build_analyzer(camera, TrackerConfig(), CLASS_NAMES, snapshots=snapshots)


def run_scene(snapshots: bool = True) -> list[AlertUpdate]:
    """Every alert update of the scripted scene, in order; ends with a `stopped` close."""
    analyser = _analyser(snapshots)
    rng = np.random.default_rng(7)
    frozen = None
    out: list[AlertUpdate] = []
    step = 0
    for step in range(140):
        t = step / FPS
        image = _scene_image(step, rng)
        if 95 <= step < 120:  # the encoder repeats one picture: frozen stream
            frozen = image if frozen is None else frozen
            image = frozen
        ctx = FrameContext(
            camera="yard",
            now=t,
            ts_wall=WALL0 + t,
            ts_mono=t,
            seq=step,
            width=W,
            height=H,
            image=image,
            detections=Detections.empty(),
            confident=np.zeros(0, bool),
            tracks=tuple(_tracks_at(step, t)),
        )
        out += analyser.process(ctx)
    t = 140 / FPS
    out += analyser.stream_changed(False, "no frame for 10 s", t, WALL0 + t)
    for k in range(1, 16):
        out += analyser.tick(t + k * 0.2, WALL0 + t + k * 0.2)
    out += analyser.close(t + 4.0, WALL0 + t + 4.0)
    return out


@pytest.fixture(scope="module")
def scene_updates() -> list[AlertUpdate]:
    return run_scene()


@pytest.fixture(scope="module")
def scene_payloads(scene_updates: list[AlertUpdate]) -> list[dict]:
    return [json.loads(u.to_json(published_at=WALL0 + 99)) for u in scene_updates]


def test_schema_is_valid_draft_2020_12():
    document = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)
    for name in ("camera_status", "line_counts", "zone_counts", "subject"):
        assert name in document["$defs"]


def test_schema_matches_the_payload_keys():
    """The schema lists exactly the keys AlertUpdate.to_dict writes, all required."""
    from tests.support.alerts import make_alert

    keys = set(make_alert(1).to_dict(published_at=0.0))
    assert set(schema()["properties"]) == keys
    assert set(schema()["required"]) == keys
    assert schema()["additionalProperties"] is False


def test_every_rule_type_and_phase_of_the_scene_validates(scene_payloads: list[dict]):
    seen = {(p["rule_type"], p["phase"]) for p in scene_payloads}
    assert seen == EXPECTED, f"missing {EXPECTED - seen}, unexpected {seen - EXPECTED}"
    for payload in scene_payloads:
        validate_alert(payload)
        validate_alert(json.dumps(payload).encode())  # as received from MQTT


def test_scene_exercises_incident_extras(scene_payloads: list[dict]):
    """The keys the incident book adds: merged_identities (identity swap) and end_reason (close)."""
    merged = [p for p in scene_payloads if p["details"].get("merged_identities")]
    assert {p["rule_type"] for p in merged} >= {"zone_intrusion", "loitering"}
    assert any(p["details"].get("end_reason") == "stopped" for p in scene_payloads)
    assert any(p["snapshot_jpeg_b64"] for p in scene_payloads if p["phase"] == "start")
    assert all(p["snapshot_jpeg_b64"] is None for p in scene_payloads if p["phase"] == "end")
    states = {p["details"]["state"] for p in scene_payloads if p["rule_type"] == "stream_health"}
    assert states == {"frozen", "down"}


def test_incidents_share_one_id_from_start_to_end(scene_payloads: list[dict]):
    by_incident: dict[str, list[str]] = {}
    for p in scene_payloads:
        by_incident.setdefault(p["incident_id"], []).append(p["phase"])
    for incident, phases in by_incident.items():
        assert phases[0] == "start" and phases[-1] == "end", (incident, phases)
        assert set(phases[1:-1]) <= {"update"}, (incident, phases)
    assert len({p["id"] for p in scene_payloads}) == len(scene_payloads)


def test_retained_state_payloads_validate():
    from surveil.sinks.mqtt.publisher import status_payload

    validate_camera_status(status_payload("yard", False, "no frame for 10 s", WALL0))
    validate_camera_status(status_payload("yard", True, "", WALL0))
    with pytest.raises(AssertionError):
        validate_camera_status(
            {"schema_version": 1, "camera": "yard", "up": True, "state": "down", "reason": "", "ts": 1.0}
        )
    reports = []
    analyser = _analyser(snapshots=False)
    analyser.on_state = lambda camera, report, previous: reports.append(report)
    for step in range(30):
        t = step / FPS
        ctx = FrameContext(
            camera="yard",
            now=t,
            ts_wall=WALL0 + t,
            ts_mono=t,
            seq=step,
            width=W,
            height=H,
            image=np.zeros((H, W, 3), np.uint8),
            detections=Detections.empty(),
            confident=np.zeros(0, bool),
            tracks=tuple(_tracks_at(step, t)),
        )
        analyser.process(ctx)
    kinds = {r.kind for r in reports}
    assert kinds == {"lines", "zones"}
    for report in reports:  # the body surveil.service.pipeline.Pipeline._publish_state builds
        validate_counts(
            report.kind, counts_payload("yard", report.kind, report.name, report.rule, report.values, WALL0)
        )


def _good() -> dict:
    from tests.support.alerts import make_alert

    return make_alert(3).to_dict(published_at=WALL0)


def _without(key: str):
    def change(p: dict) -> None:
        del p[key]

    return change


def _set(path: tuple, value):
    def change(p: dict) -> None:
        target = p
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


BROKEN = {
    "missing incident_id": _without("incident_id"),
    "missing details": _without("details"),
    "bad phase": _set(("phase",), "begin"),
    "bad severity": _set(("severity",), "fatal"),
    "unknown rule_type": _set(("rule_type",), "zone_occupancy"),
    "extra field": _set(("track_id",), 12),
    "old schema version": _set(("schema_version",), 1),
    "id not a uuid": _set(("id",), "alert-1"),
    "empty incident_id": _set(("incident_id",), ""),
    "negative duration": _set(("duration_s",), -1.0),
    "frame_seq a string": _set(("frame_seq",), "12"),
    "zone rule without zone": _set(("zone",), None),
    "zone rule with a line": _set(("line",), "gate"),
    "extra detail": _set(("details", "frames_inside"), 3),
    "dwell_s a string": _set(("details", "dwell_s"), "3"),
    "subject extra key": _set(("subjects", 0, "colour"), "red"),
    "subject box of 3": _set(("subjects", 0, "box"), [1.0, 2.0, 3.0]),
    "score above 1": _set(("subjects", 0, "score"), 1.5),
    "no subject": _set(("subjects",), []),
    "snapshot on end": lambda p: p.update(phase="end", snapshot_jpeg_b64="/9j/4AAQSkZJRg=="),
    "snapshot not base64": _set(("snapshot_jpeg_b64",), "not base64!"),
    "line_crossing without direction": lambda p: p.update(
        rule_type="line_crossing", zone=None, line="gate", details={"in": 1, "out": 0}
    ),
    "line_crossing count negative": lambda p: p.update(
        rule_type="line_crossing", zone=None, line="gate", details={"direction": "in", "counts": {"in": -1, "out": 0}}
    ),
    "tamper unknown symptom": lambda p: p.update(
        rule_type="camera_tamper", zone=None, subjects=[], details={"symptoms": ["foggy"]}
    ),
    "tamper with a subject": lambda p: p.update(rule_type="camera_tamper", zone=None, details={"symptoms": ["dark"]}),
    "frozen without frozen_s": lambda p: p.update(
        rule_type="stream_health", zone=None, subjects=[], details={"state": "frozen"}
    ),
    "down with frozen_s": lambda p: p.update(
        rule_type="stream_health", zone=None, subjects=[], details={"state": "down", "reason": "x", "frozen_s": 1.0}
    ),
    "crowding without peak": lambda p: p.update(rule_type="crowding", details={"count": 3}),
    "merged_identities zero": _set(("details", "merged_identities"), 0),
}


def test_a_good_payload_validates():
    assert schema_errors(_good()) == []


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_payloads_fail(name: str):
    payload = copy.deepcopy(_good())
    BROKEN[name](payload)
    assert schema_errors(payload), f"{name}: the schema accepted {payload}"
    with pytest.raises(AssertionError, match=r"breaks docs/alert\.schema\.json"):
        validate_alert(payload)


def test_line_crossing_and_forced_end_variants_validate():
    crossing = {
        **_good(),
        "rule_type": "line_crossing",
        "zone": None,
        "line": "gate",
        "details": {"direction": "in", "counts": {"in": 1, "out": 0}},
    }
    assert schema_errors(crossing) == []
    stopped = {
        **crossing,
        "phase": "end",
        "details": {**crossing["details"], "end_reason": "stopped", "merged_identities": 2},
    }
    assert schema_errors(stopped) == []


def test_in_process_payloads_are_counted(request: pytest.FixtureRequest):
    """The conftest wrapper is on: it counted the payloads this module built."""
    from tests.conftest import ALERT_SCHEMA_STATS

    assert ALERT_SCHEMA_STATS.enabled
    before = ALERT_SCHEMA_STATS.checked
    _good()
    assert ALERT_SCHEMA_STATS.checked == before + 1


def test_examples_in_mqtt_doc_validate():
    """Every JSON example in docs/mqtt.md meets the schema part it illustrates."""
    import re

    text = (SCHEMA_PATH.parent / "mqtt.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    kinds = []
    for block in blocks:
        if "phase" in block:
            validate_alert(block)
            kinds.append(block["phase"])
        elif "up" in block:
            validate_camera_status(block)
            kinds.append("status")
        else:
            kind = "lines" if "line" in block else "zones"
            validate_counts(kind, block)
            kinds.append(kind)
    assert sorted(kinds) == ["end", "lines", "start", "status", "update", "zones"]
