"""The daemon's side of detector isolation: supervised worker processes, and the pool of detectors.

``detector.isolation: process`` runs each detector in a worker process (spawned, never forked: torch,
OpenVINO and CUDA do not survive a fork) behind the same ``Detector`` interface. Frames go through
shared-memory slots (:mod:`surveil.detection.worker`); the answers are the same ``Detections``.

A worker that dies (a segfault or an out-of-memory kill in a runtime or driver) or does not answer a
batch within ``detector.worker_deadline_s`` (then it is killed) is restarted in the background after
a back-off delay. Until it is ready again, ``detect`` raises :class:`WorkerUnavailable` at once: the
pipeline drops and counts those frames, the trackers coast and open incidents stay open. Repeated
deaths (``worker_deaths`` within ``worker_deaths_window_s``) make :meth:`DetectorPool.failing`
non-empty: /healthz turns red and the systemd watchdog ping is withheld.

:class:`DetectorPool` holds one detector per ``detector.devices`` entry (or ``detector.workers`` of
them), in-process or isolated; the pipeline runs one detect thread per detector on one frame board.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol

import numpy as np

from surveil.config import DetectorConfig
from surveil.detection.protocol import Detector, ModelLoadError
from surveil.detection.worker import DetectorFactory, FrameSlots, default_factory, slot_bytes_for, unpack, worker_main
from surveil.types import Detections

log = logging.getLogger(__name__)

HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets the back-off
EXIT_KINDS = ("none", "killed", "exited", "hung", "start_failed")  # surveil_detector_worker_last_exit{reason}


class WorkerUnavailable(RuntimeError):
    """The worker is (re)starting: this batch is dropped, not detected."""


class WorkerError(RuntimeError):
    """The worker's detector raised on this batch (the worker lives on)."""


class WorkerEvents(Protocol):
    """What the pool reports (the pipeline turns it into metrics)."""

    def worker_exited(self, worker: str, kind: str, why: str) -> None: ...
    def worker_started(self, worker: str, restart: bool) -> None: ...
    def worker_answered(self, worker: str, waited_s: float, busy_s: float) -> None: ...


class _NoEvents:
    def worker_exited(self, worker: str, kind: str, why: str) -> None:
        pass

    def worker_started(self, worker: str, restart: bool) -> None:
        pass

    def worker_answered(self, worker: str, waited_s: float, busy_s: float) -> None:
        pass


@dataclass(frozen=True)
class WorkerSettings:
    deadline_s: float = 30.0
    start_timeout_s: float = 300.0
    restart_min_s: float = 0.5
    restart_max_s: float = 30.0
    deaths: int = 3
    deaths_window_s: float = 600.0

    @classmethod
    def of(cls, config: DetectorConfig) -> WorkerSettings:
        return cls(
            config.worker_deadline_s,
            config.worker_start_timeout_s,
            config.worker_restart_min_s,
            config.worker_restart_max_s,
            config.worker_deaths,
            config.worker_deaths_window_s,
        )


class Backoff:
    """Restart delays: ``min_s``, doubling per consecutive death up to ``max_s`` (``min_s`` wins if larger); a worker that ran
    ``healthy_after_s`` before it died starts the series again."""

    def __init__(self, min_s: float, max_s: float, healthy_after_s: float = HEALTHY_AFTER_S):
        self.min_s, self.max_s, self.healthy_after_s = min_s, max_s, healthy_after_s
        self._consecutive = 0

    def next_delay(self, ran_s: float) -> float:
        """The delay before restarting a worker that died after running ``ran_s`` seconds."""
        if ran_s >= self.healthy_after_s:
            self._consecutive = 0
        delay = max(self.min_s, min(self.max_s, self.min_s * 2.0**self._consecutive))
        self._consecutive += 1
        return delay


class DeathLog:
    """Worker deaths in a sliding window: ``failing`` once ``limit`` fall within ``window_s``."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._deaths: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()

    def died(self, now: float, why: str) -> None:
        with self._lock:
            self._deaths.append((now, why))

    def failing(self, now: float) -> str | None:
        """Why the worker counts as failing (None: it does not)."""
        with self._lock:
            while self._deaths and self._deaths[0][0] <= now - self.window_s:
                self._deaths.popleft()
            if len(self._deaths) < self.limit:
                return None
            return f"died {len(self._deaths)} times in the last {self.window_s:.0f} s (latest: {self._deaths[-1][1]})"


def exit_reason(exitcode: int | None) -> tuple[str, str]:
    """(kind, words) for a worker process's exit code (negative: killed by that signal)."""
    if exitcode is None:
        return "hung", "did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return "killed", f"killed by {name}"
    return "exited", f"exited with status {exitcode}"


