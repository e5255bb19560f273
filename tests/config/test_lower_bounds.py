"""Issue 18, item 7: every accepted value works, at the low end too.

``tracker.measurement_noise: 1e-300`` passed check-config and raised LinAlgError on every frame;
``web.max_fps: 1e-12`` ended the stream with OverflowError. The class: an exclusive bound (``gt=0``)
admits values as close to it as a float goes. Mechanism: every number in the schema has an
inclusive, realistic lower bound (the same walk as tests/config/test_ranges.py); values under it
are refused by the real check-config; and the parts that compute with these numbers (the
trackers, the live stream) run at every lower bound.
"""

from __future__ import annotations

import http.client
import math
import threading

import annotated_types
import numpy as np
import pytest
import yaml

from surveil.config import TrackerConfig, WebConfig
from surveil.tracking import TRACKER_KINDS, make_tracker
from surveil.types import Detections
from tests.config.test_ranges import NUMERIC_FIELDS, _bounds
from tests.support.surveil_cli import check_config

FIELDS = [(label, name, info) for label, _model, _wrap, name, info in NUMERIC_FIELDS]


@pytest.mark.parametrize(("label", "name", "info"), FIELDS, ids=[f"{f[0]}.{f[1]}" for f in FIELDS])
def test_every_lower_bound_is_inclusive(label, name, info):
    """``gt=0`` admits 1e-300: a lower bound must be ``ge`` a value that is itself known to work."""
    assert not any(isinstance(m, annotated_types.Gt) for m in info.metadata), f"{label}.{name}: use ge=, not gt="
    low, high = _bounds(info)
    assert low is not None and high is not None and low <= high  # equal: an option fixed for this rule


def _below(low: float, annotation: object) -> float:
    if annotation is int or int in getattr(annotation, "__args__", ()):
        return low - 1
    return low / 1000 if low > 0 else -1e-12


def test_values_under_every_lower_bound_are_refused_by_check_config(tmp_path):
    files = {}
    for index, (label, _model, wrap, name, info) in enumerate(NUMERIC_FIELDS):
        low, _high = _bounds(info)
        assert low is not None
        for value in {_below(low, info.annotation), -1e-300, 1e-300 if low > 0 else -1.0}:
            if value >= low:
                continue
            path = tmp_path / f"{index:03d}-{name}-{value!r}.yaml"
            path.write_text(yaml.safe_dump(wrap({name: value})))
            files[path] = (label, name, value)
    result = check_config(*files)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for path, (label, name, value) in files.items():
        message = result.message_for(path)
        assert "invalid configuration" in message and name in message, f"{label}.{name}={value} accepted"


def test_every_lower_bound_is_accepted_by_check_config(tmp_path):
    skip = {("cameras[0]", "reconnect_max_s"), ("tracker", "high_score")}  # bounded by another option
    files = {}
    for index, (label, _model, wrap, name, info) in enumerate(NUMERIC_FIELDS):
        low, _high = _bounds(info)
        if (label, name) in skip:
            continue
        path = tmp_path / f"{index:03d}-{name}.yaml"
        path.write_text(yaml.safe_dump(wrap({name: low})))
        files[path] = (label, name, low)
    (tmp_path / "x.mp4").touch()  # check-config requires a file camera's video to exist
    result = check_config(*files)
    for path, (label, name, low) in files.items():
        assert "OK" in result.message_for(path), f"{label}.{name}={low}: {result.message_for(path)}"


# ---------------------------------------------------------------- the tracker at its bounds

_TRACKER_FLOATS = [
    name for name, info in TrackerConfig.model_fields.items() if info.annotation in (int, float) and name != "history"
]


def _tracker_configs() -> list[tuple[str, TrackerConfig]]:
    """Each number alone at its lower bound, all at once, and the noises at opposite ends."""
    lows = {name: _bounds(TrackerConfig.model_fields[name])[0] for name in _TRACKER_FLOATS}
    highs = {name: _bounds(TrackerConfig.model_fields[name])[1] for name in _TRACKER_FLOATS}
    ordered = {"high_score", "low_score"}  # low_score <= high_score: lowering high_score alone is refused
    out = [
        (f"{name}={lows[name]}", TrackerConfig(**{name: lows[name]})) for name in _TRACKER_FLOATS if name not in ordered
    ]
    everything = {name: lows[name] for name in _TRACKER_FLOATS}
    out.append(("all at the lower bound", TrackerConfig(**everything)))
    out.append(
        (
            "tiny measurement, huge acceleration noise",
            TrackerConfig(measurement_noise=lows["measurement_noise"], acceleration_noise=highs["acceleration_noise"]),
        )
    )
    out.append(
        (
            "huge measurement, tiny acceleration noise",
            TrackerConfig(measurement_noise=highs["measurement_noise"], acceleration_noise=lows["acceleration_noise"]),
        )
    )
    return out


def _algorithms() -> list[str]:
    return list(TRACKER_KINDS)


def _scene(frames: int, rng: np.random.Generator):
    """Three boxes moving with jitter plus one still box, detections dropped now and then, uneven frame
    gaps (none at all: two frames with one timestamp, as a batch or a paused file gives)."""
    now = 0.0
    for index in range(frames):
        now += float(rng.choice([0.0, 1e-6, 1 / 30, 0.2, 1.0, 5.0], p=[0.05, 0.05, 0.75, 0.08, 0.05, 0.02]))
        boxes = []
        for k in range(3):
            if rng.random() < 0.15:
                continue
            x, y = 50 + 100 * k + 3 * index, 100 + 20 * math.sin(index / 7 + k)
            boxes.append(np.array([x, y, x + 40, y + 90]) + rng.normal(0, 1.5, 4))
        boxes.append(np.array([500.0, 300.0, 540.0, 390.0]))  # does not move at all
        xyxy = np.array(boxes, np.float32).reshape(-1, 4)
        yield now, Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.zeros(len(xyxy), np.int64))


@pytest.mark.parametrize(("label", "config"), _tracker_configs(), ids=[c[0] for c in _tracker_configs()])
def test_the_tracker_runs_at_every_lower_bound(label, config):
    for algorithm in _algorithms():
        try:
            tracker = make_tracker(config.model_copy(update={"kind": algorithm}), "cam")
        except ImportError:
            continue  # an optional tracker that is not installed
        for now, detections in _scene(300, np.random.default_rng(7)):
            for track in tracker.update(detections, now):
                assert np.isfinite(track.xyxy).all(), f"{algorithm} {label}: {track.xyxy}"


# ---------------------------------------------------------------- the live stream at its lowest rate


def test_live_stream_at_the_lowest_max_fps_sends_and_ends_cleanly():
    from prometheus_client import CollectorRegistry

    from surveil.web.server import BOUNDARY, WebServer
    from tests.test_web import FakeCameras

    low, _high = _bounds(WebConfig.model_fields["max_fps"])
    provider = FakeCameras()
    provider.advance("gate")
    server = WebServer("127.0.0.1", 0, provider, registry=CollectorRegistry(), config=WebConfig(max_fps=low)).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # hang guard
        connection.request("GET", "/cameras/gate/live.mjpeg")
        response = connection.getresponse()
        assert response.status == 200
        assert response.fp.readline() == f"--{BOUNDARY}\r\n".encode()
        assert response.fp.readline().lower().startswith(b"content-type: image/jpeg")
        closer = threading.Thread(target=server.close)
        closer.start()  # the stream waits 1/max_fps between frames: closing must still end it
        closer.join(10)
        assert not closer.is_alive()
        connection.close()
    finally:
        server.close()
