"""The daemon's configuration: one YAML file validated by pydantic.

Every option is documented once, here and in :mod:`surveil.config.rules`, in its field
description; ``docs/config.md`` is generated from these models (``python -m surveil.config
--markdown``, :mod:`surveil.config.reference`). Loading a file is :mod:`surveil.config.loader`.
"""

from __future__ import annotations

import re
import socket
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from surveil.config.base import NAME_PATTERN, _Model
from surveil.config.rules import LineCrossingRuleConfig, RuleConfig
from surveil.geometry import polygon_area, polygon_self_intersects
from surveil.service.sharding import owner

MAX_POLYGON_POINTS = 256
MAX_ZONES = 64
MAX_RULES = 64
MAX_CAMERAS = 256
ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v2_fpn",
)


RelPoint = Annotated[
    tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]],
    Field(description="A point [x, y] in relative image coordinates (0 = left/top, 1 = right/bottom)."),
]


_MOVED_TO_RULES = ("intrusion", "min_frames", "classes", "severity", "anchor")


class ZoneConfig(_Model):
    name: str = Field(
        pattern=NAME_PATTERN, description="Zone name, unique per camera; rules refer to it, alerts and topics carry it."
    )
    polygon: list[RelPoint] = Field(
        min_length=3,
        max_length=MAX_POLYGON_POINTS,
        description=f"Polygon vertices [[x, y], ...] in relative 0-1 coordinates, 3 to {MAX_POLYGON_POINTS}, not self-intersecting.",
    )

    @model_validator(mode="before")
    @classmethod
    def _rule_options_moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [k for k in _MOVED_TO_RULES if k in data]
            if moved:
                name = data.get("name", "ZONE")
                raise ValueError(
                    f"zones are geometry only now; {', '.join(moved)} moved to the camera's `rules:` list. Write e.g.\n"
                    f"      rules:\n        - {{id: {name}-intrusion, type: zone_intrusion, zone: {name}, classes: [person], min_frames: 3}}\n"
                    "    (see docs/rules.md)"
                )
        return data

    @field_validator("polygon")
    @classmethod
    def _polygon_is_simple(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if polygon_self_intersects(polygon):
            raise ValueError("polygon edges cross each other; list the vertices in order around the shape")
        if polygon_area(polygon) < 1e-6:
            raise ValueError("polygon has no area (points are collinear or repeated)")
        return polygon


class LineConfig(_Model):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Line name, unique per camera; rules refer to it, counts are published under it.",
    )
    a: RelPoint = Field(description="Start point [x, y] of the directed line, relative 0-1 coordinates.")
    b: RelPoint = Field(description="End point [x, y] of the directed line.")
    forward: str = Field(
        default="in",
        pattern=NAME_PATTERN,
        description="Name of a crossing from the left of a->b to its right, as drawn on the image (for a=[0,y], b=[1,y]: top to bottom).",
    )
    backward: str = Field(default="out", pattern=NAME_PATTERN, description="Name of a crossing the other way.")

    @model_validator(mode="after")
    def _check(self) -> LineConfig:
        if abs(self.a[0] - self.b[0]) + abs(self.a[1] - self.b[1]) < 1e-3:
            raise ValueError("a and b must be different points")
        if self.forward == self.backward:
            raise ValueError("forward and backward need different names")
        return self


