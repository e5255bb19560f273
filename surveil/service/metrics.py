"""Prometheus metrics for every stage. One registry per daemon (tests pass their own); the daemon's
HTTP server (surveil/web/server.py) serves it on /metrics.

Every metric is listed, with its meaning, in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, PlatformCollector, ProcessCollector

from surveil import __version__
from surveil.config import CameraConfig, LineConfig
from surveil.rules import registry as rules_registry
from surveil.rules.base import LINE_COUNTS, ZONE_COUNTS, StateReport, report_kind
from surveil.service.review_metrics import ReviewMetrics
from surveil.service.status import PROCESSED_FPS_WINDOW_S, ProcessedRate

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
# why a camera is down (surveil.video.source.diagnose names them; docs/metrics.md explains them)
DOWN_REASONS = (
    "dns",
    "refused",
    "timeout",
    "unauthorized",
    "not_found",
    "no_video",
    "end_of_file",
    "stalled",
    "read_failed",
    "error",
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        Info("surveil_build", "surveil version.", registry=r).info({"version": __version__})
        ProcessCollector(
            registry=r
        )  # process_cpu_seconds_total, process_resident_memory_bytes, process_start_time_seconds, ...
        PlatformCollector(registry=r)  # python_info
        self.frames_captured = Counter(
            "surveil_frames_captured_total", "Frames decoded from a camera.", ["camera"], registry=r
        )
        self.frames_skipped = Counter(
            "surveil_frames_skipped_total",
            "Frames read but not used because of the camera's fps_limit.",
            ["camera"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "surveil_frames_dropped_total",
            "Frames overwritten by a newer one before the detector took them.",
            ["camera"],
            registry=r,
        )
        self.detector_skipped = Counter(
            "surveil_detector_skipped_total",
            "Frames that skipped the detector because motion gating saw no motion (they still went through tracking and rules).",
            ["camera"],
            registry=r,
        )
        self.frames_processed = Counter(
            "surveil_frames_processed_total",
            "Frames that went through detection, tracking and rules.",
            ["camera"],
            registry=r,
        )
        self.camera_processed_fps = Gauge(
            "surveil_camera_processed_fps",
            f"Frames per second that went through detection, tracking and rules, over the last {PROCESSED_FPS_WINDOW_S:g} s.",
            ["camera"],
            registry=r,
        )
        self._processed = ProcessedRate(PROCESSED_FPS_WINDOW_S)
        self.camera_up = Gauge(
            "surveil_camera_up", "1 while the camera delivers frames, 0 while it is down.", ["camera"], registry=r
        )
        self.camera_down_reason = Gauge(
            "surveil_camera_down_reason",
            "1 for the reason the camera is down now (all 0 while it is up); see docs/metrics.md for the reasons.",
            ["camera", "reason"],
            registry=r,
        )
        self.camera_fps_limit = Gauge(
            "surveil_camera_fps_limit",
            "The camera's configured fps_limit (0 = none): the rate processing should reach.",
            ["camera"],
            registry=r,
        )
        self.camera_reconnects = Counter(
            "surveil_camera_reconnects_total", "Attempts to reopen a camera after a failure.", ["camera"], registry=r
        )
        self.camera_last_frame = Gauge(
            "surveil_camera_last_frame_timestamp_seconds",
            "Wall-clock time of the camera's newest frame.",
            ["camera"],
            registry=r,
        )
        self.batch_size = Histogram(
            "surveil_batch_size", "Frames per detector forward pass.", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "surveil_inference_seconds",
            "Wall time of one detector forward pass (whole batch).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "surveil_stage_seconds",
            "Per frame, time in one pipeline stage: `wait` (capture to the start of its detector batch), "
            "`analyse` (tracker, rules and handing alerts to the sinks).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.frame_latency_seconds = Histogram(
            "surveil_frame_latency_seconds",
            "From frame capture to the end of rule evaluation, per frame.",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.alert_latency_seconds = Histogram(
            "surveil_alert_latency_seconds",
            "End to end: from capture of the triggering frame to the alert handed to the sinks.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.detections = Counter(
            "surveil_detections_total",
            "Detections kept after score and class filters.",
            ["camera", "class"],
            registry=r,
        )
        self.alerts = Counter(
            "surveil_alerts_total",
            "Incidents started (one per alert, whatever its updates and end).",
            ["camera", "rule"],
            registry=r,
        )
        self.alert_messages = Counter(
            "surveil_alert_messages_total",
            "Alert messages handed to the sinks, by phase (start, update, end).",
            ["camera", "rule", "phase"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "surveil_incidents_open", "Incidents in progress (started, not yet ended).", ["camera", "rule"], registry=r
        )
        self.incidents_suppressed = Counter(
            "surveil_incidents_suppressed_total",
            "Incidents not started because of a rule's rate cap.",
            ["camera", "rule", "reason"],
            registry=r,
        )
        self.line_crossings = Counter(
            "surveil_line_crossings_total",
            "Objects that crossed a line, by direction name.",
            ["camera", "line", "rule", "direction"],
            registry=r,
        )
        self.zone_objects = Gauge(
            "surveil_zone_objects",
            "Objects inside a zone now, by class (zone_occupancy rules).",
            ["camera", "zone", "rule", "class"],
            registry=r,
        )
        # the families a rule's state reports feed, by name (surveil.rules.base.ReportKind.metric)
        self._state_counters = {LINE_COUNTS.metric: self.line_crossings}
        self._state_gauges = {ZONE_COUNTS.metric: self.zone_objects}
        self._rule_series = self._init_rule_series()
        self.queue_depth = Gauge("surveil_queue_depth", "Items waiting between stages.", ["queue"], registry=r)
        self.stage_errors = Counter(
            "surveil_stage_errors_total",
            "Unexpected exceptions caught in a stage (the stage keeps running).",
            ["stage"],
            registry=r,
        )
        for stage in ("detect", "analyse", "sink", "review"):  # at 0 from the start: a dashboard shows zeros, not gaps
            self.stage_errors.labels(stage)
        self.analysis_errors = Counter(
            "surveil_analysis_errors_total",
            "Frames or status checks of a camera whose analysis (tracker, rules) raised.",
            ["camera"],
            registry=r,
        )
        self.mqtt_connected = Gauge("surveil_mqtt_connected", "1 while connected to the MQTT broker.", registry=r)
        self.mqtt_published = Counter(
            "surveil_mqtt_messages_published_total", "Messages acknowledged by the broker.", ["kind"], registry=r
        )
        self.mqtt_failures = Counter(
            "surveil_mqtt_publish_failures_total", "Publish attempts that failed (they stay in the spool).", registry=r
        )
        self.spool_size = Gauge(
            "surveil_alert_spool_size", "Alerts in the on-disk spool waiting for the broker.", registry=r
        )
        self.spool_dropped = Counter(
            "surveil_alert_spool_dropped_total",
            "Oldest spooled alerts discarded because the spool was full.",
            registry=r,
        )
        self.spool_writable = Gauge(
            "surveil_alert_spool_writable",
            "1 while the alert spool takes writes; 0 while its disk refuses them (alerts then go to the broker directly).",
            registry=r,
        )
        self.spool_writable.set(1)
        self.spool_bypassed = Counter(
            "surveil_alert_spool_bypassed_total",
            "Alerts handed to the broker directly because the spool could not be written (not durable across a restart).",
            registry=r,
        )
        self.detector_up = Gauge("surveil_detector_ready", "1 once the detector model is loaded.", registry=r)
        self.last_batch = Gauge(
            "surveil_detector_last_batch_timestamp_seconds", "Wall-clock time of the newest finished batch.", registry=r
        )
        self._init_detector_workers(r)
        self.review = ReviewMetrics(r)  # surveil.review's events

    def _init_detector_workers(self, r: CollectorRegistry) -> None:
        """Per detector (``worker`` label: worker-N, or <device>-N with ``detector.devices``)."""
        self.detector_busy_seconds = Counter(
            "surveil_detector_busy_seconds_total",
            "Seconds a detector spent on batches, as its detect thread saw them (rate = its utilisation).",
            ["worker"],
            registry=r,
        )
        self.detector_frames_lost = Counter(
            "surveil_detector_frames_lost_total",
            "Frames dropped, not detected, because their detector worker was restarting.",
            ["camera"],
            registry=r,
        )
        self.worker_restarts = Counter(
            "surveil_detector_worker_restarts_total",
            "Detector worker processes restarted after dying or hanging.",
            ["worker"],
            registry=r,
        )
        self.worker_up = Gauge(
            "surveil_detector_worker_up", "1 while the detector worker process is ready.", ["worker"], registry=r
        )
        self.worker_last_exit = Gauge(
            "surveil_detector_worker_last_exit",
            "1 for the kind of the worker's last exit (none, killed, exited, hung, start_failed), 0 for the others.",
            ["worker", "reason"],
            registry=r,
        )
        self.worker_wait_seconds = Histogram(
            "surveil_detector_worker_wait_seconds",
            "Time the detect thread waited for the worker's answer to one batch (request sent to answer read).",
            ["worker"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.implausible_boxes = Counter(
            "surveil_detector_implausible_boxes_total",
            "Boxes the detector's runtime returned that its graph cannot have made (not finite, or outside the "
            "network input), dropped: above 0 means a runtime fault, named in the log.",
            ["worker"],
            registry=r,
        )
        self.worker_compute_seconds = Counter(
            "surveil_detector_worker_compute_seconds_total",
            "Seconds the worker itself spent in its detector (the rest of the wait is transfer and scheduling).",
            ["worker"],
            registry=r,
        )

    def init_worker(self, worker: str, isolated: bool) -> None:
        self.detector_busy_seconds.labels(worker)
        self.implausible_boxes.labels(worker)
        if isolated:
            self.worker_restarts.labels(worker)
            self.worker_up.labels(worker).set(1)
            self.worker_compute_seconds.labels(worker)
            self.set_worker_exit(worker, "none")

    def set_worker_exit(self, worker: str, kind: str) -> None:
        for known in ("none", "killed", "exited", "hung", "start_failed"):
            self.worker_last_exit.labels(worker, known).set(1 if known == kind else 0)

    def init_camera(self, camera: CameraConfig) -> None:
        """Create every per-camera (and per-rule, per-line) series at 0, so dashboards show zeros, not gaps."""
        name = camera.name
        for family in (
            self.frames_captured,
            self.frames_skipped,
            self.frames_dropped,
            self.frames_processed,
            self.detector_skipped,
            self.camera_reconnects,
            self.frame_latency_seconds,
            self.analysis_errors,
            self.detector_frames_lost,
        ):
            family.labels(name)
        self.camera_up.labels(name).set(0)
        self.camera_processed_fps.labels(name).set(0)
        self.camera_fps_limit.labels(name).set(camera.fps_limit or 0)
        self.set_down_reason(name, None)
        lines = {line.name: line for line in camera.lines}
        for rule in camera.rules:
            for metric in rules_registry.entry(rule).metrics:
                self._rule_series[metric](name, rule, lines)

    def _init_rule_series(self) -> dict[str, Callable[[str, Any, dict[str, LineConfig]], None]]:
        """Per Prometheus family a rule may feed (``RuleEntry.metrics``): create its series at 0."""

        def alerts(camera: str, rule: Any, _lines: dict[str, LineConfig]) -> None:
            self.alerts.labels(camera, rule.id)

        def incidents_open(camera: str, rule: Any, _lines: dict[str, LineConfig]) -> None:
            self.incidents_open.labels(camera, rule.id)

        def messages(camera: str, rule: Any, _lines: dict[str, LineConfig]) -> None:
            for phase in ("start", "update", "end"):
                self.alert_messages.labels(camera, rule.id, phase)

        def crossings(camera: str, rule: Any, lines: dict[str, LineConfig]) -> None:
            line = lines.get(rule.line)
            if line is not None:
                for direction in (line.forward, line.backward):
                    self.line_crossings.labels(camera, line.name, rule.id, direction)

        return {
            "surveil_alerts_total": alerts,
            "surveil_incidents_open": incidents_open,
            "surveil_alert_messages_total": messages,
            LINE_COUNTS.metric: crossings,
            ZONE_COUNTS.metric: lambda camera, rule, lines: None,  # one series per counted class, made when counted
        }

    def observe_state(self, camera: str, report: StateReport, previous: dict[str, int]) -> None:
        """A rule's counts (``StateReport``): totals add their growth to a counter, levels set a gauge."""
        kind = report_kind(report.kind)
        if kind.cumulative:
            counter = self._state_counters[kind.metric]
            for key, total in report.values.items():
                counter.labels(camera, report.name, report.rule, key).inc(max(0, total - previous.get(key, 0)))
        else:
            gauge = self._state_gauges[kind.metric]
            for key, count in report.values.items():
                gauge.labels(camera, report.name, report.rule, key).set(count)

    def set_down_reason(self, camera: str, reason: str | None) -> None:
        """``surveil_camera_down_reason{reason}`` = 1 for ``reason`` (None: up), 0 for every other reason."""
        for known in DOWN_REASONS:
            self.camera_down_reason.labels(camera, known).set(1 if known == reason else 0)

    def frame_processed(self, camera: str, now_mono: float) -> None:
        """One frame of ``camera`` went through the rules (the counter, and the fps window)."""
        self.frames_processed.labels(camera).inc()
        self._processed.tick(camera, now_mono)

    def processed_fps(self, camera: str, now_mono: float) -> float:
        """Frames of ``camera`` that went through the rules per second, over the last ``PROCESSED_FPS_WINDOW_S``
        (the one meter behind ``surveil_camera_processed_fps`` and the live view)."""
        return self._processed.rate(camera, now_mono)

    def update_processed_fps(self, cameras: Iterable[str], now_mono: float) -> None:
        """Refresh ``surveil_camera_processed_fps`` (about once a second; it falls to 0 when nothing is processed)."""
        for camera in cameras:
            self.camera_processed_fps.labels(camera).set(round(self.processed_fps(camera, now_mono), 3))
