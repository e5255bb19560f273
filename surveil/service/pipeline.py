"""The one module that wires the stages together.

    capture threads -> FrameBoard -> detect thread -> bounded queue -> analyse thread -> sinks
    (one per camera)   (newest wins)  (one forward     (DetectedFrame)  (one CameraAnalyzer (MQTT spool,
                                       per batch)                         per camera)        JSON lines)

Camera status changes and once-a-second ticks reach the analysers through the analyse thread
too, so every analyser is only ever driven by one thread.

Stages do not import each other; they talk through the callables and small protocols given
to them here. Metrics observe every stage.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surveil.analysis.analyzer import CameraAnalyzer, build_analyzer
from surveil.analysis.render import encode_jpeg
from surveil.config import Config
from surveil.detection.factory import create_detector
from surveil.detection.protocol import Detector, ModelLoadError, implausible_boxes
from surveil.redact import redact
from surveil.review.recorder import Review
from surveil.rules import RuleBuildError, StateReport
from surveil.service.detector_worker import DetectorPool, WorkerDetector, WorkerUnavailable, lane_configs, start_pool
from surveil.service.frame_board import FrameBoard
from surveil.service.metrics import Metrics
from surveil.service.status import CameraView, ProcessedRate
from surveil.sinks.outputs import Handover, Outputs, SinkSetupError
from surveil.types import AlertUpdate, DetectedFrame, Detections, Frame
from surveil.video.motion import MotionGate, motion_settings
from surveil.video.source import CameraSource, OpenCapture, reason_kind

log = logging.getLogger(__name__)

_STOP = object()
_FRAME_VERSIONS = itertools.count(1)  # unique across pipelines, so a reload never repeats a version


class PipelineError(Exception):
    """The pipeline cannot be built from this config (the message says why)."""


@dataclass(frozen=True)
class _StatusTick:
    """For the analyse thread: a camera went up or down (``up`` set), or a once-a-second check."""

    camera: str
    now: float
    ts_wall: float
    up: bool | None = None
    reason: str = ""


class _CaptureEvents:
    """CaptureEvents for the capture stage: metrics, MQTT camera status and the analysers (capture logs itself)."""

    def __init__(self, metrics: Metrics, status: Callable[[str, bool, str], None]):
        self._metrics = metrics
        self._status = status
        self.offered = ProcessedRate()  # frames each camera delivers per second (the live view's "offered")

    def frame_read(self, camera: str) -> None:
        self._metrics.frames_captured.labels(camera).inc()
        self.offered.tick(camera, time.monotonic())
        self._metrics.camera_last_frame.labels(camera).set_to_current_time()

    def frame_skipped(self, camera: str) -> None:
        self._metrics.frames_skipped.labels(camera).inc()

    def camera_up(self, camera: str) -> None:
        self._metrics.camera_up.labels(camera).set(1)
        self._metrics.set_down_reason(camera, None)
        self._status(camera, True, "streaming")

    def camera_down(self, camera: str, reason: str) -> None:
        self._metrics.camera_up.labels(camera).set(0)
        self._metrics.set_down_reason(camera, reason_kind(reason))
        self._status(camera, False, redact(reason))  # the one door for reasons: MQTT status, alerts, the live view

    def reconnect_attempt(self, camera: str) -> None:
        self._metrics.camera_reconnects.labels(camera).inc()


class _WorkerEvents:
    """WorkerEvents (surveil.service.detector_worker) for the detector pool: its metrics."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def worker_exited(self, worker: str, kind: str, why: str) -> None:
        self._metrics.worker_up.labels(worker).set(0)
        self._metrics.set_worker_exit(worker, kind)

    def worker_started(self, worker: str, restart: bool) -> None:
        self._metrics.worker_up.labels(worker).set(1)
        if restart:
            self._metrics.worker_restarts.labels(worker).inc()

    def worker_answered(self, worker: str, waited_s: float, busy_s: float) -> None:
        self._metrics.worker_wait_seconds.labels(worker).observe(waited_s)
        self._metrics.worker_compute_seconds.labels(worker).inc(busy_s)


class _MqttEvents:
    """MqttEvents (surveil.sinks.mqtt.events) for the MQTT sink: its metrics."""

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

    def spool_writable(self, ok: bool) -> None:
        self._metrics.spool_writable.set(1 if ok else 0)

    def spool_bypassed(self) -> None:
        self._metrics.spool_bypassed.inc()


