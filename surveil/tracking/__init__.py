"""Per-camera multi-object trackers behind one protocol, built by kind from the config.

Kinds: ``surveil`` (the default, ByteTrack-class association in seconds: ``bytetrack.py``),
``iou-v1`` (the IoU + centre-distance tracker of earlier releases: ``iou.py``) and
``bytetrack-trackers`` (the PyPI ``trackers`` package's ByteTrack, only when that is installed:
``external.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from surveil.types import Detections, Track

if TYPE_CHECKING:
    from surveil.config import TrackerConfig


@runtime_checkable
class Tracker(Protocol):
    """Tracks of one camera.

    ``update`` takes one frame's detections, all of them down to a low score floor (never modified),
    the frame's time ``now`` in seconds of a monotonic or media clock, and optionally which
    detections are high-score (``confident``, (N,) bool; None: the tracker's own ``high_score``).
    It returns the confirmed tracks: ``missed == 0`` ones were matched in this frame and carry this
    frame's detection box; ``missed > 0`` ones were not and carry a predicted box.
    """

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list[Track]: ...

    def reset(self) -> None: ...


@runtime_checkable
class HoldsIdentities(Protocol):
    """A tracker that keeps lost tracks for a while to re-identify them under the same id.

    ``held_ids`` (after an ``update``): the ids of the tracks it no longer returns but may still
    give back. The analyser passes them to the rules and the incident book, so that a zone visit, a
    loitering dwell and an incident wait for the person instead of ending while they are hidden.
    Trackers without re-identification need not have it.
    """

    def held_ids(self) -> frozenset[int]: ...


@runtime_checkable
class SeesFrameEdges(Protocol):
    """A tracker told the picture's size before each ``update``: a track that walks out across the
    border is gone at once, not kept to be matched to whoever walks in there next."""

    def set_frame_size(self, width: int, height: int) -> None: ...


def surveil_options(config: TrackerConfig) -> dict[str, Any]:
    """The keyword arguments of kind ``surveil``'s ``ByteTracker`` (after the camera) for ``config``."""
    names = (
        "high_score",
        "low_score",
        "birth_score",
        "iou_threshold",
        "low_iou_threshold",
        "max_center_distance",
        "lost_center_growth",
        "max_size_ratio",
        "min_hits",
        "lost_after_s",
        "velocity_decay_s",
        "measurement_noise",
        "acceleration_noise",
        "history",
        "appearance_weight",
        "appearance_momentum",
        "appearance_gallery",
        "appearance_veto",
        "reid_window_s",
        "reid_similarity",
        "reid_margin",
        "reid_max_speed",
    )
    return {name: getattr(config, name) for name in names}


def _surveil(config: TrackerConfig, camera: str) -> Tracker:
    from surveil.tracking.bytetrack import ByteTracker

    return ByteTracker(camera, **surveil_options(config))


def _iou_v1(config: TrackerConfig, camera: str) -> Tracker:
    from surveil.tracking.iou import IouTracker

    return IouTracker(
        camera,
        iou_threshold=config.iou_threshold,
        max_missed=None,  # forgotten after lost_after_s seconds instead of a number of frames
        lost_after_s=config.lost_after_s,
        min_hits=config.min_hits,
        history=config.history,
        max_center_distance=config.max_center_distance,
    )


def _bytetrack_trackers(config: TrackerConfig, camera: str) -> Tracker:
    from surveil.tracking.external import TrackersByteTrack

    return TrackersByteTrack(
        camera,
        high_score=config.high_score,
        birth_score=config.birth_score,
        iou_threshold=config.iou_threshold,
        min_hits=config.min_hits,
        lost_after_s=config.lost_after_s,
        history=config.history,
    )


TRACKER_KINDS: dict[str, Callable[[TrackerConfig, str], Tracker]] = {
    "surveil": _surveil,
    "iou-v1": _iou_v1,
    "bytetrack-trackers": _bytetrack_trackers,
}


def make_tracker(config: TrackerConfig, camera: str) -> Tracker:
    """A new tracker of ``config.kind`` for ``camera``."""
    try:
        build = TRACKER_KINDS[config.kind]
    except KeyError:
        raise ValueError(f"unknown tracker kind {config.kind!r}; known: {', '.join(TRACKER_KINDS)}") from None
    return build(config, camera)


__all__ = ["TRACKER_KINDS", "Tracker", "make_tracker", "surveil_options"]
