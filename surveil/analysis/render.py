"""Draw what the analyser sees on a frame: detections, tracks with their recent paths, zones, lines,
incidents in progress and the frame's time. One renderer for alert snapshots, review snapshots and
clips, ``latest.jpg`` and the live view.

Colours (the live page's legend explains them): green, a tracked object; red, one in an incident
(and its zone or line); amber, a zone; blue, a line; thin grey, a raw detection the tracker has not
confirmed (low score, or too new); a thin coloured box, a track not seen in this frame (coasting)."""

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


TRAIL_POINTS = 8  # anchor points of a track's trail when the overlay does not say (analyser: ~TRAIL_S seconds)
LABEL_BACKGROUND = (24, 24, 24)
FONT = cv2.FONT_HERSHEY_SIMPLEX


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
    trail_points: int = TRAIL_POINTS  # newest anchor points of each track's path drawn
    timestamp: str | None = None  # drawn in the bottom-right corner, e.g. the frame's wall-clock time


@dataclass(frozen=True)
class Label:
    """A text to place near ``box`` (x1, y1, x2, y2); ``short`` is tried when ``text`` finds no room."""

    text: str
    box: tuple[int, int, int, int]
    colour: tuple[int, int, int]
    short: str = ""
    inside: bool = False  # try inside the box first (zones: their label must not hide the outline)


def _scale(points: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * [width, height]).astype(np.int32)


def font_scale(height: int) -> float:
    """Text about 2.5 % of the frame's height, never under 0.4 (~9 px)."""
    return max(0.4, min(1.2, height / 800))


def draw(image: np.ndarray, overlay: Overlay) -> np.ndarray:
    """A copy of ``image`` (BGR) with the overlay drawn; the input is not modified.

    Labels are placed after every shape, each where it overlaps no other label and stays inside
    the frame (a shorter form, or none, when there is no room): people in an incident first, then
    the time, zones and lines, then other tracks by score."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    texts = overlay.labels or {}
    zone_labels, line_labels = [], []
    for zone in overlay.zones:
        colour = ACTIVE_COLOUR if zone.name in overlay.active_zones else ZONE_COLOUR
        polygon = _scale(zone.polygon, width, height)
        cv2.polylines(canvas, [polygon], True, colour, 2, cv2.LINE_AA)
        x, y = (int(v) for v in polygon[np.argmin(polygon.sum(axis=1))])  # its top-left corner
        text = f"{zone.name} {texts.get(zone.name, '')}".strip()
        zone_labels.append(Label(text, (x + 3, y + 3, x + 3, y + 3), colour, zone.name, inside=True))
    for line in overlay.lines:
        colour = ACTIVE_COLOUR if line.name in overlay.active_lines else LINE_COLOUR
        a, b = _scale(np.array([line.a, line.b]), width, height)
        cv2.arrowedLine(canvas, tuple(a), tuple(b), colour, 2, cv2.LINE_AA, tipLength=0.03)
        text = f"{line.name} {texts.get(line.name, '')}".strip()
        line_labels.append(Label(text, (int(a[0]), int(a[1]), int(a[0]), int(a[1])), colour, line.name))
    if overlay.detections is not None:
        for box in overlay.detections.xyxy:
            x1, y1, x2, y2 = (round(v) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), DETECTION_COLOUR, 1)
    active: list[Label] = []
    others: list[Label] = []
    for track in sorted(overlay.tracks, key=lambda t: -t.confidence):
        label = _draw_track(canvas, track, overlay)
        (active if track.track_id in overlay.active_tracks else others).append(label)
    stamp = []
    if overlay.timestamp:
        stamp = [Label(overlay.timestamp, (width, height, width, height), (255, 255, 255))]
    _draw_labels(canvas, [*active, *stamp, *zone_labels, *line_labels, *others])
    return canvas


def _draw_track(canvas: np.ndarray, track: Track, overlay: Overlay) -> Label:
    colour = ACTIVE_COLOUR if track.track_id in overlay.active_tracks else TRACK_COLOUR
    x1, y1, x2, y2 = (round(v) for v in track.xyxy)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2 if track.missed == 0 else 1)
    trail = track.history[-max(2, overlay.trail_points) :]
    if len(trail) > 1:
        path = np.round(np.array(trail)).astype(np.int32)
        cv2.polylines(canvas, [path], False, colour, 1, cv2.LINE_AA)
    names = overlay.class_names
    name = names[track.class_id] if 0 <= track.class_id < len(names) else str(track.class_id)
    short = f"#{track.track_id}"
    real_classes = [n for n in names if n != "__background__"]
    text = f"{short} {track.confidence:.2f}" if len(real_classes) == 1 else f"{short} {name} {track.confidence:.2f}"
    return Label(text, (x1, y1, x2, y2), colour, short)


def _draw_labels(canvas: np.ndarray, labels: Sequence[Label]) -> None:
    height, width = canvas.shape[:2]
    scale = font_scale(height)
    for label, text, (x, y, w, h) in layout(labels, width, height):
        base = cv2.getTextSize(text, FONT, scale, 1)[1]
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), LABEL_BACKGROUND, cv2.FILLED)
        cv2.putText(canvas, text, (x + 2, y + h - base - 2), FONT, scale, label.colour, 1, cv2.LINE_AA)


def layout(labels: Sequence[Label], width: int, height: int) -> list[tuple[Label, str, tuple[int, int, int, int]]]:
    """Where each label goes, in order: (label, the text that fitted, (x, y, w, h)); a label that finds
    no room, even in its short form, is left out. The rectangles overlap none other and lie inside the frame."""
    scale = font_scale(height)
    placed: list[tuple[Label, str, tuple[int, int, int, int]]] = []
    for label in labels:
        for text in dict.fromkeys(filter(None, (label.text, label.short))):
            (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
            rect = _free_spot(label, w + 4, h + base + 4, width, height, [r for _, _, r in placed])
            if rect is not None:
                placed.append((label, text, rect))
                break
    return placed


def _free_spot(
    label: Label, w: int, h: int, width: int, height: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    """The first candidate spot (x, y, w, h) near the label's box, moved inside the frame, that overlaps
    no label already placed; None if every one does (or the text is wider than the frame)."""
    if w > width or h > height:
        return None
    x1, y1, x2, y2 = label.box
    spots = [(x1, y1 - h), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2), (x2, y1), (x1 - w, y1)]
    if label.inside:
        spots = [(x1, y1), *spots]
    for step in (1, 2, 3):  # then further above and below
        spots += [(x1, y1 - h * (step + 1)), (x1, y2 + h * step)]
    for x, y in spots:
        x, y = min(max(0, x), width - w), min(max(0, y), height - h)
        if not any(x < tx + tw and tx < x + w and y < ty + th and ty < y + h for tx, ty, tw, th in taken):
            return x, y, w, h
    return None


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    x, y = int(origin[0]), int(max(origin[1], 12))
    cv2.putText(canvas, text, (x + 1, y + 1), FONT, 0.4, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), FONT, 0.4, colour, 1, cv2.LINE_AA)


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