class MotionConfig(_Model):
    enabled: bool = Field(
        default=False,
        description="Skip the detector on frames without motion (a cheap check on a 160-px-wide grey frame); "
        "skipped frames still reach the tracker (empty) and the time-based rules.",
    )
    threshold: int = Field(
        default=25,
        ge=1,
        le=255,
        description="Grey levels (1-255) a pixel must differ from the running background; 15-40 suits most cameras "
        "(lower for dim or low-contrast scenes, higher for noisy sensors).",
    )
    min_area: float = Field(
        default=0.002,
        ge=0.0,
        le=0.5,
        description="Least moving blob, as a fraction of the image (0-0.5); 0.001-0.01 typical. A distant person "
        "in a 480x360 view covers about 0.003.",
    )
    keepalive_s: float = Field(
        default=2.0,
        ge=0.1,
        le=30,
        description="While something may be tracked (a detector call found something within the last "
        "`tracker.lost_after_s` + `keepalive_s`), run the detector at least this often without motion (0.1-30 s), so "
        "stationary objects keep their tracks (loitering, abandoned objects); must be below `tracker.lost_after_s`, or "
        "such tracks are lost between two keep-alive detections. Every detector call (motion or keep-alive) that finds "
        "something is followed by calls on the next `tracker.min_hits` - 1 frames, so a new track can be confirmed.",
    )
    idle_keepalive_s: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="On an empty scene (nothing found for `tracker.lost_after_s` + `keepalive_s`) without motion, run "
        "the detector at least this often (1-3600 s): a check for what the motion mask misses. At least `keepalive_s`.",
    )

    @model_validator(mode="after")
    def _idle_check_not_more_often(self) -> MotionConfig:
        if self.idle_keepalive_s < self.keepalive_s:
            raise ValueError(
                f"idle_keepalive_s ({self.idle_keepalive_s:g}) must be at least keepalive_s ({self.keepalive_s:g})"
            )
        return self


