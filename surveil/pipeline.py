"""The one module that wires the stages together.

    capture threads -> FrameBoard -> detect thread -> bounded queue -> analyse thread -> sinks
    (one per camera)   (newest wins)  (one forward     (DetectedFrame)  (track, rules,     (MQTT spool,
                                       per batch)                         alerts)            JSON lines)

Stages do not import each other; they talk through the callables and small protocols given
to them here. Metrics observe every stage.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from surveil.batcher import FrameBoard
from surveil.capture import CameraSource
from surveil.config import CameraConfig, Config
from surveil.detector import Detector, TorchDetector
from surveil.metrics import Metrics
from surveil.models import ModelLoadError
from surveil.rules import FrameInfo, Rule, Zone, ZoneIntrusionRule
from surveil.sinks.jsonl import JsonlAlertSink
from surveil.sinks.mqtt import MqttPublisher
from surveil.sinks.spool import AlertSpool
from surveil.tracker import IouTracker
from surveil.types import Alert, DetectedFrame, Frame

log = logging.getLogger(__name__)

_STOP = object()


class PipelineError(Exception):
    """The pipeline cannot be built from this config (the message says why)."""


class AlertSink(Protocol):
    def publish_alert(self, alert: Alert) -> None: ...


class _CaptureEvents:
    """CaptureEvents for the capture stage: metrics and MQTT camera status (capture logs itself)."""

    def __init__(self, metrics: Metrics, status: Callable[[str, bool, str], None]):
        self._metrics = metrics
        self._status = status

    def frame_read(self, camera: str) -> None:
        self._metrics.frames_captured.labels(camera).inc()
        self._metrics.camera_last_frame.labels(camera).set_to_current_time()

    def frame_skipped(self, camera: str) -> None:
        self._metrics.frames_skipped.labels(camera).inc()

    def camera_up(self, camera: str) -> None:
        self._metrics.camera_up.labels(camera).set(1)
        self._status(camera, True, "streaming")

    def camera_down(self, camera: str, reason: str) -> None:
        self._metrics.camera_up.labels(camera).set(0)
        self._status(camera, False, reason)

    def reconnect_attempt(self, camera: str) -> None:
        self._metrics.camera_reconnects.labels(camera).inc()


class _MqttEvents:
    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def connection_changed(self, connected: bool) -> None:
        self._metrics.mqtt_connected.set(1 if connected else 0)

    def published(self, topic: str) -> None:
        self._metrics.mqtt_published.labels("alert" if "/alerts/" in topic else "status").inc()

    def publish_failed(self, reason: str) -> None:
        self._metrics.mqtt_failures.inc()

    def spool_size(self, n: int) -> None:
        self._metrics.spool_size.set(n)

    def spool_dropped(self, n: int) -> None:
        self._metrics.spool_dropped.inc(n)


@dataclass(frozen=True)
class Health:
    threads_alive: bool
    detector_stalled: bool
    dead_threads: tuple[str, ...]


def build_rules(camera: CameraConfig, class_names: Sequence[str]) -> list[Rule]:
    rules: list[Rule] = []
    for zone_config in camera.zones:
        unknown = sorted(set(zone_config.classes) - set(class_names))
        if unknown:
            raise PipelineError(
                f"camera {camera.name}, zone {zone_config.name}: classes {unknown} are not known to the detector "
                f"(it knows: {', '.join(n for n in class_names[1:] if n != 'N/A')})"
            )
        zone = Zone(
            name=zone_config.name,
            polygon=np.asarray(zone_config.polygon, np.float64),
            class_ids=frozenset(class_names.index(c) for c in zone_config.classes),
            anchor=zone_config.anchor,
        )
        if zone_config.intrusion:
            rules.append(ZoneIntrusionRule(camera.name, zone, zone_config.min_frames, class_names, zone_config.severity))
    return rules


class Pipeline:
    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        detector: Detector | None = None,
        open_capture: Callable | None = None,
    ):
        self.config = config
        self.metrics = metrics
        try:
            self.detector = detector or TorchDetector(config.detector)
        except ModelLoadError as exc:
            raise PipelineError(str(exc)) from None
        metrics.detector_up.set(1)
        cameras = config.enabled_cameras
        self._rules = {c.name: build_rules(c, self.detector.class_names) for c in cameras}
        self._trackers = {c.name: self._tracker(c.name) for c in cameras}
        self._board = FrameBoard(on_drop=lambda camera: metrics.frames_dropped.labels(camera).inc())
        self._analysis: queue.Queue = queue.Queue(maxsize=max(4, 2 * len(cameras)))
        self._stop_detect = threading.Event()
        self._sinks, self._mqtt = self._build_sinks()
        events = _CaptureEvents(metrics, self._camera_status)
        capture_kwargs = {"open_capture": open_capture} if open_capture else {}
        self._sources = [CameraSource(c, self._board.put, events, **capture_kwargs) for c in cameras]
        self._threads: list[threading.Thread] = []
        self.last_batch_mono = time.monotonic()
        for camera in cameras:
            metrics.camera_up.labels(camera.name).set(0)

    def _tracker(self, camera: str) -> IouTracker:
        t = self.config.tracker
        return IouTracker(camera, t.iou_threshold, t.max_missed, t.min_hits, t.history, t.max_center_distance)

    def _build_sinks(self) -> tuple[list[AlertSink], MqttPublisher | None]:
        sinks: list[AlertSink] = []
        mqtt = None
        self._spool = None
        if self.config.mqtt.enabled:
            self._spool = AlertSpool(self.config.mqtt.spool_path, max_items=self.config.mqtt.spool_max_alerts)
            mqtt = MqttPublisher(self.config.mqtt, self._spool, _MqttEvents(self.metrics))
            sinks.append(mqtt)
        if self.config.alerts.jsonl_path:
            sinks.append(JsonlAlertSink(self.config.alerts.jsonl_path))
        return sinks, mqtt

    def _camera_status(self, camera: str, up: bool, reason: str) -> None:
        if self._mqtt is not None:
            self._mqtt.publish_camera_status(camera, up, reason)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._mqtt is not None:
            self._mqtt.start()
        self._threads = [
            threading.Thread(target=self._detect_loop, name="detect", daemon=True),
            threading.Thread(target=self._analyse_loop, name="analyse", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        for source in self._sources:
            self._board.register(source.config.name)
            source.start()

    def stop(self, timeout: float = 8.0) -> None:
        """Ordered shutdown: capture, then the batch in flight, then analysis, then sinks."""
        deadline = time.monotonic() + timeout
        for source in self._sources:
            source.request_stop()
        for source in self._sources:
            source.stop(timeout=max(0.05, min(2.0, deadline - 4.0 - time.monotonic())))
        self._stop_detect.set()
        detect, analyse = self._threads or (None, None)
        if detect is not None:
            detect.join(timeout=max(0.1, deadline - time.monotonic() - 2.0))
            self._put_analysis(_STOP, force=True)
            analyse.join(timeout=max(0.1, deadline - time.monotonic() - 1.5))
        closers = [sink.close for sink in self._sinks if sink is not self._mqtt]
        if self._mqtt is not None:  # publishes `offline` and flushes what it can, then the spool closes
            closers = [lambda: self._mqtt.stop(timeout=max(0.5, deadline - time.monotonic())), self._spool.close, *closers]
        for close in closers:
            try:
                close()
            except Exception:
                log.exception("error while closing an alert sink")

    def housekeeping(self, now_mono: float | None = None) -> Health:
        """Called about once a second by the daemon: stall checks, gauges, thread health."""
        now = time.monotonic() if now_mono is None else now_mono
        for source in self._sources:
            source.check_stall(now)
        frames_waiting = self._board.pending()
        self.metrics.queue_depth.labels("frames").set(frames_waiting)
        self.metrics.queue_depth.labels("analysis").set(self._analysis.qsize())
        dead = tuple(t.name for t in self._threads if not t.is_alive())
        dead += tuple(f"capture-{s.config.name}" for s in self._sources if not s.is_alive() and self._source_should_run(s))
        stalled = frames_waiting > 0 and now - self.last_batch_mono > self.config.watchdog_stall_s
        return Health(threads_alive=not dead, detector_stalled=stalled, dead_threads=dead)

    @staticmethod
    def _source_should_run(source: CameraSource) -> bool:
        config = source.config
        return not (config.kind == "file" and not config.loop)

    # ------------------------------------------------------------------ stages

    def _detect_loop(self) -> None:
        d = self.config.detector
        while not self._stop_detect.is_set():
            frames = self._board.take_batch(d.batch_size, d.max_wait_ms / 1000.0, self._stop_detect)
            if frames:
                self._detect_batch(frames)
        log.debug("detect thread stopped")

    def _detect_batch(self, frames: list[Frame]) -> None:
        started = time.monotonic()
        try:
            detections = self.detector.detect([f.image for f in frames])
        except Exception:
            log.exception("detector failed on a batch of %d frames; skipping it", len(frames))
            self.metrics.stage_errors.labels("detect").inc()
            time.sleep(0.5)  # a persistent failure must not spin the CPU
            return
        finished = time.monotonic()
        self.last_batch_mono = finished
        self.metrics.batch_size.observe(len(frames))
        self.metrics.inference_seconds.observe(finished - started)
        self.metrics.last_batch.set_to_current_time()
        for frame, dets in zip(frames, detections):
            self._put_analysis(DetectedFrame(frame=frame, detections=dets, ts_detected=finished))

    def _put_analysis(self, item: object, force: bool = False) -> None:
        while True:
            try:
                self._analysis.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._stop_detect.is_set() and not force:
                    return

    def _analyse_loop(self) -> None:
        while True:
            item = self._analysis.get()
            if item is _STOP:
                break
            try:
                self._analyse(item)
            except Exception:
                log.exception("analysis failed for a frame of camera %s", item.frame.camera)
                self.metrics.stage_errors.labels("analyse").inc()
        log.debug("analyse thread stopped")

    def _analyse(self, item: DetectedFrame) -> None:
        frame, dets = item.frame, item.detections
        names = self.detector.class_names
        for class_id, count in zip(*np.unique(dets.class_id, return_counts=True)):
            name = names[class_id] if class_id < len(names) else str(class_id)
            self.metrics.detections.labels(frame.camera, name).inc(int(count))
        tracks = self._trackers[frame.camera].update(dets, now=frame.ts_wall)
        info = FrameInfo(frame.camera, frame.width, frame.height, frame.ts_wall, frame.ts_mono, frame.seq)
        for rule in self._rules[frame.camera]:
            for event in rule.evaluate(info, tracks):
                self._emit(Alert.from_event(event, getattr(rule, "severity", "warning"), self._snapshot(frame)))
        self.metrics.frames_processed.labels(frame.camera).inc()
        self.metrics.frame_latency_seconds.labels(frame.camera).observe(time.monotonic() - frame.ts_mono)

    def _snapshot(self, frame: Frame) -> bytes | None:
        if not self.config.alerts.snapshot:
            return None
        ok, buffer = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return buffer.tobytes() if ok else None

    def _emit(self, alert: Alert) -> None:
        log.info("alert %s: camera=%s rule=%s zone=%s track=%s class=%s", alert.id, alert.event.camera,
                 alert.event.rule, alert.event.zone, alert.event.track_id, alert.event.class_name)
        for sink in self._sinks:
            try:
                sink.publish_alert(alert)
            except Exception:
                log.exception("alert sink %s failed for alert %s", type(sink).__name__, alert.id)
                self.metrics.stage_errors.labels("sink").inc()
        self.metrics.alerts.labels(alert.event.camera, alert.event.rule).inc()
        self.metrics.alert_latency_seconds.observe(time.monotonic() - alert.event.ts_mono)
