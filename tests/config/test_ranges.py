"""Issue 7, class 3: every accepted value works at run time.

Mechanism: ``allow_inf_nan=False`` in the config models' shared ``model_config`` (no option
accepts inf or nan), and a realistic lower and upper bound on every number. The schema test
below fails when a new numeric option has no bounds; the extreme-value table goes through the
real `check-config`; two daemons run with every option at its upper and at its lower bound."""

from __future__ import annotations

import math
import threading
import time
import typing
from pathlib import Path

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from surveil.config import Config, base, load_config, rules
from surveil.config import schema as cfg
from surveil.service.daemon import Daemon
from surveil.service.metrics import Metrics
from tests.support.polling import wait_until
from tests.support.scene import BlobDetector, make_scene_clip
from tests.support.surveil_cli import check_config

# Where a model lives in a config file, and the smallest valid body around it.
_RULE_NEEDS = {
    "zone_intrusion": {"zone": "z"},
    "loitering": {"zone": "z", "dwell_s": 10},
    "line_crossing": {"line": "l"},
    "crowding": {"zone": "z", "min_count": 2},
    "zone_occupancy": {"zone": "z"},
    "abandoned_object": {"classes": ["bag"]},
    "camera_tamper": {},
    "stream_health": {},
}
_CAMERA = {
    "name": "a",
    "url": "x.mp4",
    "zones": [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}],
    "lines": [{"name": "l", "a": [0, 0.5], "b": [1, 0.5]}],
}


def _sections() -> list[tuple[str, type[BaseModel], typing.Callable[[dict], dict]]]:
    """(label, model, wrap) where wrap(values) is a whole config with ``values`` in that model."""
    out = [
        ("top", Config, lambda v: {"cameras": [_CAMERA], **v}),
        ("cameras[0]", cfg.CameraConfig, lambda v: {"cameras": [{**_CAMERA, **v}]}),
        (
            "schedule",
            rules.ScheduleConfig,
            lambda v: {
                "cameras": [{**_CAMERA, "rules": [{"id": "r", "type": "zone_intrusion", "zone": "z", "schedule": v}]}]
            },
        ),
    ]
    for name, model in Config.model_fields.items():
        annotation = model.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.append((name, annotation, lambda v, name=name: {"cameras": [_CAMERA], name: v}))
    for model in rules.RULE_CONFIGS:
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        out.append(
            (
                f"rules[{kind}]",
                model,
                lambda v, kind=kind: {
                    "cameras": [{**_CAMERA, "rules": [{"id": "r", "type": kind, **_RULE_NEEDS[kind], **v}]}]
                },
            )
        )
    return out


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation)
    if args and type(None) in args:
        return any(_numeric(a) for a in args if a is not type(None))
    return annotation in (int, float)


def _bounds(info) -> tuple[float | None, float | None]:
    low = high = None
    for item in info.metadata:
        if isinstance(item, (annotated_types.Ge, annotated_types.Gt)):
            low = getattr(item, "ge", getattr(item, "gt", None))
        if isinstance(item, (annotated_types.Le, annotated_types.Lt)):
            high = getattr(item, "le", getattr(item, "lt", None))
    return low, high


NUMERIC_FIELDS = [
    (label, model, wrap, name, info)
    for label, model, wrap in _sections()
    for name, info in model.model_fields.items()
    if _numeric(info.annotation)
]


@pytest.mark.parametrize(("label", "name"), [(f[0], f[3]) for f in NUMERIC_FIELDS])
def test_every_number_has_a_realistic_range(label, name):
    info = next(f[4] for f in NUMERIC_FIELDS if f[0] == label and f[3] == name)
    low, high = _bounds(info)
    assert low is not None and high is not None, f"{label}.{name} needs ge/gt and le/lt bounds"
    assert abs(high) <= 10_000_000 and abs(low) <= 10_000_000


def test_inf_and_nan_are_refused_by_the_shared_model_config():
    assert base._Model.model_config.get("allow_inf_nan") is False


EXTREMES = [math.inf, -math.inf, math.nan, 1e300, -1e300]