class WorkerDetector:
    """One detector in a supervised worker process; a ``Detector`` to the pipeline (one caller thread)."""

    def __init__(
        self,
        name: str,
        config: DetectorConfig,
        cache_dir: Path | None = None,
        factory: DetectorFactory = default_factory,
        settings: WorkerSettings | None = None,
    ):
        self.name, self._config, self._cache_dir, self._factory = name, config, cache_dir, factory
        self.settings = settings or WorkerSettings.of(config)
        self.events: WorkerEvents = _NoEvents()
        self.class_names: list[str] = []
        self.operating_thresholds: np.ndarray | None = None
        self.implausible_boxes = 0  # boxes the worker's detector dropped as implausible, every worker summed
        self.restarts = 0
        self.last_exit = ("none", "")
        self._backoff = Backoff(self.settings.restart_min_s, self.settings.restart_max_s)
        self._deaths = DeathLog(self.settings.deaths, self.settings.deaths_window_s)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()  # the process handle, the pipe and the slots
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._slots: FrameSlots | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._started_at = 0.0
        self._seq = 0
        self._restarter: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WorkerDetector:
        """Start the worker and wait for its model to load and warm up; ModelLoadError when it cannot."""
        self._spawn()
        return self

    def _spawn(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(child, self._config, self._cache_dir, self._factory),
            name=f"surveil-{self.name}",
            daemon=True,
        )
        process.start()
        child.close()
        hello = _receive(parent, process, self.settings.start_timeout_s)
        if hello is None or hello[0] != "ready":
            _kill(process)
            parent.close()
            why = hello[1] if hello else f"no answer within {self.settings.start_timeout_s:g} s, or it died"
            raise ModelLoadError(f"detector worker {self.name} could not start: {why}")
        if self._closed.is_set():  # closed while this (re)start was loading the model
            _kill(process)
            parent.close()
            return
        with self._lock:
            self._process, self._conn, self._started_at = process, parent, time.monotonic()
            self.class_names, self.operating_thresholds = hello[1], hello[2]
            self._ready.set()
        log.info("detector worker %s ready (pid %s)", self.name, process.pid)

    def close(self) -> None:
        self._closed.set()
        self._ready.clear()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(("stop",))
            self._reap(graceful_s=2.0)
            if self._slots is not None:
                self._slots.close()
                self._slots = None
        if self._restarter is not None:
            self._restarter.join(timeout=2.0)

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def failing(self, now: float) -> str | None:
        why = self._deaths.failing(now)
        return None if why is None else f"detector worker {self.name} {why}"

    # ------------------------------------------------------------------ the Detector interface

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        with self._lock:
            if not self._ready.is_set() or self._conn is None:
                raise WorkerUnavailable(f"detector worker {self.name} is restarting")
            self._seq += 1
            request = ("detect", self._seq, *self._write(images))
            started = time.monotonic()
            try:
                self._conn.send(request)
                answer = _receive(self._conn, self._process, self.settings.deadline_s, self._closed)
            except OSError:
                answer = None
            if answer is None:
                self._lost(started)
                raise WorkerUnavailable(f"detector worker {self.name} stopped answering; restarting it")
        return self._result(answer, self._seq, time.monotonic() - started)

    def _write(self, images: Sequence[np.ndarray]) -> tuple[str, int, list[tuple[int, int, int]]]:
        slots = self._slots
        if slots is None or not slots.fits(images):  # first batch, or a larger frame: a larger segment, once
            size = slot_bytes_for(images, slots.slot_bytes if slots else 0)
            if slots is not None:
                slots.close()
            slots = self._slots = FrameSlots.create(max(self._config.batch_size, len(images)), size)
        return slots.name, slots.slot_bytes, slots.write(images)

    def _result(self, answer: tuple, seq: int, waited_s: float) -> list[Detections]:
        if answer[0] == "error":
            raise WorkerError(f"detector worker {self.name}: {answer[2]}")
        if answer[0] != "result" or answer[1] != seq:
            raise WorkerError(f"detector worker {self.name} answered out of turn: {answer[:2]}")
        self.events.worker_answered(self.name, waited_s, answer[3])
        self.implausible_boxes += int(answer[4])
        return [unpack(packed) for packed in answer[2]]

    # ------------------------------------------------------------------ supervision

    def check(self) -> None:
        """Notice a worker that died while idle (the pipeline calls this about once a second)."""
        with self._lock:
            process = self._process
            if self._ready.is_set() and process is not None and not process.is_alive():
                self._lost(None)

    def _lost(self, waiting_since: float | None) -> None:
        """The worker died, or (``waiting_since`` set and still alive) hung: kill it, restart in the background."""
        process = self._process
        if process is not None:
            process.join(timeout=0.5)  # a worker that just died closes its pipe a moment before it is reaped
        hung = process is not None and process.is_alive()
        self._ready.clear()
        self._reap(graceful_s=0.0)
        if hung:
            kind, why = "hung", f"hung: no answer within {self.settings.deadline_s:g} s; killed"
        else:
            kind, why = exit_reason(process.exitcode if process is not None else None)
        self._record_exit(kind, why)
        if not self._closed.is_set():
            ran_s = time.monotonic() - self._started_at
            self._restarter = threading.Thread(
                target=self._restart, args=(self._backoff.next_delay(ran_s),), name=f"restart-{self.name}", daemon=True
            )
            self._restarter.start()

    def _record_exit(self, kind: str, why: str) -> None:
        self.last_exit = (kind, why)
        self._deaths.died(time.monotonic(), why)
        log.error("detector worker %s %s; frames are dropped until it is back", self.name, why)
        self.events.worker_exited(self.name, kind, why)

    def _restart(self, delay: float) -> None:
        while not self._closed.wait(delay):
            try:
                self._spawn()
            except ModelLoadError as exc:
                self._record_exit("start_failed", str(exc))
                delay = self._backoff.next_delay(0.0)
                continue
            self.restarts += 1
            self.events.worker_started(self.name, restart=True)
            return

    def _reap(self, graceful_s: float) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if process is not None:
            process.join(timeout=graceful_s)
            _kill(process)
        if conn is not None:
            conn.close()