class CameraConfig(_Model):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Camera name: letters, digits, '_' or '-'; used in topics, metrics and alerts.",
    )
    url: str | int = Field(
        description="Where frames come from: an `rtsp://` / `http(s)://` URL, a video file path (relative to this config file), "
        "a webcam index (0) or a device path (/dev/video0)."
    )
    enabled: bool = Field(default=True, description="Set false to keep a camera in the file without opening it.")
    fps_limit: float | None = Field(
        default=None,
        ge=0.01,
        le=1000,
        description="Hand at most this many frames per second to the detector (0.01-1000); extra frames are skipped (not counted as drops).",
    )
    realtime: bool = Field(
        default=True,
        description="Files only: play at the file's own frame rate (true) or as fast as decoding allows (false).",
    )
    loop: bool = Field(default=True, description="Files only: start again at the end of the file.")
    open_timeout_s: float = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="Give up opening a stream after this many seconds, 0.1-300 (OpenCV CAP_PROP_OPEN_TIMEOUT_MSEC).",
    )
    read_timeout_s: float = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="Give up one blocked read after this many seconds, 0.1-300 (OpenCV CAP_PROP_READ_TIMEOUT_MSEC).",
    )
    allow_basic_auth: bool = Field(
        default=False,
        description="Let the probe that finds why a stream is down answer a Basic challenge over plain rtsp:// "
        "(the password crosses the network readable); Digest is always answered, Basic always over verified rtsps://.",
    )
    stall_timeout_s: float = Field(
        default=10.0,
        ge=0.5,
        le=3600,
        description="A camera that delivers no new frame for this long (0.5-3600 s) is marked down and reopened.",
    )
    reconnect_min_s: float = Field(
        default=0.5,
        ge=0.01,
        le=300,
        description="First reconnect delay, 0.01-300 s; doubles on each failure (with jitter).",
    )
    reconnect_max_s: float = Field(default=30.0, ge=0.01, le=3600, description="Longest reconnect delay, 0.01-3600 s.")
    zones: list[ZoneConfig] = Field(
        default_factory=list, max_length=MAX_ZONES, description="Named polygons on this camera's image (geometry only)."
    )
    lines: list[LineConfig] = Field(
        default_factory=list, max_length=MAX_ZONES, description="Named directed lines on this camera's image."
    )
    rules: list[RuleConfig] = Field(
        default_factory=list, max_length=MAX_RULES, description="What to alert on or count; see docs/rules.md."
    )
    motion: MotionConfig = Field(
        default_factory=MotionConfig, description="Motion gating of the detector (off by default)."
    )

    @field_validator("url")
    @classmethod
    def _url_bounded(cls, value: str | int) -> str | int:
        if isinstance(value, int) and not 0 <= value <= 1024:
            raise ValueError("a webcam index must be 0-1024")
        if isinstance(value, str) and not 1 <= len(value) <= 4096:
            raise ValueError("must be 1 to 4096 characters")
        return value

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        _require_unique("zone names must be unique per camera", [z.name for z in self.zones])
        _require_unique("line names must be unique per camera", [x.name for x in self.lines])
        _require_unique("rule ids must be unique per camera", [r.id for r in self.rules])
        zones, lines = {z.name for z in self.zones}, {x.name: x for x in self.lines}
        for rule in self.rules:
            zone, line = getattr(rule, "zone", None), getattr(rule, "line", None)
            if zone is not None and zone not in zones:
                raise ValueError(
                    f"rule {rule.id}: no zone named {zone!r} on this camera (zones: {', '.join(sorted(zones)) or 'none'})"
                )
            if line is not None and line not in lines:
                raise ValueError(
                    f"rule {rule.id}: no line named {line!r} on this camera (lines: {', '.join(sorted(lines)) or 'none'})"
                )
            if line is not None and isinstance(rule, LineCrossingRuleConfig):
                names = {lines[line].forward, lines[line].backward}
                unknown = sorted(set(rule.directions) - names)
                if unknown:
                    raise ValueError(f"rule {rule.id}: line {line} has directions {sorted(names)}, not {unknown}")
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
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`.",
    )
    batch_size: int = Field(default=4, ge=1, le=64, description="Most frames (one per camera) per forward pass.")
    max_wait_ms: float = Field(
        default=40.0,
        ge=0,
        le=1000,
        description="Flush a partial batch once its oldest frame has waited this long (0-1000 ms).",
    )
    score_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Operating threshold: detections scoring at least this count for rules and start tracks "
        "(default: the checkpoint's validated threshold, else 0.5).",
    )
    low_score_floor: float = Field(
        default=0.1,
        ge=0.01,
        le=1,
        description="Detections between this and the operating threshold still reach the tracker, which uses them only "
        "to keep existing tracks alive (ByteTrack's second pass); they never start a track or an alert on their own.",
    )
    class_score_thresholds: dict[str, float] = Field(
        default_factory=dict,
        max_length=1000,
        description="Per-class score thresholds overriding `score_threshold`, e.g. {person: 0.6}.",
    )
    classes: list[str] = Field(
        default_factory=list, max_length=1000, description="Class names to keep; empty = all. E.g. [person, car]."
    )
    min_size: int | None = Field(
        default=None,
        ge=64,
        le=4096,
        description="Network input: shorter side in pixels, 64-4096 (default: the architecture's or checkpoint's).",
    )
    max_size: int | None = Field(
        default=None, ge=64, le=8192, description="Network input: cap on the longer side in pixels, 64-8192."
    )
    half: bool = Field(default=True, description="Run under fp16 autocast on CUDA (ignored on CPU).")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads for inference, 1-1024 (torch.set_num_threads); default: torch's choice.",
    )
    backend: Literal["torch", "onnxruntime", "openvino", "auto"] = Field(
        default="torch",
        description="Inference runtime: `torch` (batched; the GPU path; `pip install '.[torch]'`), `onnxruntime` or `openvino` "
        "(CPU, no PyTorch needed: `pip install '.[runtime]'`; they run the graph shipped beside the checkpoint, "
        "`models/<name>.onnx` with its `.onnx.json`, or export one once into `<state_dir>/model-cache` where torch is "
        "installed), `auto` (torch on a machine with a GPU driver, else openvino, else onnxruntime, else torch: whichever "
        "is installed). Same boxes within tolerance (docs/benchmarks.md).",
    )
    openvino_precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="backend openvino: `auto` is bf16 on CPUs with native bf16 (AMX / AVX512-BF16; OpenVINO's own default there, "
        "about 2x faster than fp32) and fp32 elsewhere. bf16 moves boxes and scores slightly (shipped model: PETS09-S2L1 AP50 "
        "-0.001, validation AP50 -0.006; docs/benchmarks.md); `fp32` gives the eager model's boxes exactly.",
    )
    isolation: Literal["thread", "process"] = Field(
        default="thread",
        description="Where the model runs: `thread` (in the daemon's process) or `process` (a supervised worker process "
        "per detector, frames through shared memory: a crash or hang in the runtime or driver kills only the worker, "
        "which is restarted with back-off while the cameras, tracks and open incidents carry on). `thread` is the "
        "default: docs/benchmarks.md gives the cost of `process` on the CPU.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Detectors sharing the cameras' frames (1-16), each forming its own batches; CPU threads are "
        "split between them unless `threads` is set. Ignored when `devices` is set.",
    )
    devices: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="One detector per entry, e.g. [cuda:0, cuda:1] for two GPUs (`cpu` entries allowed); "
        "empty = `workers` detectors on `device`.",
    )
    worker_deadline_s: float = Field(
        default=30.0,
        ge=1,
        le=600,
        description="isolation process: a worker that has not answered a batch within this many seconds (1-600) "
        "is hung: it is killed and replaced.",
    )
    worker_start_timeout_s: float = Field(
        default=300.0,
        ge=5,
        le=3600,
        description="isolation process: seconds (5-3600) a worker may take to load and warm up its model.",
    )
    worker_restart_min_s: float = Field(
        default=0.5,
        ge=0.05,
        le=60,
        description="isolation process: first restart delay after a worker died (0.05-60 s); doubles per death "
        "up to `worker_restart_max_s`, and starts again from here once a worker has run a minute.",
    )
    worker_restart_max_s: float = Field(
        default=30.0,
        ge=0.1,
        le=600,
        description="isolation process: longest restart delay (0.1-600 s); "
        "`worker_restart_min_s` wins where it is larger.",
    )
    worker_deaths: int = Field(
        default=3,
        ge=1,
        le=100,
        description="isolation process: this many worker deaths (1-100) within `worker_deaths_window_s` turn /healthz "
        "red and withhold the systemd watchdog ping.",
    )
    worker_deaths_window_s: float = Field(
        default=600.0, ge=10, le=86400, description="isolation process: the window for `worker_deaths` (10-86400 s)."
    )

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if not re.fullmatch(r"cpu|cuda(:\d+)?", d)]
        if bad:
            raise ValueError(f"devices must be `cpu`, `cuda` or `cuda:N`, not {bad}")
        return value

    @field_validator("class_score_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"thresholds must lie in [0, 1]: {bad}")
        return value


class TrackerConfig(_Model):
    kind: Literal["surveil", "iou-v1", "bytetrack-trackers"] = Field(
        default="surveil",
        description="Tracker: surveil (two-stage ByteTrack-class, in seconds), iou-v1 (the earlier IoU tracker), "
        "bytetrack-trackers (the `trackers` package's ByteTrack; needs `pip install trackers`).",
    )
    high_score: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Detections scoring at least this are high-score when the detector gives no per-class mask.",
    )
    low_score: float = Field(
        default=0.1, ge=0, le=1, description="Low-score detections (kept alive tracks only) must score at least this."
    )
    birth_score: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="A new track starts only from a high-score detection scoring at least this.",
    )
    iou_threshold: float = Field(
        default=0.3,
        ge=0.01,
        lt=1,
        description="Least IoU between a track's predicted box and a detection to match them.",
    )
    low_iou_threshold: float = Field(
        default=0.4, ge=0.01, lt=1, description="Least IoU to match a low-score detection (second pass)."
    )
    max_center_distance: float = Field(
        default=0.6,
        ge=0,
        le=3,
        description="Stage after IoU for low frame rates: match what IoU left unmatched when box centres are "
        "closer than this many box heights (0 = off).",
    )
    lost_center_growth: float = Field(
        default=0.5,
        ge=0,
        le=5,
        description="A lost track's centre-distance gate widens by this fraction per second lost.",
    )
    max_size_ratio: float = Field(
        default=1.5, ge=1, le=4, description="Centre-distance matches need box heights within this ratio."
    )
    min_hits: int = Field(
        default=2, ge=1, le=10, description="Matched frames before a track is confirmed and shown to rules."
    )
    lost_after_s: float = Field(
        default=3.0, ge=0.1, le=60, description="Seconds a confirmed track survives without a matching detection."
    )
    velocity_decay_s: float = Field(
        default=1.0, ge=0.1, le=30, description="Time constant (s) of the velocity decay while a track is lost."
    )
    measurement_noise: float = Field(
        default=0.05,
        ge=0.001,
        le=0.5,
        description="Motion filter: std of a detected box coordinate, as a fraction of the box height.",
    )
    acceleration_noise: float = Field(
        default=0.2,
        ge=0.001,
        le=20,
        description="Motion filter: std of an object's acceleration, in box heights per second squared.",
    )
    history: int = Field(default=64, ge=2, le=10_000, description="Recent anchor points kept per track.")
    appearance_weight: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Re-identification (detections with embeddings only): weight (0-1) of the appearance "
        "cosine against the motion score when assigning the pairs motion admits (0 = motion only).",
    )
    appearance_momentum: float = Field(
        default=0.9,
        ge=0,
        le=0.99,
        description="A track's appearance keeps this fraction (0-0.99) of itself per matched high-score detection.",
    )
    appearance_gallery: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Matched embeddings (1-100) a track keeps for association: a pair's appearance cosine is the "
        "detection's best match among them (DeepSORT's nearest neighbour); 1 = the moving average alone. Re-attaching "
        "after a gap always compares the moving average.",
    )
    appearance_veto: float = Field(
        default=0.0,
        ge=0,
        le=0.9,
        description="A track and a detection whose appearance cosine is under this (0-0.9) are never matched "
        "(0 = no veto).",
    )
    reid_window_s: float = Field(
        default=20.0,
        ge=0,
        le=120,
        description="Seconds (0-120) after its last match that a lost track with an appearance stays dormant "
        "(not shown to rules) to be re-attached under its id; at or below `lost_after_s` = no dormancy. While it is "
        "dormant, its zone visit, loitering dwell and open incidents wait for it: an incident's end is sent when the "
        "tracker lets go, stamped with the time the condition stopped.",
    )
    reid_similarity: float = Field(
        default=0.95,
        ge=0.5,
        le=1,
        description="Least cosine similarity (0.5-1) between a new detection and a lost or dormant track's "
        "appearance to re-attach it (1 = never).",
    )
    reid_margin: float = Field(
        default=0.03,
        ge=0,
        le=0.5,
        description="Re-attach only when that similarity beats every other candidate pair of the track or the "
        "detection by this much (0-0.5).",
    )
    reid_max_speed: float = Field(
        default=1.0,
        ge=0.1,
        le=10,
        description="Re-attach only within one box height plus this many box heights (0.1-10) per second of gap "
        "from where the track was last seen.",
    )

    @model_validator(mode="after")
    def _scores_ordered(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError(f"low_score ({self.low_score}) must not exceed high_score ({self.high_score})")
        return self


class HomeAssistantConfig(_Model):
    enabled: bool = Field(
        default=False,
        description="Publish Home Assistant MQTT discovery (retained): a binary sensor per camera (up) and per alerting rule "
        "(incident open), a sensor per zone count; their availability follows the daemon's availability topic.",
    )
    discovery_prefix: str = Field(
        default="homeassistant",
        min_length=1,
        max_length=200,
        pattern=r"^[^#+\s\x00]+$",
        description="Home Assistant's discovery prefix.",
    )


class MqttConfig(_Model):
    enabled: bool = Field(default=True, description="Publish alerts and status over MQTT.")
    host: str = Field(
        default="localhost",
        min_length=1,
        max_length=253,
        pattern=r"^[^\s/@]+$",
        description="Broker host name or address.",
    )
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    instance: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[^/#+\s\x00]+$",
        description="This daemon's name on the broker: its availability topic is `<topic_prefix>/<instance>/available`, so several "
        "daemons can share a broker and a prefix. Default: the host name.",
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="MQTT client id; must be unique on the broker. Default: `surveil-<instance>-<random>`, new at every start.",
    )
    topic_prefix: str = Field(
        default="surveil",
        max_length=200,
        pattern=r"^[^#+\s\x00]+$",
        description="First level(s) of every topic; no wildcards.",
    )
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of alert messages.")
    username: str | None = Field(
        default=None, max_length=1024, description="Broker user name, if the broker requires one."
    )
    password: SecretStr | None = Field(
        default=None, description="Broker password; use ${ENV_VAR} rather than writing it here."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive interval in seconds (5-3600).")
    tls: bool = Field(
        default=False,
        description="Connect with TLS. The broker's certificate is verified: it must chain to `ca_file` (or, without it, to the "
        "system's CA certificates) and name `host`. Implied by `ca_file` and `cert_file`.",
    )
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="PEM file with the CA certificate(s) the broker's certificate must chain to (relative to this config file).",
    )
    cert_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Client certificate (PEM) for brokers that require one, with `key_file` (relative to this config file).",
    )
    key_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Private key (PEM, unencrypted) of `cert_file` (relative to this config file).",
    )
    tls_insecure: bool = Field(
        default=False,
        description="Accept a broker certificate that does not name `host` (the chain is still verified). For tests and "
        "addresses without a certificate name only; it allows a man in the middle holding any certificate of that CA.",
    )
    home_assistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery (off by default)."
    )
    spool_path: str = Field(
        default="surveil-spool.sqlite3",
        description="SQLite file holding alerts until the broker acknowledges them; replayed in order after an outage (relative to `state_dir`).",
    )

    @field_validator("qos", mode="before")
    @classmethod
    def _qos_from_text(cls, value: Any) -> Any:  # `qos: ${MQTT_QOS}` arrives as a string
        return int(value) if isinstance(value, str) and value.strip() in ("0", "1", "2") else value

    spool_max_alerts: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Oldest spooled alerts are dropped (and counted) beyond this many (100-10,000,000).",
    )

    @model_validator(mode="after")
    def _client_certificate_pair(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file for a client certificate, or neither")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    @property
    def instance_name(self) -> str:
        """``instance``, or the host name (characters not allowed in a topic level replaced by ``_``)."""
        return self.instance or re.sub(r"[/#+\s\x00]", "_", socket.gethostname()) or "surveil"


class MetricsConfig(_Model):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics over HTTP.")
    listen: str = Field(
        default="127.0.0.1:9108",
        pattern=r"^[^:\s]*:\d{1,5}$",
        description="host:port to serve /metrics on; port 0 = any free port.",
    )

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        if int(value.rsplit(":", 1)[1]) > 65535:
            raise ValueError("the port must be 0-65535")
        return value

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class WebConfig(_Model):
    enabled: bool = Field(
        default=True,
        description="Serve the live view beside /metrics on `metrics.listen`: `/` (cameras, status, processed fps, live image), "
        "`/cameras/<name>/latest.jpg` and `/cameras/<name>/live.mjpeg`. Frames are drawn only while someone watches.",
    )
    max_fps: float = Field(
        default=4.0, ge=0.1, le=30, description="Most frames per second one `live.mjpeg` stream sends (0.1-30)."
    )
    max_streams: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Most `live.mjpeg` streams open at once (1-100); more are refused with 503.",
    )
    max_connections_per_address: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Most connections open at once from one client address (1-1000), live streams included; more "
        "are answered 503 at once, so that one client cannot take every slot of the server's overall cap (64, or "
        "`max_streams` + 16 if more). Behind a reverse proxy every viewer shares the proxy's address: raise it there.",
    )
    jpeg_quality: int = Field(
        default=80, ge=10, le=100, description="JPEG quality of `latest.jpg` and the live stream (10-100)."
    )
    auth_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="If set, every page needs it: `Authorization: Bearer <token>` or `?token=<token>` once in a browser "
        "(which then gets a session cookie). At least 16 characters; use ${ENV_VAR}. In `?token=` a `+` may be "
        "sent as is or as `%2B`. A reload with a new token ends the live streams opened with the old one.",
    )
    username: str | None = Field(
        default=None, min_length=1, max_length=128, description="HTTP basic auth user name (with `password`)."
    )
    password: SecretStr | None = Field(
        default=None,
        min_length=8,
        description="HTTP basic auth password (with `username`), at least 8 characters; use ${ENV_VAR}.",
    )
    protect_metrics: bool = Field(
        default=True,
        description="When a token or a password is set, /metrics needs it too (Prometheus: `authorization` or `basic_auth` "
        "in the scrape config); false leaves /metrics open.",
    )

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> WebConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password for basic auth, or neither")
        return self


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level written."
    )
    format: Literal["text", "json"] = Field(
        default="text", description="`text` for people, `json` (one object per line) for log shippers."
    )


class AlertsConfig(_Model):
    jsonl_path: str | None = Field(
        default=None,
        description="Append every alert as one JSON line to this file (relative to `state_dir`); unset = off.",
    )
    snapshot: bool = Field(default=False, description="Attach a JPEG of the frame (base64) to each alert.")


class ReviewConfig(_Model):
    enabled: bool = Field(
        default=False,
        description="Keep each incident's best snapshot and a clip under `<state_dir>/<review.dir>`, listed on the "
        "web server's /review page; alerts then carry `snapshot_url` and `clip_url` (docs/review.md).",
    )
    dir: str = Field(default="review", min_length=1, description="Folder of the incidents (relative to `state_dir`).")
    pre_s: float = Field(default=5.0, ge=0, le=60, description="Clip seconds before an incident starts (0-60).")
    post_s: float = Field(default=5.0, ge=0, le=60, description="Clip seconds after an incident ends (0-60).")
    clip_max_s: float = Field(
        default=30.0,
        ge=2,
        le=300,
        description="Longest clip (2-300 s): a longer incident keeps its last seconds (the snapshot shows its best frame). "
        "Also how long the per-camera frame buffer reaches back.",
    )
    clip_fps: float = Field(default=5.0, ge=1, le=30, description="Frame rate of the clips (1-30 fps).")
    buffer_mb: float = Field(
        default=32.0,
        ge=1,
        le=1024,
        description="Most memory of recent annotated JPEG frames kept per camera for clips (1-1024 MiB).",
    )
    max_age_h: float = Field(
        default=168.0,
        ge=0.01,
        le=87_600,
        description="Incidents without a message for this long (ended, or left open by a crash) are deleted (0.01-87,600 h).",
    )
    max_size_mb: float = Field(
        default=2048.0,
        ge=1,
        le=10_000_000,
        description="Most disk for all incidents (1-10,000,000 MiB); beyond it the oldest ended ones are deleted.",
    )
    encode_queue: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Clips waiting for the one encoder (1-64); a clip that finds the queue full is dropped and counted.",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s?#]+$",
        description="Prefix of the URLs in alerts, e.g. `https://nvr.example:9108`; unset = paths only (`/review/...`).",
    )


