"""The daemon's configuration: one YAML file validated by pydantic.

Every option is documented once, here, in its field description; ``docs/config.md`` is
generated from this schema (``python -m surveil.config --markdown``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v2_fpn",
)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message is meant for a person."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


RelPoint = Annotated[
    tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]],
    Field(description="A point [x, y] in relative image coordinates (0 = left/top, 1 = right/bottom)."),
]


class ZoneConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Zone name, unique per camera; used in alerts and topics.")
    polygon: list[RelPoint] = Field(
        min_length=3,
        description="Polygon vertices [[x, y], ...] in relative 0-1 coordinates, at least 3, not self-intersecting.",
    )
    classes: list[str] = Field(
        default_factory=list, description="Class names that count in this zone; empty = every class the detector keeps."
    )
    min_frames: int = Field(
        default=3, ge=1, description="Consecutive processed frames a track's anchor must be inside before it counts (inertia against flicker)."
    )
    anchor: Literal["bottom_center", "center"] = Field(
        default="bottom_center", description="Which point of a box decides whether it is inside: feet (bottom_center) or centre."
    )
    intrusion: bool = Field(default=True, description="Raise a `zone_intrusion` alert, once per track, when an object enters.")
    severity: Literal["info", "warning", "critical"] = Field(default="warning", description="Severity carried by this zone's alerts.")

    @field_validator("polygon")
    @classmethod
    def _polygon_is_simple(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if _self_intersects(polygon):
            raise ValueError("polygon edges cross each other; list the vertices in order around the shape")
        if _polygon_area(polygon) < 1e-6:
            raise ValueError("polygon has no area (points are collinear or repeated)")
        return polygon


class CameraConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Camera name: letters, digits, '_' or '-'; used in topics, metrics and alerts.")
    url: str | int = Field(
        description="Where frames come from: an `rtsp://` / `http(s)://` URL, a video file path (relative to this config file), "
        "a webcam index (0) or a device path (/dev/video0)."
    )
    enabled: bool = Field(default=True, description="Set false to keep a camera in the file without opening it.")
    fps_limit: float | None = Field(
        default=None, gt=0, description="Hand at most this many frames per second to the detector; extra frames are skipped (not counted as drops)."
    )
    realtime: bool = Field(default=True, description="Files only: play at the file's own frame rate (true) or as fast as decoding allows (false).")
    loop: bool = Field(default=True, description="Files only: start again at the end of the file.")
    open_timeout_s: float = Field(default=5.0, gt=0, description="Give up opening a stream after this many seconds (OpenCV CAP_PROP_OPEN_TIMEOUT_MSEC).")
    read_timeout_s: float = Field(default=5.0, gt=0, description="Give up one blocked read after this many seconds (OpenCV CAP_PROP_READ_TIMEOUT_MSEC).")
    stall_timeout_s: float = Field(
        default=10.0, gt=0, description="A camera that delivers no new frame for this long is marked down and reopened."
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay; doubles on each failure (with jitter).")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Longest reconnect delay.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Zones on this camera's image.")

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        _require_unique("zone names must be unique per camera", [z.name for z in self.zones])
        return self

    @property
    def kind(self) -> Literal["stream", "file", "device"]:
        return camera_kind(self.url)


class DetectorConfig(_Model):
    architecture: Literal[ARCHITECTURES] = Field(  # type: ignore[valid-type]
        default="fasterrcnn_mobilenet_v3_large_320_fpn",
        description="torchvision Faster R-CNN variant. Ignored when `weights` is a checkpoint, which names its own.",
    )
    weights: str = Field(
        default="coco",
        description="`coco` = torchvision's COCO-pretrained weights (downloaded once into $TORCH_HOME/hub/checkpoints), "
        "or a path to a checkpoint written by `surveil train` (relative to this config file).",
    )
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`.")
    batch_size: int = Field(default=4, ge=1, le=64, description="Most frames (one per camera) per forward pass.")
    max_wait_ms: float = Field(default=40.0, ge=0, description="Flush a partial batch once its oldest frame has waited this long.")
    score_threshold: float = Field(default=0.5, ge=0, le=1, description="Drop detections scoring below this.")
    class_score_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-class score thresholds overriding `score_threshold`, e.g. {person: 0.6}."
    )
    classes: list[str] = Field(default_factory=list, description="Class names to keep; empty = all. E.g. [person, car].")
    min_size: int | None = Field(default=None, ge=64, description="Network input: shorter side in pixels (default: the architecture's or checkpoint's).")
    max_size: int | None = Field(default=None, ge=64, description="Network input: cap on the longer side in pixels.")
    half: bool = Field(default=True, description="Run under fp16 autocast on CUDA (ignored on CPU).")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for inference (torch.set_num_threads); default: torch's choice.")

    @field_validator("class_score_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"thresholds must lie in [0, 1]: {bad}")
        return value


class TrackerConfig(_Model):
    iou_threshold: float = Field(default=0.3, gt=0, lt=1, description="Least IoU between a track's box and a detection to match them.")
    max_missed: int = Field(default=15, ge=0, description="Frames a track survives without a matching detection.")
    min_hits: int = Field(default=2, ge=1, description="Matched frames before a track is confirmed and shown to rules.")
    history: int = Field(default=64, ge=2, description="Recent anchor points kept per track.")
    max_center_distance: float = Field(
        default=0.6,
        ge=0,
        description="Second association stage for low frame rates: match what IoU left unmatched when box centres are "
        "closer than this many box heights (0 = off).",
    )


class MqttConfig(_Model):
    enabled: bool = Field(default=True, description="Publish alerts and status over MQTT.")
    host: str = Field(default="localhost", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    client_id: str = Field(default="surveil", min_length=1, description="MQTT client id; unique per daemon on one broker.")
    topic_prefix: str = Field(default="surveil", pattern=r"^[^#+\s]+$", description="First level(s) of every topic; no wildcards.")
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of alert messages.")
    username: str | None = Field(default=None, description="Broker user name, if the broker requires one.")
    password: SecretStr | None = Field(default=None, description="Broker password; use ${ENV_VAR} rather than writing it here.")
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive interval in seconds.")
    tls: bool = Field(default=False, description="Connect with TLS using the system's CA certificates.")
    spool_path: str = Field(
        default="surveil-spool.sqlite3",
        description="SQLite file holding alerts until the broker acknowledges them; replayed in order after an outage (relative to `state_dir`).",
    )
    spool_max_alerts: int = Field(default=100_000, ge=100, description="Oldest spooled alerts are dropped (and counted) beyond this many.")


class MetricsConfig(_Model):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics over HTTP.")
    listen: str = Field(default="127.0.0.1:9108", pattern=r"^[^:\s]*:\d{1,5}$", description="host:port to serve /metrics on; port 0 = any free port.")

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Least severe level written.")
    format: Literal["text", "json"] = Field(default="text", description="`text` for people, `json` (one object per line) for log shippers.")


class AlertsConfig(_Model):
    jsonl_path: str | None = Field(default=None, description="Append every alert as one JSON line to this file (relative to `state_dir`); unset = off.")
    snapshot: bool = Field(default=False, description="Attach a JPEG of the frame (base64) to each alert.")


class Config(_Model):
    cameras: list[CameraConfig] = Field(min_length=1, description="The cameras to watch.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="The object detector.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Per-camera multi-object tracker.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker for alerts and status.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert content and local sinks.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus endpoint.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    state_dir: str | None = Field(
        default=None,
        description="Folder for files the daemon writes (alert spool, JSON-lines alerts) when their paths are relative. "
        "Default: $STATE_DIRECTORY when systemd sets it (StateDirectory=), else this config file's folder. Relative to this config file.",
    )
    watchdog_stall_s: float = Field(
        default=60.0, gt=0, description="Stop pinging the systemd watchdog if the detector has finished no batch for this long while frames wait."
    )

    @model_validator(mode="after")
    def _unique_cameras(self) -> Config:
        _require_unique("camera names must be unique", [c.name for c in self.cameras])
        return self

    @property
    def enabled_cameras(self) -> list[CameraConfig]:
        return [c for c in self.cameras if c.enabled]


# ---------------------------------------------------------------- checks


def _require_unique(message: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{message}; repeated: {', '.join(repeated)}")



def _polygon_area(points: list[tuple[float, float]]) -> float:
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2.0


def _segments_cross(p1, p2, p3, p4) -> bool:
    def orient(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
    d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
    return d1 * d2 < 0 and d3 * d4 < 0


def _self_intersects(points: list[tuple[float, float]]) -> bool:
    edges = list(zip(points, points[1:] + points[:1]))
    for i, (a, b) in enumerate(edges):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # first and last edge share a vertex
            if _segments_cross(a, b, *edges[j]):
                return True
    return False


# ---------------------------------------------------------------- camera URLs


def camera_kind(url: str | int) -> Literal["stream", "file", "device"]:
    if isinstance(url, int) or str(url).isdigit() or str(url).startswith("/dev/video"):
        return "device"
    if re.match(r"^[a-z][a-z0-9+.-]*://", str(url)):
        return "stream"
    return "file"


# ---------------------------------------------------------------- loading

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; an unset VAR without default is an error."""
    env = os.environ if environ is None else environ
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            continue

        def replace(match: re.Match[str], number: int = number) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"line {number}: environment variable ${{{name}}} is not set (write ${{{name}:-default}} to give a default)")

        lines[number - 1] = _ENV_PATTERN.sub(replace, line)
    return "".join(lines)


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, substitute, parse and validate a config file; relative paths become absolute.

    Raises ConfigError with a message naming the file, the YAML line, the field and what was expected.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    try:
        text = substitute_env(raw, environ)
    except ConfigError as exc:
        raise ConfigError(f"{path} {exc}") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a YAML mapping with at least a `cameras:` list")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, root)) from None
    return resolve_paths(config, path.resolve().parent, (os.environ if environ is None else environ).get("STATE_DIRECTORY"))


