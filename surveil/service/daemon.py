"""The long-running process: signals, systemd notifications, watchdog and reload.

SIGTERM / SIGINT: ordered stop, exit 0. SIGHUP: re-read the config; a valid one replaces the
running pipeline, an invalid one is logged and the old pipeline keeps running. What did not change
carries on: the analysers (tracks, open incidents) of unchanged cameras, the detector when the model
did not change, and the MQTT connection and spool when the ``mqtt`` section did not change.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np

from surveil.config import Config, ConfigError, load_config
from surveil.detection.capacity import log_startup_capacity
from surveil.detection.protocol import Detector
from surveil.review.store import ReviewStore
from surveil.service import sharding
from surveil.service.logsetup import configure_logging
from surveil.service.metrics import Metrics
from surveil.service.pipeline import Health, Pipeline, PipelineError, build_analyzers, load_detector
from surveil.service.sdnotify import Notifier
from surveil.service.startup import preflight
from surveil.service.status import CameraView
from surveil.sinks.mqtt.home_assistant import discovery_topics
from surveil.web.server import WebServer

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1


class Daemon:
    def __init__(
        self,
        config_path: str | Path,
        config: Config,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        detector: Detector | None = None,
        shard: str | None = None,
    ):
        self.config_path = Path(config_path)
        self._shard_flag = shard  # `--shard i/N`, applied again to every reloaded config
        self._detector = detector  # None = build from config (tests inject a scripted one)
        self.config = config
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier()
        self.stop_requested = threading.Event()
        self._reload_requested = threading.Event()
        self._pipeline: Pipeline | None = None
        self._http: WebServer | None = None  # /metrics and the live view; outlives reloads
        self.metrics_port: int | None = None
        self._health: tuple[Health | None, float] = (
            None,
            time.monotonic(),
        )  # the supervisor's latest check, for /healthz

    @property
    def pipeline(self) -> Pipeline | None:
        """The running pipeline (None before the first starts); a reload replaces it. Read-only."""
        return self._pipeline

    # ------------------------------------------------------------------ signals

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_requested.set()

    def _on_reload_signal(self, _signum: int, _frame: object) -> None:
        self._reload_requested.set()

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Start everything, supervise until asked to stop; returns the exit status."""
        self._start_http()
        pipeline = self._pipeline = Pipeline(self.config, self.metrics, detector=self._detector)
        if self._detector is None:  # our own model: time it after warm-up, log what each camera can expect
            log_startup_capacity(pipeline.detector, self.config.enabled_cameras)
        pipeline.start()
        cameras = len(self.config.enabled_cameras)
        self.notifier.ready(f"watching {cameras} camera{'s' if cameras != 1 else ''}")
        shard = self.config.sharding
        if shard.instances > 1:
            log.info(
                "surveil running with %d camera(s), shard %s/%d: %s",
                cameras,
                shard.index,
                shard.instances,
                ", ".join(c.name for c in self.config.enabled_cameras) or "none",
            )
        else:
            log.info("surveil running with %d camera(s)", cameras)
        try:
            status = self._supervise()
        finally:
            self._shutdown()
        return status

    def _start_http(self) -> None:
        metrics, web = self.config.metrics, self.config.web
        if not (metrics.enabled or web.enabled):
            return
        registry = self.metrics.registry if metrics.enabled else None
        self._http = WebServer(metrics.host, metrics.port, self, registry=registry, config=web).start()
        self.metrics_port = self._http.port
        base = f"http://{metrics.host}:{self.metrics_port}"
        if metrics.enabled:
            log.info("metrics on %s/metrics", base)
        if web.enabled:
            log.info("live view on %s/", base)

    # ------------------------------------------------------------------ the live view (surveil.web.server.ViewProvider)

    def camera_views(self) -> list[CameraView]:
        pipeline = self._pipeline
        return [] if pipeline is None else pipeline.camera_views()

    def frame_version(self, camera: str) -> int | None:
        pipeline = self._pipeline
        if pipeline is None:
            raise KeyError(camera)
        return pipeline.frame_version(camera)

    def annotated_frame(self, camera: str) -> tuple[int, np.ndarray] | None:
        pipeline = self._pipeline
        if pipeline is None:
            raise KeyError(camera)
        return pipeline.annotated_frame(camera)

    def service_status(self) -> dict[str, object]:
        """MQTT state, spool size and open incidents for the live page (empty before the first pipeline)."""
        pipeline = self._pipeline
        return {} if pipeline is None else pipeline.service_status()

    def review_store(self) -> ReviewStore | None:
        """The incidents kept for review (surveil.web.review); None when review is off or before the first pipeline."""
        pipeline = self._pipeline
        return None if pipeline is None else pipeline.review.store

    # ------------------------------------------------------------------ Kubernetes probes (/healthz, /readyz)

    def liveness(self) -> tuple[bool, str]:
        """Threads alive and the detector progressing, as the supervisor last saw them (it checks every second)."""
        health, at = self._health
        if health is None:
            return True, "starting"
        age = time.monotonic() - at
        if age > 30:
            return False, f"the supervisor has not checked the pipeline for {age:.0f} s"
        if not health.threads_alive:
            return False, f"thread(s) died: {', '.join(health.dead_threads)}"
        if health.detector_stalled:
            return False, f"detector has finished no batch for {self.config.watchdog_stall_s:.0f} s while frames wait"
        if health.analysis_failing:
            return False, "; ".join(health.analysis_failing)
        if health.detector_failing:
            return False, "; ".join(health.detector_failing)
        return True, "threads alive, detector progressing"

    def readiness(self) -> tuple[bool, str]:
        """The model loaded and at least one owned camera delivering analysed frames (an instance owning none is ready)."""
        pipeline = self._pipeline
        if pipeline is None:
            return False, "loading the model"
        views = pipeline.camera_views()
        if not views:
            return True, "this shard owns no camera"
        delivering = [v.name for v in views if v.state == "up" and v.frames > 0]
        if not delivering:
            return False, f"none of {len(views)} owned camera(s) delivering yet"
        return True, f"{len(delivering)} of {len(views)} owned camera(s) delivering"

    def _supervise(self) -> int:
        interval = min(1.0, self.notifier.watchdog_interval_s or 1.0)
        while not self.stop_requested.wait(interval):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                try:
                    self._reload()
                except Exception:  # a bug; the health check below still notices a pipeline it left stopped
                    log.exception("reload failed; keeping the running configuration")
            pipeline = self._pipeline
            assert pipeline is not None  # run() starts one before supervising; a reload always leaves one
            health = pipeline.housekeeping()
            self._health = (health, time.monotonic())
            if not health.threads_alive:
                log.error(
                    "pipeline thread(s) died: %s; exiting so the service manager restarts us",
                    ", ".join(health.dead_threads),
                )
                return EXIT_FAILURE
            if health.detector_stalled:
                log.error(
                    "detector has finished no batch for %.0f s while frames wait; withholding watchdog ping",
                    self.config.watchdog_stall_s,
                )
                self.notifier.status("detector stalled")
                continue
            if health.analysis_failing:
                log.error("analysis keeps failing, withholding watchdog ping: %s", "; ".join(health.analysis_failing))
                self.notifier.status("analysis failing")
                continue
            if health.detector_failing:
                log.error(
                    "detector worker keeps dying, withholding watchdog ping: %s", "; ".join(health.detector_failing)
                )
                self.notifier.status("detector worker failing")
                continue
            self.notifier.watchdog()
        return EXIT_OK

    def _reload(self) -> None:
        log.info("reloading %s", self.config_path)
        try:
            new_config = load_shard(self.config_path, self._shard_flag)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running configuration:\n%s", exc)
            return
        if new_config.metrics != self.config.metrics:
            log.warning("metrics.listen changed; it takes effect at the next restart")
        self.notifier.reloading()
        old_pipeline, old_config = self._pipeline, self.config
        assert old_pipeline is not None  # reloads happen only while supervising a running pipeline
        try:
            same_model = new_config.detector == old_config.detector
            detector = old_pipeline.detector if same_model else (self._detector or load_detector(new_config))
            analyzers = build_analyzers(
                new_config, detector, self.metrics, keep=old_pipeline.analyzers, previous=old_config
            )
        except PipelineError as exc:
            log.error("reload rejected, keeping the running configuration: %s", exc)
            self.notifier.ready("reload failed; old configuration kept")
            return
        kept = {name for name, analyzer in analyzers.items() if old_pipeline.analyzers.get(name) is analyzer}
        same_mqtt = new_config.mqtt == old_config.mqtt  # then the connection carries on: no offline/online blip
        if not same_mqtt:
            _withdraw_discovery(old_pipeline, new_config)
        # releases the camera handles, and the spool unless the publisher is handed over (never open twice)
        handed = old_pipeline.stop(keep_incidents=kept, hand_over_mqtt=same_mqtt)
        try:
            self._pipeline = Pipeline(new_config, self.metrics, detector=detector, analyzers=analyzers, handed=handed)
            self.config = new_config
            if detector is not old_pipeline.detector:
                self._close_detector(old_pipeline.detector)  # its worker processes, if any
            if self._http is not None:
                self._http.configure(new_config.web)  # auth and limits change at once; the server keeps serving
        except PipelineError as exc:
            log.error("reload failed after the old pipeline stopped (%s); restarting the old configuration", exc)
            self._pipeline = Pipeline(
                old_config,
                self.metrics,
                detector=old_pipeline.detector,
                analyzers={n: a for n, a in old_pipeline.analyzers.items() if n in kept},
                handed=handed,
            )
        self._pipeline.start()
        self.notifier.ready(f"reloaded: watching {len(new_config.enabled_cameras)} camera(s)")
        log.info("reload done")

    def _close_detector(self, detector: Detector) -> None:
        """Stop the worker processes of a detector this daemon built (an injected one is its owner's)."""
        close = getattr(detector, "close", None)
        if close is not None and detector is not self._detector:
            close()

    def _shutdown(self) -> None:
        self.notifier.stopping()
        started = time.monotonic()
        if self._pipeline is not None:
            self._pipeline.stop(timeout=8.0)
            self._close_detector(self._pipeline.detector)
        if self._http is not None:
            self._http.close()
        self.notifier.close()
        log.info("stopped in %.1f s", time.monotonic() - started)