ShardIndex = Annotated[int, Field(ge=0, le=1023)]
ShardPins = dict[Annotated[str, Field(pattern=NAME_PATTERN)], ShardIndex]


class ShardingConfig(_Model):
    instances: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="How many daemons share the cameras (1-1024). Each runs the cameras that rendezvous hashing of the camera "
        "name assigns to its `index` (see docs/scaling.md); `surveil shards -c FILE --instances N` prints the assignment. "
        "`SURVEIL_SHARD=i/N` or `surveil run --shard i/N` override this section.",
    )
    index: ShardIndex | Literal["auto"] = Field(
        default=0,
        description="This daemon's shard, 0 to `instances`-1, or `auto`: the ordinal at the end of the host name, as a "
        "Kubernetes StatefulSet pod has (`surveil-3` is 3). `auto` is resolved by `surveil run`; other commands see every camera.",
    )
    pin: ShardPins = Field(
        default_factory=dict,
        max_length=MAX_CAMERAS,
        description="Camera name -> the index (0 to `instances`-1) that always runs it, e.g. the host with the USB webcam; "
        "the other cameras are hashed.",
    )

    @model_validator(mode="after")
    def _indexes_in_range(self) -> ShardingConfig:
        if isinstance(self.index, int) and self.index >= self.instances:
            raise ValueError(f"index must be 0-{self.instances - 1} for {self.instances} instance(s), not {self.index}")
        wrong = sorted(name for name, index in self.pin.items() if index >= self.instances)
        if wrong:
            raise ValueError(f"pinned to an index beyond {self.instances - 1}: {', '.join(wrong)}")
        return self