def test_extreme_values_rejected_by_check_config(tmp_path):
    """Every numeric option x {inf, -inf, nan, 1e300, -1e300}, all files in one real check-config run."""
    files = {}
    for index, (label, _model, wrap, name, _info) in enumerate(NUMERIC_FIELDS):
        for value in EXTREMES:
            path = tmp_path / f"{index:03d}-{label.replace('[', '_').replace(']', '')}-{name}-{value}.yaml"
            path.write_text(yaml.safe_dump(wrap({name: value})))
            files[path] = (label, name, value)
    result = check_config(*files)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for path, (label, name, value) in files.items():
        message = result.message_for(path)
        assert "invalid configuration" in message and name in message, f"{label}.{name}={value} accepted:\n{message}"


def test_upper_bounds_are_accepted(tmp_path):
    """The largest value of each option (alone) is valid, so the runtime tests below use reachable values."""
    skip = {("cameras[0]", "reconnect_min_s"), ("tracker", "low_score")}  # bounded by another option
    files = {}
    for index, (label, _model, wrap, name, info) in enumerate(NUMERIC_FIELDS):
        _low, high = _bounds(info)
        is_lt = any(isinstance(m, annotated_types.Lt) for m in info.metadata)
        if (label, name) in skip or is_lt or (label.startswith("rules[") and name in ("end_below",)):
            continue
        path = tmp_path / f"{index:03d}-{name}.yaml"
        path.write_text(yaml.safe_dump(wrap({name: high})))
        files[path] = (label, name, high)
    (tmp_path / "x.mp4").touch()  # check-config requires a file camera's video to exist
    result = check_config(*files)
    for path, (label, name, high) in files.items():
        assert "OK" in result.message_for(path), f"{label}.{name}={high}: {result.message_for(path)}"


# ---------------------------------------------------------------- the daemon at the bounds


def _extreme_config(tmp_path: Path, clip: Path, broker, side: str) -> Path:
    top = side == "upper"
    camera_limits = {
        "fps_limit": 1000 if top else 0.01,
        "open_timeout_s": 300 if top else 0.1,
        "read_timeout_s": 300 if top else 0.1,
        "stall_timeout_s": 3600 if top else 0.5,
        "reconnect_min_s": 300 if top else 0.01,
        "reconnect_max_s": 3600 if top else 0.01,
    }
    config = {
        "cameras": [
            {"name": "scene", "url": str(clip), "loop": True, **camera_limits},
            {"name": "missing", "url": str(tmp_path / "missing.mp4"), **camera_limits},
            {"name": "refused", "url": "rtsp://127.0.0.1:1/stream", **camera_limits},
        ],
        "detector": {"batch_size": 64 if top else 1, "max_wait_ms": 1000 if top else 0},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "keepalive_s": 3600 if top else 5,
            "spool_max_alerts": 10_000_000 if top else 100,
            "spool_path": str(tmp_path / "spool.sqlite3"),
        },
        "metrics": {"listen": "127.0.0.1:0"},
        "watchdog_stall_s": 86400 if top else 1,
    }
    path = tmp_path / f"{side}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_daemon_runs_with_every_option_at_a_bound(tmp_path, mosquitto_broker, side):
    clip = make_scene_clip(tmp_path / "scene.mp4", loops=3)
    path = _extreme_config(tmp_path, clip.path, mosquitto_broker, side)
    metrics = Metrics()
    daemon = Daemon(path, load_config(path), metrics=metrics, detector=BlobDetector())
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    value = metrics.registry.get_sample_value
    try:
        assert wait_until(lambda: value("surveil_mqtt_connected") == 1, 15), "MQTT never connected"
        assert wait_until(lambda: (value("surveil_frames_processed_total", {"camera": "scene"}) or 0) >= 1, 20)
        assert wait_until(
            lambda: (
                (value("surveil_camera_reconnects_total", {"camera": "refused"}) or 0) >= (0 if side == "upper" else 3)
            ),
            10,
        )
        time.sleep(1.5)
        health = daemon.pipeline.housekeeping()
        assert health.threads_alive, health.dead_threads
        assert thread.is_alive()
    finally:
        daemon.stop_requested.set()
        thread.join(timeout=20)  # systemd's TimeoutStopSec: a stop that takes longer is killed
    assert not thread.is_alive() and result == [0]
