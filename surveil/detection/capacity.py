"""What a machine can do with a detector: processed frames per second per camera, from measured times.

Two users: ``surveil run`` times the detector on a synthetic frame after its warm-up and logs what each
camera can expect (:func:`measure_detector`, :func:`expected_fps`, :func:`startup_capacity_lines`);
``surveil bench`` ends with one sizing line from its measured pipeline rows (:func:`sizing_line`).

Definitions (the same in both):

- a camera's *processed fps* is how many of its frames per second go through detection and the rules;
- the detector serves ``1 / t`` frames per second in total (``t``: seconds per frame), shared evenly
  among the cameras (the frame board serves them in turn); a camera never gets more than it offers
  (``fps_limit``, or its stream's own rate), and what it leaves over goes to the others (max-min fair);
- :data:`MIN_FPS` (2 processed fps per camera) is the floor below which alerts degrade: at 2 fps zone
  recall was 0.80 against 0.96 at 5 and 1.00 at 10, and loitering and line counts break on identity
  changes (design notes, "Turn 3 measurements");
- ``surveil bench``: a measured camera count is *sustained* when its lowest per-camera processed fps is at
  least :data:`MIN_FPS`, or when every camera kept up with what it was offered (processed at least
  :data:`KEEPS_UP` of the frames the cameras decoded: a camera that offers under 2 fps can do no better).
  The sizing line names the largest sustained count and that row's lowest per-camera fps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_FPS = 2.0  # processed frames per second per camera below which alerts degrade
KEEPS_UP = 0.95  # processed / offered at or above this: the pipeline kept up with the cameras
SYNTHETIC_HW = (720, 1280)  # the start-up timing frame: a common camera's 16:9 (the cost follows the aspect ratio)
MEASURE_BUDGET_S = 5.0  # the start-up timing stops after this (past the warm-up call), however few calls ran


def fair_shares(total_fps: float, caps: Sequence[float | None]) -> list[float]:
    """Each camera's processed fps when ``total_fps`` detector frames/s are shared evenly among cameras that
    offer at most ``caps`` fps each (None: no known limit); what a capped camera leaves goes to the others."""
    shares: list[float] = [0.0] * len(caps)
    left, pending = max(total_fps, 0.0), sorted(range(len(caps)), key=lambda i: (caps[i] is None, caps[i] or 0.0))
    while pending:
        even = left / len(pending)
        index = pending[0]
        cap = caps[index]
        if cap is not None and cap < even:
            shares[index] = cap
            left -= cap
            pending.pop(0)
            continue
        for index in pending:  # everyone left takes the even share (their caps are above it)
            shares[index] = even
        break
    return shares


def expected_fps(seconds_per_frame: float, caps: Sequence[float | None]) -> list[float]:
    """Processed fps each camera can expect with a detector that takes ``seconds_per_frame`` (see the module)."""
    if seconds_per_frame <= 0:
        raise ValueError(f"seconds_per_frame must be positive, not {seconds_per_frame}")
    return fair_shares(1.0 / seconds_per_frame, caps)


def measure_detector(
    detector: Any,
    frame_hw: tuple[int, int] = SYNTHETIC_HW,
    calls: int = 2,
    budget_s: float = MEASURE_BUDGET_S,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median seconds per frame of ``detector.detect`` on one synthetic frame (mid-grey with noise, seeded), after
    one warm-up call: ``calls`` timed calls, fewer when they pass ``budget_s``."""
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(120, 30, (*frame_hw, 3)), 0, 255).astype(np.uint8)
    detector.detect([frame])  # warm-up: first-call allocations, OpenVINO's shape compile
    times: list[float] = []
    started = clock()
    while len(times) < max(calls, 1):
        t0 = clock()
        detector.detect([frame])
        times.append(clock() - t0)
        if clock() - started > budget_s:
            break
    return float(np.median(times))