@dataclass(frozen=True)
class Health:
    threads_alive: bool
    detector_stalled: bool
    dead_threads: tuple[str, ...]
    analysis_failing: tuple[str, ...] = ()  # "camera: why" for each camera whose analysis keeps failing
    detector_failing: tuple[str, ...] = ()  # why, for each detector worker that keeps dying


class AnalysisFailures:
    """Per camera: the current run of analysis failures (a frame or a status tick that raised).

    A camera's analysis is *failing* once a run without one success holds at least ``min_failures``
    failures spread over at least ``window_s`` seconds (a single bad frame, or a burst within a
    moment, is not). One successful frame ends the run. Used by the analyse thread (writes) and
    the supervisor (reads) under one lock."""

    def __init__(self, min_failures: int = 5, window_s: float = 10.0):
        self.min_failures, self.window_s = min_failures, window_s
        self._runs: dict[str, tuple[int, float, float, str]] = {}  # camera -> (count, first, latest, why)
        self._lock = threading.Lock()

    def failed(self, camera: str, exc: BaseException, now: float) -> None:
        why = f"{type(exc).__name__}: {redact(str(exc))[:160]}".rstrip(": ")
        with self._lock:
            count, first, _latest, _why = self._runs.get(camera, (0, now, now, ""))
            self._runs[camera] = (count + 1, first, now, why)

    def succeeded(self, camera: str) -> None:
        if camera in self._runs:
            with self._lock:
                self._runs.pop(camera, None)

    def failing(self) -> tuple[str, ...]:
        with self._lock:
            runs = sorted(self._runs.items())
        return tuple(
            f"{camera}: analysis failed {count} times in a row over {latest - first:.0f} s (latest: {why})"
            for camera, (count, first, latest, why) in runs
            if count >= self.min_failures and latest - first >= self.window_s
        )


def load_detector(config: Config) -> Detector:
    """The detector of ``detector.backend``; ONNX exports are cached in ``<state_dir>/model-cache``. Several
    detectors, or any in worker processes (``detector.isolation: process``), come as a started DetectorPool."""
    cache_dir = Path(config.state_dir) / "model-cache" if config.state_dir else None
    try:
        if config.detector.isolation == "process" or len(lane_configs(config.detector)) > 1:
            return start_pool(config.detector, cache_dir)
        return create_detector(config.detector, cache_dir)
    except ModelLoadError as exc:
        raise PipelineError(str(exc)) from None


def build_analyzers(
    config: Config,
    detector: Detector,
    metrics: Metrics,
    keep: dict[str, CameraAnalyzer] | None = None,
    previous: Config | None = None,
) -> dict[str, CameraAnalyzer]:
    """One analyser per enabled camera; those of cameras whose analysis config did not change are kept
    (so nobody already inside a zone alerts again after a reload). Raises PipelineError for rules
    the detector cannot serve."""
    keep = keep or {}
    thresholds = getattr(detector, "operating_thresholds", None)

    def suppressed(camera: str, rule: str, reason: str) -> None:
        metrics.incidents_suppressed.labels(camera, rule, reason).inc()

    analyzers = {}
    for camera in config.enabled_cameras:
        if camera.name in keep and previous is not None and _same_analysis(previous, config, camera.name):
            analyzers[camera.name] = keep[camera.name]
            continue
        try:
            analyzers[camera.name] = build_analyzer(
                camera,
                config.tracker,
                detector.class_names,
                operating_thresholds=thresholds,
                snapshots=config.alerts.snapshot,
                on_suppressed=suppressed,
            )
        except RuleBuildError as exc:
            raise PipelineError(str(exc)) from None
    return analyzers


def _same_analysis(old: Config, new: Config, camera: str) -> bool:
    def of(config: Config) -> tuple[object, ...]:
        cam = next((c for c in config.enabled_cameras if c.name == camera), None)
        return (cam, config.tracker, config.detector, config.alerts.snapshot)

    return of(old) == of(new)