def _receive(
    conn: Connection, process: BaseProcess | None, timeout_s: float, closed: threading.Event | None = None
) -> tuple | None:
    """The worker's next message, or None when it died, closed the pipe or sent nothing within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        if closed is not None and closed.is_set():
            return None
        try:
            if conn.poll(min(remaining, 0.25)):
                return conn.recv()
        except (EOFError, OSError):
            return None
        if process is not None and not process.is_alive() and not conn.poll(0):
            return None
    return None


def _kill(process: BaseProcess) -> None:
    if process.is_alive():
        process.kill()
    process.join(timeout=5.0)


# ---------------------------------------------------------------------------------------------- several detectors


class DetectorPool:
    """The detectors that share the cameras' frames, one detect thread each; a ``Detector`` itself
    (class names and thresholds of the first, which every one shares, and ``detect`` on the first)."""

    def __init__(self, lanes: Sequence[Detector], names: Sequence[str]):
        if not lanes or len(lanes) != len(names):
            raise ValueError("a pool needs one name per detector, and at least one")
        self.lanes, self.names = list(lanes), list(names)
        first = self.lanes[0]
        self.class_names = first.class_names
        self.operating_thresholds = getattr(first, "operating_thresholds", None)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.lanes[0].detect(images)

    def set_events(self, events: WorkerEvents) -> None:
        for lane in self.lanes:
            if isinstance(lane, WorkerDetector):
                lane.events = events

    def check(self) -> None:
        for lane in self.lanes:
            if isinstance(lane, WorkerDetector):
                lane.check()

    def failing(self, now: float) -> tuple[str, ...]:
        reasons = (lane.failing(now) for lane in self.lanes if isinstance(lane, WorkerDetector))
        return tuple(why for why in reasons if why)

    def close(self) -> None:
        for lane in self.lanes:
            close = getattr(lane, "close", None)
            if close is not None:
                close()


def lane_configs(config: DetectorConfig) -> list[tuple[str, DetectorConfig]]:
    """(name, config) of each detector: one per ``devices`` entry, else ``workers`` on ``device``; CPU
    threads split between the CPU ones unless ``threads`` is set."""
    devices = config.devices or [config.device] * config.workers
    cpu_lanes = sum(1 for d in devices if not d.startswith("cuda"))
    threads = config.threads
    if threads is None and cpu_lanes > 1:
        threads = max(1, (multiprocessing.cpu_count() or 1) // cpu_lanes)
    lanes = []
    for index, device in enumerate(devices):
        update: dict[str, object] = {"device": device, "devices": [], "workers": 1}
        if not device.startswith("cuda") and threads is not None:
            update["threads"] = threads
        lanes.append((f"{device}-{index}" if config.devices else f"worker-{index}", config.model_copy(update=update)))
    return lanes


def start_pool(
    config: DetectorConfig, cache_dir: Path | None = None, factory: DetectorFactory = default_factory
) -> DetectorPool:
    """The detectors ``config`` asks for (started, models warm); ModelLoadError when one cannot load."""
    lanes: list[Detector] = []
    names = []
    try:
        for name, lane_config in lane_configs(config):
            if config.isolation == "process":
                lanes.append(WorkerDetector(name, lane_config, cache_dir, factory).start())
            else:
                lanes.append(factory(lane_config, cache_dir))
            names.append(name)
    except Exception:
        for lane in lanes:
            if isinstance(lane, WorkerDetector):
                lane.close()
        raise
    return DetectorPool(lanes, names)