def startup_capacity_lines(
    seconds_per_frame: float, cameras: Sequence[tuple[str, float | None]], what: str = ""
) -> tuple[str, str | None]:
    """(the info line, a warning line or None) ``surveil run`` logs after timing the detector; ``cameras``:
    (name, fps_limit or None) of each enabled camera."""
    total = 1.0 / seconds_per_frame
    shares = expected_fps(seconds_per_frame, [cap for _, cap in cameras])
    source = f" ({what})" if what else ""
    if not cameras:
        return f"detector: {1000 * seconds_per_frame:.0f} ms per frame after warm-up{source}; no camera enabled", None
    per = ", ".join(f"{name} {fps:.1f}" for (name, _), fps in zip(cameras, shares))
    info = (
        f"detector: {1000 * seconds_per_frame:.0f} ms per frame after warm-up{source} = {total:.1f} frames/s for "
        f"{len(cameras)} camera(s); processed fps each can expect (at most its own frame rate): {per}"
    )
    low = [name for (name, _), fps in zip(cameras, shares) if fps < MIN_FPS]
    capped_low = [name for (name, cap), fps in zip(cameras, shares) if fps < MIN_FPS and cap is not None and fps >= cap]
    starved = [name for name in low if name not in capped_low]  # below the floor for want of detector time
    if not starved:
        return info, None
    fit = int(total // MIN_FPS)
    warning = (
        f"{len(starved)} camera(s) can expect under {MIN_FPS:g} processed fps ({', '.join(starved)}): alerts degrade "
        f"below that (missed zone entries, broken tracks). This detector serves about {fit} camera(s) at {MIN_FPS:g} fps "
        f"on this machine: fewer cameras per instance (sharding), a smaller detector.min_size, or a faster CPU"
    )
    return info, warning


@dataclass(frozen=True)
class MeasuredRow:
    """One measured pipeline run of ``surveil bench``: camera count, lowest per-camera processed fps, and the
    processed and offered (decoded) frames per second of all cameras together."""

    cameras: int
    lowest_fps: float
    processed_fps: float
    offered_fps: float

    @property
    def sustained(self) -> bool:
        kept_up = self.offered_fps > 0 and self.processed_fps >= KEEPS_UP * self.offered_fps
        return self.cameras > 0 and (self.lowest_fps >= MIN_FPS or kept_up)


def sizing_line(rows: Sequence[MeasuredRow], bare_fps: float | None = None) -> str:
    """'this machine sustains N cameras at F processed fps each with this config' from the measured ``rows`` (the
    largest sustained count; see the module), with the bare model's estimate when given."""
    estimate = (
        f"; by the bare model's {bare_fps:.2f} frames/s, about {int(bare_fps // MIN_FPS)} camera(s) at {MIN_FPS:g} fps"
        if bare_fps
        else ""
    )
    sustained = [row for row in rows if row.sustained]
    if not sustained:
        measured = ", ".join(
            f"{r.cameras} camera(s): {r.lowest_fps:.2f}" for r in sorted(rows, key=lambda r: r.cameras)
        )
        return (
            f"this machine sustains none of the measured camera counts at {MIN_FPS:g} processed fps per camera with "
            f"this config (lowest per-camera fps: {measured}){estimate}"
        )
    best = max(sustained, key=lambda r: (r.cameras, r.lowest_fps))
    rule = f"≥ {MIN_FPS:g} fps each" if best.lowest_fps >= MIN_FPS else "every offered frame processed"
    return (
        f"this machine sustains {best.cameras} camera(s) at {best.lowest_fps:.2f} processed fps each with this config "
        f"(largest measured count with {rule}){estimate}"
    )


def log_startup_capacity(detector: Any, cameras: Sequence[Any], logger: logging.Logger = log) -> float | None:
    """Time ``detector`` after its warm-up and log what each of ``cameras`` (enabled CameraConfigs) can expect,
    warning below :data:`MIN_FPS`; returns the seconds per frame. CPU detectors only (on CUDA the first calls
    per thread warm up every batch size, which the detect thread does itself); never raises."""
    device = str(getattr(detector, "device", "cpu"))
    if not device.startswith("cpu"):
        logger.debug("detector timing at start skipped on %s", device)
        return None
    try:
        seconds = measure_detector(detector)
    except Exception:  # a log line: never stop the daemon for it (the detect thread reports real failures)
        logger.warning("detector timing at start failed", exc_info=True)
        return None
    what = f"synthetic {SYNTHETIC_HW[1]}x{SYNTHETIC_HW[0]} frame, {getattr(detector, 'precision', 'fp32')}"
    info, warning = startup_capacity_lines(seconds, [(c.name, c.fps_limit) for c in cameras], what)
    logger.info("%s", info)
    if warning:
        logger.warning("%s", warning)
    return seconds