class Pipeline:
    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        detector: Detector | None = None,
        open_capture: OpenCapture | None = None,
        analyzers: dict[str, CameraAnalyzer] | None = None,
        handed: Handover | None = None,
    ):
        """``handed``: the running MQTT sink handed over by the pipeline a reload replaces (see ``stop``);
        this pipeline then owns it (and its spool) and does not start it again."""
        self.config = config
        self.metrics = metrics
        self.detector = detector or load_detector(config)
        metrics.detector_up.set(1)
        self._lanes, self._lane_names = self._wire_lanes(self.detector, metrics)
        self._implausible_seen = [implausible_boxes(lane) for lane in self._lanes]  # a handed detector's count so far
        cameras = config.enabled_cameras
        self.analyzers = analyzers if analyzers is not None else build_analyzers(config, self.detector, metrics)
        for analyzer in self.analyzers.values():
            analyzer.on_state = self._publish_state
        self._status_events: queue.SimpleQueue = queue.SimpleQueue()  # tiny traffic: status changes, 1 tick/s/camera
        self._board = FrameBoard(
            on_drop=lambda camera: metrics.frames_dropped.labels(camera).inc(), lanes=len(self._lanes)
        )
        self._analysis: queue.Queue = queue.Queue(maxsize=max(4, 2 * len(cameras)))
        self._stop_detect = threading.Event()
        try:  # the one place that knows the concrete sinks
            self._outputs = Outputs(config, _MqttEvents(metrics), handed)
        except SinkSetupError as exc:
            raise PipelineError(str(exc)) from None
        events = self._capture_events = _CaptureEvents(metrics, self._camera_status)
        self._sources = [
            CameraSource(c, self._board.put, events)
            if open_capture is None
            else CameraSource(c, self._board.put, events, open_capture=open_capture)
            for c in cameras
        ]
        self._threads: list[threading.Thread] = []
        self.last_batch_mono = time.monotonic()
        self.analysis_failures = AnalysisFailures()
        for camera in cameras:
            metrics.init_camera(camera)
        state_dir = Path(config.state_dir) if config.state_dir else None
        self.review = Review(config.review, state_dir, metrics.review)  # snapshots and clips (surveil.review)
        self._review_ticked = 0.0
        for fleet in self._outputs.fleet:  # retained, sent once connected (and after every reconnect)
            fleet.publish_fleet([c.name for c in cameras], config.sharding.index, config.sharding.instances)
        # for the live view (surveil.web.server.ViewProvider): camera state, analysed frames and version;
        # the analysed-frame rate is the metrics' (surveil_camera_processed_fps), so the two agree
        self._camera_state = {c.name: ("starting", "") for c in cameras}
        self._frames_analysed = dict.fromkeys((c.name for c in cameras), 0)
        self._frame_versions: dict[str, int] = {}
        self._last_wall: dict[str, float] = {}  # camera -> wall-clock time of its newest analysed frame
        self._gates = {  # motion gating (only the detect thread touches these)
            c.name: MotionGate(motion_settings(c.motion, config.tracker)) for c in cameras if c.motion.enabled
        }

    @staticmethod
    def _wire_lanes(detector: Detector, metrics: Metrics) -> tuple[list[Detector], list[str]]:
        """The detectors with a detect thread each (a DetectorPool's, or just ``detector``), their metrics."""
        if not isinstance(detector, DetectorPool):
            metrics.init_worker("worker-0", isolated=False)
            return [detector], ["worker-0"]
        detector.set_events(_WorkerEvents(metrics))
        for lane, name in zip(detector.lanes, detector.names):
            isolated = isinstance(lane, WorkerDetector)
            metrics.init_worker(name, isolated)
            if isinstance(lane, WorkerDetector):
                metrics.worker_up.labels(name).set(1 if lane.ready else 0)
                metrics.set_worker_exit(name, lane.last_exit[0])
        return list(detector.lanes), list(detector.names)

    @property
    def outputs(self) -> Outputs:
        """The sinks this pipeline publishes to (read-only; for tests and diagnostics)."""
        return self._outputs

    def _camera_status(self, camera: str, up: bool, reason: str) -> None:
        self._camera_state[camera] = ("up" if up else "down", reason)
        for sink in self._outputs.status:
            sink.publish_camera_status(camera, up, reason)
        self._status_events.put(_StatusTick(camera, time.monotonic(), time.time(), up=up, reason=reason))

    def _publish_state(self, camera: str, report: StateReport, previous: dict[str, int]) -> None:
        """Counts for dashboards: Prometheus and the state sinks (a retained MQTT topic)."""
        self.metrics.observe_state(camera, report, previous)
        for sink in self._outputs.states:
            sink.publish_counts(camera, report, time.time())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._outputs.start(self.config.enabled_cameras)
        self._threads = [
            threading.Thread(target=self._detect_loop, args=(lane,), name=f"detect{lane or ''}", daemon=True)
            for lane in range(len(self._lanes))
        ] + [threading.Thread(target=self._analyse_loop, name="analyse", daemon=True)]
        for thread in self._threads:
            thread.start()
        for source in self._sources:
            self._board.register(source.config.name)
            source.start()

    def stop(
        self, timeout: float = 8.0, keep_incidents: Container[str] = frozenset(), hand_over_mqtt: bool = False
    ) -> Handover | None:
        """Ordered shutdown: capture, then the batch in flight, then analysis, then sinks.

        Open incidents end (``end_reason: stopped``) except those of the cameras in
        ``keep_incidents``, whose analysers a reloaded pipeline carries on. With ``hand_over_mqtt``
        the MQTT publisher and its spool stay open and are returned, for the next pipeline
        (``Pipeline(handed=...)``); the spool is never open twice."""
        deadline = time.monotonic() + timeout
        for source in self._sources:
            source.request_stop()
        for source in self._sources:
            source.stop(timeout=max(0.05, min(2.0, deadline - 4.0 - time.monotonic())))
        self._stop_detect.set()
        if self._threads:
            *detects, analyse = self._threads
            for detect in detects:
                detect.join(timeout=max(0.1, deadline - time.monotonic() - 2.0))
            self._put_analysis(_STOP, force=True)
            analyse.join(timeout=max(0.1, deadline - time.monotonic() - 1.5))
        self._end_incidents(keep_incidents)
        self.review.close(timeout=max(0.1, min(5.0, deadline - time.monotonic() - 1.0)))
        return self._outputs.close(deadline, hand_over=hand_over_mqtt)

    def _end_incidents(self, keep: Container[str]) -> None:
        now, wall = time.monotonic(), time.time()
        for name, analyzer in self.analyzers.items():
            if name in keep:
                continue
            try:
                for update in analyzer.close(now, wall, reason="stopped"):
                    self._emit(update)
            except Exception:
                log.exception("could not end the open incidents of camera %s", name)

    def housekeeping(self, now_mono: float | None = None) -> Health:
        """Called about once a second by the daemon: stall checks, gauges, thread health."""
        now = time.monotonic() if now_mono is None else now_mono
        for source in self._sources:
            source.check_stall(now)
        wall = time.time()
        for camera in self.analyzers:
            self._status_events.put(_StatusTick(camera, now, wall))
        self.metrics.update_processed_fps(self.analyzers, now)
        frames_waiting = self._board.pending()
        self.metrics.queue_depth.labels("frames").set(frames_waiting)
        self.metrics.queue_depth.labels("analysis").set(self._analysis.qsize())
        dead = tuple(t.name for t in self._threads if not t.is_alive())
        dead += tuple(
            f"capture-{s.config.name}" for s in self._sources if not s.is_alive() and self._source_should_run(s)
        )
        stalled = frames_waiting > 0 and now - self.last_batch_mono > self.config.watchdog_stall_s
        pool = self.detector if isinstance(self.detector, DetectorPool) else None
        if pool is not None:
            pool.check()  # a worker that died between batches
        return Health(
            threads_alive=not dead,
            detector_stalled=stalled,
            dead_threads=dead,
            analysis_failing=self.analysis_failures.failing(),
            detector_failing=pool.failing(now) if pool is not None else (),
        )

    @staticmethod
    def _source_should_run(source: CameraSource) -> bool:
        config = source.config
        return not (config.kind == "file" and not config.loop)

    # ------------------------------------------------------------------ stages

    def _detect_loop(self, lane: int = 0) -> None:
        d = self.config.detector
        while not self._stop_detect.is_set():
            frames = self._board.take_batch(d.batch_size, d.max_wait_ms / 1000.0, self._stop_detect)
            if frames:
                try:
                    self._detect_batch(frames, lane)
                finally:
                    self._board.release([f.camera for f in frames])
        log.debug("detect thread %d stopped", lane)

    def _detect_batch(self, frames: list[Frame], lane: int = 0) -> None:
        started = time.monotonic()
        for frame in frames:
            self.metrics.stage_seconds.labels("wait").observe(max(0.0, started - frame.ts_mono))
        frames = self._skip_still(frames, started)
        if not frames:
            self.last_batch_mono = started  # progress: every frame was served without the detector
            return
        try:
            detections = self._lanes[lane].detect([f.image for f in frames])
        except WorkerUnavailable:  # restarting: these frames are lost; tracks coast, incidents stay open
            for frame in frames:
                self.metrics.detector_frames_lost.labels(frame.camera).inc()
            return
        except Exception:
            log.exception("detector failed on a batch of %d frames; skipping it", len(frames))
            self.metrics.stage_errors.labels("detect").inc()
            time.sleep(0.5)  # a persistent failure must not spin the CPU
            return
        finished = time.monotonic()
        self.last_batch_mono = finished
        self.metrics.detector_busy_seconds.labels(self._lane_names[lane]).inc(finished - started)
        self._count_implausible(lane)
        self.metrics.batch_size.observe(len(frames))
        self.metrics.inference_seconds.observe(finished - started)
        self.metrics.last_batch.set_to_current_time()
        for frame, dets in zip(frames, detections):
            if (gate := self._gates.get(frame.camera)) is not None:
                gate.detected(len(dets))
            self._put_analysis(DetectedFrame(frame=frame, detections=dets, ts_detected=finished))

    def _count_implausible(self, lane: int) -> None:
        """Add the boxes the lane's detector dropped as implausible since the last batch to the metric."""
        total = implausible_boxes(self._lanes[lane])
        if total > self._implausible_seen[lane]:
            self.metrics.implausible_boxes.labels(self._lane_names[lane]).inc(total - self._implausible_seen[lane])
        self._implausible_seen[lane] = total

    def _skip_still(self, frames: list[Frame], now: float) -> list[Frame]:
        """Motion gating: frames without motion (and no keep-alive due) go to their analyser with no
        detections, so the tracker predicts and time-based rules run; returns the frames to detect."""
        if not self._gates:
            return frames
        keep = []
        for frame in frames:
            gate = self._gates.get(frame.camera)
            if gate is None or gate.should_detect(frame.image, frame.ts_mono):
                keep.append(frame)
                continue
            self.metrics.detector_skipped.labels(frame.camera).inc()
            self._put_analysis(DetectedFrame(frame=frame, detections=Detections.empty(), ts_detected=now))
        return keep

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
            self._drain_status()
            self._review_tick()
            try:
                item = self._analysis.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _STOP:
                break
            try:
                self._analyse(item)
            except Exception as exc:
                log.exception("analysis failed for a frame of camera %s", item.frame.camera)
                self._analysis_failed(item.frame.camera, exc)
            else:
                self.analysis_failures.succeeded(item.frame.camera)
        log.debug("analyse thread stopped")

    def _drain_status(self) -> None:
        while True:
            try:
                tick = self._status_events.get_nowait()
            except queue.Empty:
                return
            analyzer = self.analyzers.get(tick.camera)
            if analyzer is None:
                continue
            try:
                if tick.up is None:
                    updates = analyzer.tick(tick.now, tick.ts_wall)
                else:
                    updates = analyzer.stream_changed(tick.up, tick.reason, tick.now, tick.ts_wall)
            except Exception as exc:
                log.exception("status check failed for camera %s", tick.camera)
                self._analysis_failed(tick.camera, exc)
                continue
            for update in updates:
                self._emit(update)

    def _analysis_failed(self, camera: str, exc: Exception) -> None:
        self.metrics.stage_errors.labels("analyse").inc()
        self.metrics.analysis_errors.labels(camera).inc()
        self.analysis_failures.failed(camera, exc, time.monotonic())

    def _analyse(self, item: DetectedFrame) -> None:
        started = time.monotonic()
        frame, dets = item.frame, item.detections
        analyzer = self.analyzers[frame.camera]
        ctx = analyzer.context(frame, dets)
        self._count_detections(frame.camera, dets[ctx.confident])
        updates = analyzer.process(ctx)
        self._review_frame(frame, analyzer)  # first: an alert's snapshot is its own frame
        for update in updates:
            self._emit(update)
        self.metrics.frame_processed(frame.camera, time.monotonic())  # the fps meter of the gauge and the live view
        self._frames_analysed[frame.camera] += 1
        self._last_wall[frame.camera] = frame.ts_wall
        self._frame_versions[frame.camera] = next(_FRAME_VERSIONS)
        finished = time.monotonic()
        self.metrics.stage_seconds.labels("analyse").observe(finished - started)
        self.metrics.frame_latency_seconds.labels(frame.camera).observe(finished - frame.ts_mono)

    # ------------------------------------------------------------------ the live view (surveil.web.server.ViewProvider)

    def camera_views(self) -> list[CameraView]:
        now = time.monotonic()
        return [self._camera_view(name, count, now) for name, count in self._frames_analysed.items()]

    def _camera_view(self, name: str, count: int, now: float) -> CameraView:
        fps = self.metrics.processed_fps(name, now)
        offered = self._capture_events.offered.rate(name, now)
        return CameraView(
            name,
            *self._camera_state[name],
            fps=fps,
            frames=count,
            offered_fps=offered,
            drop_ratio=min(1.0, max(0.0, 1.0 - fps / offered)) if offered > 0 else 0.0,
            last_frame_ts=self._last_wall.get(name),
        )

    def service_status(self) -> dict[str, object]:
        """For the live page: MQTT connection and spool, and the incidents in progress."""
        registry = self.metrics.registry
        return {
            "mqtt": {
                "enabled": self.config.mqtt.enabled,
                "connected": bool(registry.get_sample_value("surveil_mqtt_connected")),
                "spool": int(registry.get_sample_value("surveil_alert_spool_size") or 0),
            },
            "incidents": self.review.open_incidents(),
            "review": self.review.store is not None,
        }

    def frame_version(self, camera: str) -> int | None:
        self.analyzers[camera]  # KeyError for a camera this pipeline does not have
        return self._frame_versions.get(camera)

    def annotated_frame(self, camera: str) -> tuple[int, np.ndarray] | None:
        version = self.frame_version(
            camera
        )  # read before drawing: a newer frame drawn under it is sent again, not lost
        image = self.analyzers[camera].annotated_latest()
        return None if version is None or image is None else (version, image)

    def _count_detections(self, camera: str, dets: Detections) -> None:
        names = self.detector.class_names
        for class_id, count in zip(*np.unique(dets.class_id, return_counts=True)):
            name = names[class_id] if class_id < len(names) else str(class_id)
            self.metrics.detections.labels(camera, name).inc(int(count))

    def _review_frame(self, frame: Frame, analyzer: CameraAnalyzer) -> None:
        if not self.review.wants_frames:
            return
        try:
            image = analyzer.annotated_latest()
            jpeg = None if image is None else encode_jpeg(image, 80)
            if jpeg is not None:
                self.review.frame(frame.camera, frame.ts_wall, jpeg)
        except Exception:
            log.exception("review: could not keep a frame of camera %s", frame.camera)
            self.metrics.stage_errors.labels("review").inc()

    def _review_tick(self) -> None:
        now = time.monotonic()
        if now - self._review_ticked < 1.0:
            return
        self._review_ticked = now
        try:
            self.review.tick()
        except Exception:
            log.exception("review: housekeeping failed")
            self.metrics.stage_errors.labels("review").inc()

    def _emit(self, alert: AlertUpdate) -> None:
        try:  # the review adds the snapshot and clip URLs; its failure must not cost the alert
            alert = self.review.alert(alert)
        except Exception:
            log.exception("review: could not record alert %s", alert.id)
            self.metrics.stage_errors.labels("review").inc()
        subjects = ",".join(f"#{s.track_id} {s.class_name}" for s in alert.subjects) or "-"
        log.info(
            "alert %s %s: camera=%s rule=%s (%s) incident=%s subjects=%s details=%s",
            alert.phase,
            alert.severity,
            alert.camera,
            alert.rule,
            alert.rule_type,
            alert.incident_id,
            subjects,
            alert.details,
        )
        for sink in self._outputs.alerts:
            try:
                sink.publish_alert(alert)
            except Exception:
                log.exception("alert sink %s failed for alert %s", type(sink).__name__, alert.id)
                self.metrics.stage_errors.labels("sink").inc()
        self.metrics.alert_messages.labels(alert.camera, alert.rule, alert.phase).inc()
        self.metrics.incidents_open.labels(alert.camera, alert.rule).inc({"start": 1, "end": -1}.get(alert.phase, 0))
        if alert.phase == "start":
            self.metrics.alerts.labels(alert.camera, alert.rule).inc()
            self.metrics.alert_latency_seconds.observe(max(0.0, time.monotonic() - alert.ts_mono))