def format_validation_error(path: Path, exc: ValidationError, root: yaml.Node | None) -> str:
    lines = [f"{path}: invalid configuration ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        field = _dotted(loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"line {line}: " if line else ""
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown option (check the spelling; see docs/config.md for the options)"
        elif error["type"] == "missing":
            message = "required option is missing"
        got = error.get("input")
        if error["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)):
            message += f" (got {got!r})"
        lines.append(f"  {where}{field}: {message}")
    return "\n".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-after") and "[" not in part:
            out += ("." if out else "") + part
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child = value if not isinstance(value, yaml.ScalarNode) or value.value != "" else key
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            if isinstance(part, str) and ("function" in part or "[" in part):
                continue  # pydantic's validator/union labels are not YAML keys
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _resolve(base: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(config: Config, base: Path, systemd_state_dir: str | None = None) -> Config:
    """Make paths absolute: inputs against the config file's folder, outputs against the state folder."""
    if config.state_dir:
        state = Path(_resolve(base, config.state_dir))
    elif systemd_state_dir:
        state = Path(systemd_state_dir.split(":")[0])  # systemd lists several folders with ':'
    else:
        state = base
    cameras = [
        c.model_copy(update={"url": _resolve(base, c.url)}) if c.kind == "file" else c for c in config.cameras
    ]
    detector = config.detector
    if detector.weights != "coco":
        detector = detector.model_copy(update={"weights": _resolve(base, detector.weights)})
    mqtt = config.mqtt.model_copy(update={"spool_path": _resolve(state, config.mqtt.spool_path)})
    alerts = config.alerts
    if alerts.jsonl_path:
        alerts = alerts.model_copy(update={"jsonl_path": _resolve(state, alerts.jsonl_path)})
    return config.model_copy(
        update={"cameras": cameras, "detector": detector, "mqtt": mqtt, "alerts": alerts, "state_dir": str(state)}
    )


# ---------------------------------------------------------------- reference doc


def _type_name(annotation: Any) -> str:
    if annotation == list[RelPoint]:
        return "list[[x, y]]"
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    text = re.sub(r"\b(?:typing|pydantic\.types|annotated_types|surveil\.config|__main__)\.", "", text)
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    return text.replace("|", "\\|")


def markdown_reference() -> str:
    """The config reference, generated from the field descriptions above."""
    out = ["# Configuration reference", "", "Generated by `python -m surveil.config --markdown` from `surveil/config.py`.", ""]
    sections: list[tuple[str, type[BaseModel]]] = [
        ("top level", Config),
        ("cameras[]", CameraConfig),
        ("cameras[].zones[]", ZoneConfig),
        ("detector", DetectorConfig),
        ("tracker", TrackerConfig),
        ("mqtt", MqttConfig),
        ("alerts", AlertsConfig),
        ("metrics", MetricsConfig),
        ("logging", LoggingConfig),
    ]
    for title, model in sections:
        out += [f"## `{title}`", "", "| option | type | default | meaning |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True) if not info.is_required() else None
            shown = "required" if info.is_required() else ("see below" if isinstance(default, BaseModel) else repr(default))
            out.append(f"| `{name}` | `{_type_name(info.annotation)}` | `{shown}` | {info.description or ''} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--markdown"]:
        print(markdown_reference())
