"""The renderer: labels never overlap and stay inside the frame; trails are short; the input is untouched."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from surveil.analysis.render import Label, Overlay, draw, font_scale, layout
from surveil.rules.base import Line, Zone
from surveil.types import Detections, Track


def _track(track_id: int, x: float, y: float, history=()) -> Track:
    return Track(track_id, "cam", 0, (x, y, x + 18, y + 50), 0.9, 0.0, 1.0, 3, 0, tuple(history))


def _overlaps(a, b) -> bool:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize(
    ("width", "height", "boxes"),
    [
        (480, 360, [(100, 100, 118, 150)] * 6),  # six people on one spot
        (480, 360, [(0, 0, 18, 50), (470, 0, 480, 50), (0, 330, 18, 360), (470, 330, 480, 360)]),  # corners
        (320, 240, [(x, 120, x + 10, 150) for x in range(0, 320, 12)]),  # a crowd across the frame
        (1920, 1080, [(900, 500, 950, 640)] * 3),
    ],
)
def test_labels_do_not_overlap_and_stay_inside(width, height, boxes):
    labels = [Label(f"#{i} pedestrian 0.87", box, (0, 220, 0), f"#{i}") for i, box in enumerate(boxes)]
    placed = layout(labels, width, height)
    rects = [rect for _, _, rect in placed]
    assert rects, "nothing placed"
    for x, y, w, h in rects:
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
    for a, b in itertools.combinations(rects, 2):
        assert not _overlaps(a, b), (a, b)
    assert len(placed) == len(labels) or height < 400  # room for every label except in a packed small frame


def test_a_label_wider_than_the_frame_falls_back_to_its_short_form():
    label = Label("#1 a-rather-long-class-name 0.87", (40, 40, 50, 60), (0, 220, 0), "#1")
    assert [text for _, text, _ in layout([label], 90, 120)] == ["#1"]


def test_a_crowded_frame_leaves_labels_out_rather_than_overlap():
    labels = [Label(f"#{i} pedestrian 0.87", (50, 50, 60, 60), (0, 220, 0), f"#{i}") for i in range(200)]
    placed = layout(labels, 160, 120)
    assert 0 < len(placed) < len(labels)
    for a, b in itertools.combinations([rect for _, _, rect in placed], 2):
        assert not _overlaps(a, b)


def test_text_grows_with_the_frame():
    assert font_scale(360) == 0.45 and font_scale(1080) > font_scale(720) > font_scale(360)
    assert font_scale(120) == 0.4


def test_draw_leaves_the_input_alone_and_writes_the_time():
    image = np.zeros((360, 480, 3), np.uint8)
    overlay = Overlay(
        zones=(Zone("east", np.array([[0.6, 0.2], [1.0, 0.2], [1.0, 0.8], [0.6, 0.8]])),),
        lines=(Line("mid", (0.5, 0.1), (0.5, 0.9), "west", "east"),),
        detections=Detections.from_arrays([[10, 10, 30, 60]], [0.2], [0]),
        tracks=(_track(1, 100, 100),),
        class_names=["pedestrian"],
        timestamp="2026-12-05 01:02:03",
    )
    drawn = draw(image, overlay)
    assert not image.any()
    corner = drawn[330:, 300:]  # bottom right: the timestamp on its dark background
    assert (corner > 200).all(axis=2).sum() > 20


@pytest.mark.parametrize(("points", "far_drawn"), [(4, False), (64, True)])
def test_trail_keeps_only_the_newest_points(points, far_drawn):
    history = [(20.0 + 5 * i, 300.0) for i in range(60)]  # oldest on the left, newest near the box
    image = np.zeros((360, 480, 3), np.uint8)
    drawn = draw(image, Overlay(tracks=(_track(1, 300, 250, history),), trail_points=points))
    far = drawn[295:306, 20:120]  # where only old points lie
    assert bool((far[..., 1] > 100).any()) is far_drawn  # the trail's green, anti-aliased