class Config(_Model):
    cameras: list[CameraConfig] = Field(
        min_length=1, max_length=MAX_CAMERAS, description=f"The cameras to watch (1 to {MAX_CAMERAS})."
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="The object detector.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Per-camera multi-object tracker.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker for alerts and status.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert content and local sinks.")
    review: ReviewConfig = Field(
        default_factory=ReviewConfig, description="Incident review: snapshots and clips on disk, the /review page."
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus endpoint.")
    web: WebConfig = Field(default_factory=WebConfig, description="Live view in the browser, on the metrics server.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    state_dir: str | None = Field(
        default=None,
        description="Folder for files the daemon writes (alert spool, JSON-lines alerts) when their paths are relative. "
        "Default: $STATE_DIRECTORY when systemd sets it (StateDirectory=), else this config file's folder. Relative to this config file.",
    )
    watchdog_stall_s: float = Field(
        default=60.0,
        ge=1,
        le=86400,
        description="Stop pinging the systemd watchdog if the detector has finished no batch for this long while frames wait.",
    )
    sharding: ShardingConfig = Field(
        default_factory=ShardingConfig, description="Several daemons sharing the cameras (one by default)."
    )

    @model_validator(mode="after")
    def _unique_cameras(self) -> Config:
        _require_unique("camera names must be unique", [c.name for c in self.cameras])
        for camera in self.cameras:
            if camera.motion.enabled and camera.motion.keepalive_s >= self.tracker.lost_after_s:
                raise ValueError(
                    f"camera {camera.name}: motion.keepalive_s ({camera.motion.keepalive_s:g}) must be below "
                    f"tracker.lost_after_s ({self.tracker.lost_after_s:g}), or stationary objects lose their tracks"
                )
        unknown = sorted(set(self.sharding.pin) - {c.name for c in self.cameras})
        if unknown:
            raise ValueError(f"sharding.pin names no camera: {', '.join(unknown)}")
        return self

    @property
    def enabled_cameras(self) -> list[CameraConfig]:
        """The enabled cameras this daemon's shard owns (all of them with one instance or an unresolved ``auto``)."""
        enabled = [c for c in self.cameras if c.enabled]
        shard = self.sharding
        if shard.instances == 1 or shard.index == "auto":
            return enabled
        return [c for c in enabled if owner(c.name, shard.instances, shard.pin) == shard.index]

    def with_shard(self, index: int, instances: int) -> Config:
        """This config as shard ``index`` of ``instances`` (pins checked again); ValueError if they do not fit."""
        sharding = ShardingConfig.model_validate(
            {"instances": instances, "index": index, "pin": dict(self.sharding.pin)}
        )
        return self.model_copy(update={"sharding": sharding})


# ---------------------------------------------------------------- checks


def _require_unique(message: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{message}; repeated: {', '.join(repeated)}")


# ---------------------------------------------------------------- camera URLs


def camera_kind(url: str | int) -> Literal["stream", "file", "device"]:
    if isinstance(url, int) or str(url).isdigit() or str(url).startswith("/dev/video"):
        return "device"
    if re.match(r"^[a-z][a-z0-9+.-]*://", str(url), re.IGNORECASE):  # FFmpeg reads the scheme case-blind
        return "stream"
    return "file"