def _withdraw_discovery(pipeline: Pipeline, new_config: Config) -> None:
    """Before a reload that changes the mqtt section: the old publisher clears its Home Assistant
    entities that the new one will not announce (a new discovery or topic prefix leaves them
    retained for ever otherwise). Those it will announce again stay, without a blip."""
    old = pipeline.outputs.mqtt
    if old is None:
        return
    keep = discovery_topics(new_config.mqtt, sharding.instance_name(new_config), new_config.enabled_cameras)
    cleared = old.withdraw_discovery(keep)
    if cleared:
        log.info("MQTT: cleared %d Home Assistant discovery entities of the previous mqtt section", cleared)


def load_shard(config_path: str | Path, shard: str | None = None) -> Config:
    """The config file as this process's shard (``--shard``, ``SURVEIL_SHARD``, ``sharding``); ConfigError if invalid."""
    config = load_config(config_path)
    try:
        return sharding.apply(config, shard)
    except sharding.ShardError as exc:
        raise ConfigError(str(exc)) from None


def run_daemon(config_path: str | Path, log_level: str | None = None, shard: str | None = None) -> int:
    config = load_shard(config_path, shard)  # ConfigError goes to the CLI, which exits 2
    configure_logging(log_level or config.logging.level, config.logging.format)
    preflight(config)  # StartupError (port in use, unwritable state_dir) too, before the model loads
    daemon = Daemon(config_path, config, shard=shard)
    daemon.install_signal_handlers()
    return daemon.run()
