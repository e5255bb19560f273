"""Draw what the analyser sees on a frame: detections, tracks with their paths, zones, lines and
incidents in progress. One renderer for alert snapshots, ``latest.jpg`` and the live view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from surveil.rules.base import Line, Zone
from surveil.types import Detections, Track

ZONE_COLOUR = (0, 200, 255)  # BGR amber
ACTIVE_COLOUR = (0, 0, 255)  # red: something in progress here
LINE_COLOUR = (255, 200, 0)
TRACK_COLOUR = (0, 220, 0)
DETECTION_COLOUR = (160, 160, 160)


@dataclass(frozen=True)
class Overlay:
    """Everything drawn on top of one frame."""

    zones: Sequence[Zone] = ()
    lines: Sequence[Line] = ()
    detections: Detections | None = None
    tracks: Sequence[Track] = ()
    class_names: Sequence[str] = ()
    active_zones: frozenset[str] = frozenset()
    active_lines: frozenset[str] = frozenset()
    active_tracks: frozenset[int] = frozenset()
    labels: dict[str, str] | None = None  # zone/line name -> text such as a count


def _scale(points: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * [width, height]).astype(np.int32)


def draw(image: np.ndarray, overlay: Overlay) -> np.ndarray:
    """A copy of ``image`` (BGR) with the overlay drawn; the input is not modified."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    labels = overlay.labels or {}
    for zone in overlay.zones:
        colour = ACTIVE_COLOUR if zone.name in overlay.active_zones else ZONE_COLOUR
        polygon = _scale(zone.polygon, width, height)
        cv2.polylines(canvas, [polygon], True, colour, 2, cv2.LINE_AA)
        _text(canvas, f"{zone.name} {labels.get(zone.name, '')}".strip(), tuple(polygon[0]), colour)
    for line in overlay.lines:
        colour = ACTIVE_COLOUR if line.name in overlay.active_lines else LINE_COLOUR
        a, b = _scale(np.array([line.a, line.b]), width, height)
        cv2.arrowedLine(canvas, tuple(a), tuple(b), colour, 2, cv2.LINE_AA, tipLength=0.03)
        _text(canvas, f"{line.name} {labels.get(line.name, '')}".strip(), tuple(a), colour)
    if overlay.detections is not None:
        for box, _score, _class_id in zip(
            overlay.detections.xyxy, overlay.detections.confidence, overlay.detections.class_id
        ):
            x1, y1, x2, y2 = (round(v) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), DETECTION_COLOUR, 1)
    for track in overlay.tracks:
        _draw_track(canvas, track, overlay)
    return canvas


def _draw_track(canvas: np.ndarray, track: Track, overlay: Overlay) -> None:
    colour = ACTIVE_COLOUR if track.track_id in overlay.active_tracks else TRACK_COLOUR
    x1, y1, x2, y2 = (round(v) for v in track.xyxy)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2 if track.missed == 0 else 1)
    if len(track.history) > 1:
        path = np.round(np.array(track.history)).astype(np.int32)
        cv2.polylines(canvas, [path], False, colour, 1, cv2.LINE_AA)
    names = overlay.class_names
    name = names[track.class_id] if 0 <= track.class_id < len(names) else str(track.class_id)
    _text(canvas, f"#{track.track_id} {name} {track.confidence:.2f}", (x1, max(y1 - 4, 10)), colour)


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    x, y = int(origin[0]), int(max(origin[1], 12))
    cv2.putText(canvas, text, (x + 1, y + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes | None:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buffer.tobytes() if ok else None


GRID_COLOUR = (200, 200, 200)


def draw_grid(image: np.ndarray, step: float = 0.1) -> np.ndarray:
    """A copy of ``image`` with a relative-coordinate grid (0 = left/top, 1 = right/bottom) every
    ``step``, each line labelled with its coordinate: what `surveil snapshot` draws under the zones."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    faint = canvas.copy()
    count = round(1 / step)
    for i in range(1, count):
        x, y = round(i * step * width), round(i * step * height)
        cv2.line(faint, (x, 0), (x, height - 1), GRID_COLOUR, 1)
        cv2.line(faint, (0, y), (width - 1, y), GRID_COLOUR, 1)
    cv2.addWeighted(faint, 0.6, canvas, 0.4, 0, dst=canvas)
    for i in range(1, count):
        label = f"{i * step:.1f}"
        x, y = round(i * step * width), round(i * step * height)
        _text(canvas, label, (x + 2, 12), GRID_COLOUR)  # x along the top
        _text(canvas, label, (2, y - 3), GRID_COLOUR)  # y down the left
    return canvas
