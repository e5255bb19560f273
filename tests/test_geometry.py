"""surveil.geometry: tables of known cases plus properties checked by hypothesis against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from surveil.geometry import (
    anchor_point,
    box_area,
    box_centre,
    box_height,
    box_intersection,
    box_iou,
    points_in_polygon,
    polygon_area,
    polygon_self_intersects,
    relative_anchors,
    segments_cross,
    signed_side,
)

SQUARE = np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]])
U_SHAPE = np.array([[0, 0], [1, 0], [1, 1], [0.6, 1], [0.6, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]], float)
BOW_TIE = [[0, 0], [1, 1], [1, 0], [0, 1]]
PENTAGRAM = [[math.cos(a), math.sin(a)] for a in np.deg2rad([90, 234, 18, 162, 306])]

settings.register_profile("surveil", max_examples=80, deadline=None)
settings.load_profile("surveil")


# ------------------------------------------------------------------ references (independent of the code under test)


def winding_number(point: tuple[float, float], polygon: np.ndarray) -> int:
    """Winding number of a closed polygon around a point (Sunday's algorithm): non-zero = inside a simple polygon."""
    x, y = point
    wn = 0
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        cross = (x2 - x1) * (y - y1) - (x - x1) * (y2 - y1)
        if y1 <= y < y2 and cross > 0:
            wn += 1
        elif y2 <= y < y1 and cross < 0:
            wn -= 1
    return wn


def distance_to_boundary(point: tuple[float, float], polygon: np.ndarray) -> float:
    p, a = np.asarray(point, float), np.asarray(polygon, float)
    ab = np.roll(a, -1, axis=0) - a
    t = np.clip(((p - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-300), 0.0, 1.0)
    return float(np.hypot(*(p - (a + t[:, None] * ab)).T).min())


# ------------------------------------------------------------------ strategies

coordinate = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def star_polygons(draw, min_vertices: int = 3, max_vertices: int = 14) -> np.ndarray:
    """Simple polygons, convex or concave: vertices at sorted distinct angles around a centre, random radii."""
    n = draw(st.integers(min_vertices, max_vertices))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    gaps = [b - a for a, b in zip(angles, [*angles[1:], angles[0] + 2 * math.pi])]
    assume(min(gaps) > 1e-3 and max(gaps) < math.pi - 1e-3)  # the centre sees every edge: a simple polygon
    radii = draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n))
    cx, cy = draw(st.floats(-2, 2)), draw(st.floats(-2, 2))
    scale = draw(st.sampled_from([1.0, 100.0, 1920.0]))
    polygon = np.array([[cx + r * math.cos(a), cy + r * math.sin(a)] for a, r in zip(angles, radii)]) * scale
    assume(polygon_area(polygon) > 1e-6 * scale * scale)
    return polygon


def points_near(polygon: np.ndarray, draw, count: int = 40) -> np.ndarray:
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    span = hi - lo
    fractions = np.array(
        draw(st.lists(st.tuples(st.floats(-0.2, 1.2), st.floats(-0.2, 1.2)), min_size=count, max_size=count))
    )
    return lo + fractions * span


@st.composite
def polygon_and_points(draw):
    polygon = draw(star_polygons())
    return polygon, points_near(polygon, draw)


int_point = st.tuples(st.integers(-20, 20), st.integers(-20, 20))
box = st.tuples(coordinate, coordinate, st.floats(0, 500), st.floats(0, 500)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)


# ------------------------------------------------------------------ points in polygons: tables


@pytest.mark.parametrize(
    ("point", "inside"),
    [((0.5, 0.5), True), ((0.1, 0.5), False), ((0.5, 0.9), False), ((0.74, 0.74), True), ((0.76, 0.5), False)],
)
def test_points_in_square(point, inside):
    assert bool(points_in_polygon(np.array([point]), SQUARE)[0]) is inside


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((0.5, 0.8), False),
        ((0.2, 0.8), True),
        ((0.5, 0.1), True),
        ((0.8, 0.8), True),
        ((0.5, 0.35), False),
        ((0.5, 0.25), True),
        ((1.1, 0.5), False),
        ((0.5, -0.01), False),
    ],
)
def test_points_in_concave_u(point, inside):
    assert bool(points_in_polygon(np.array([point]), U_SHAPE)[0]) is inside


def test_points_in_polygon_shapes():
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)
    assert points_in_polygon([0.5, 0.5], SQUARE).tolist() == [True]  # one point, not an (N, 2) array
    assert points_in_polygon(np.array([[0.5, 0.5]] * 3), SQUARE.tolist()).tolist() == [True] * 3


@pytest.mark.parametrize("x", [0.25, 0.5])
def test_shared_vertical_edge_is_claimed_once(x):
    left = np.array([[0, 0], [x, 0], [x, 1], [0, 1]], float)
    right = np.array([[x, 0], [1, 0], [1, 1], [x, 1]], float)
    on_edge = np.array([[x, y] for y in np.linspace(0.05, 0.95, 19)])
    assert (points_in_polygon(on_edge, left) ^ points_in_polygon(on_edge, right)).all()


@st.composite
def convex_quads(draw) -> np.ndarray:
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=4, max_size=4, unique=True)))
    gaps = [b - a for a, b in zip(angles, [*angles[1:], angles[0] + 2 * math.pi])]
    assume(min(gaps) > 0.05 and max(gaps) < math.pi - 0.05)
    radius, cx, cy = draw(st.floats(0.05, 1000)), draw(st.floats(-1, 2)), draw(st.floats(-1, 2))
    return np.array([[cx + radius * math.cos(a), cy + radius * math.sin(a)] for a in angles])


@given(convex_quads(), st.lists(st.floats(0.01, 0.99), min_size=1, max_size=30), st.booleans())
def test_shared_diagonal_edge_is_claimed_once(quad, ts, reverse):
    """Two zones cut from one quad along a diagonal: a point on the cut belongs to exactly one of them."""
    first, second = quad[[0, 1, 2]], quad[[2, 3, 0]]
    second = second[::-1] if reverse else second
    on_cut = quad[0] + np.array(ts)[:, None] * (quad[2] - quad[0])
    assert (points_in_polygon(on_cut, first) ^ points_in_polygon(on_cut, second)).all()


# ------------------------------------------------------------------ points in polygons: properties


@given(polygon_and_points())
def test_points_in_polygon_matches_winding_number(case):
    polygon, points = case
    got = points_in_polygon(points, polygon)
    scale = float(np.ptp(polygon, axis=0).max())
    for point, inside in zip(points, got):
        if distance_to_boundary(point, polygon) > 1e-9 * scale:
            assert bool(inside) == (winding_number(point, polygon) != 0), point


@given(polygon_and_points())
def test_points_in_polygon_agrees_with_opencv(case):
    import cv2

    polygon, points = case
    scale = float(np.ptp(polygon, axis=0).max())
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    got = points_in_polygon(points, polygon)
    for point, inside in zip(points, got):
        distance = cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), True)
        if abs(distance) > 1e-4 * scale:  # float32 contour: leave the boundary out
            assert bool(inside) == (distance > 0), point


@given(polygon_and_points(), st.tuples(st.floats(-50, 50), st.floats(-50, 50)), st.integers(0, 13))
def test_points_in_polygon_ignores_translation_orientation_and_start_vertex(case, shift, start):
    polygon, points = case
    scale = float(np.ptp(polygon, axis=0).max())
    keep = np.array([distance_to_boundary(p, polygon) > 1e-6 * max(scale, 50.0) for p in points])
    expected = points_in_polygon(points, polygon)[keep]
    d = np.array(shift)
    assert (points_in_polygon(points + d, polygon + d)[keep] == expected).all()
    assert (points_in_polygon(points, polygon[::-1])[keep] == expected).all()
    assert (points_in_polygon(points, np.roll(polygon, start % len(polygon), axis=0))[keep] == expected).all()


@given(star_polygons())
def test_far_points_are_outside(polygon):
    far = polygon.max(axis=0) + np.ptp(polygon, axis=0) + 1.0
    assert not points_in_polygon(far[None], polygon)[0]
    assert not points_in_polygon((polygon.min(axis=0) - 1.0)[None], polygon)[0]


# ------------------------------------------------------------------ polygons


@pytest.mark.parametrize(
    ("polygon", "crosses"),
    [
        (SQUARE, False),
        (U_SHAPE, False),
        ([[0, 0], [1, 0], [0, 1]], False),
        (BOW_TIE, True),
        (PENTAGRAM, True),
        ([[0, 0], [2, 0], [2, 2], [1, -1], [0, 2]], True),
        ([[0, 0], [1, 0]], False),
    ],
)
def test_polygon_self_intersects_known_shapes(polygon, crosses):
    assert polygon_self_intersects(polygon) is crosses


@given(star_polygons(min_vertices=3))
def test_star_shaped_polygons_are_simple(polygon):
    assert not polygon_self_intersects(polygon)


@given(st.integers(4, 12), st.floats(0, 2 * math.pi), st.floats(0.5, 500), st.integers(0, 11))
def test_swapping_two_vertices_of_a_convex_polygon_makes_it_cross(n, rotation, radius, i):
    angles = rotation + 2 * math.pi * np.arange(n) / n
    polygon = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    i %= n
    j = (i + 1) % n
    polygon[[i, j]] = polygon[[j, i]]
    assert polygon_self_intersects(polygon)


@given(star_polygons(), st.tuples(st.floats(-100, 100), st.floats(-100, 100)))
def test_polygon_area_translation_and_orientation(polygon, shift):
    area = polygon_area(polygon)
    assert area > 0
    assert polygon_area(polygon + np.array(shift)) == pytest.approx(area, rel=1e-6, abs=1e-6)
    assert polygon_area(polygon[::-1]) == pytest.approx(area, rel=1e-9)


def test_polygon_area_known():
    assert polygon_area(SQUARE) == pytest.approx(0.25)
    assert polygon_area(U_SHAPE) == pytest.approx(1 - 0.2 * 0.7)
    assert polygon_area([[0, 0], [1, 1]]) == 0.0


# ------------------------------------------------------------------ lines


@given(
    st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=20),
    st.tuples(coordinate, coordinate),
    st.tuples(coordinate, coordinate),
)
def test_signed_side_flips_when_the_line_is_reversed(points, a, b):
    assume(math.dist(a, b) > 1e-3)
    forward, backward = signed_side(np.array(points), a, b), signed_side(np.array(points), b, a)
    np.testing.assert_allclose(forward, -backward, rtol=1e-9, atol=1e-6)


@given(st.tuples(coordinate, coordinate), st.tuples(coordinate, coordinate), st.floats(-2, 3), st.floats(-500, 500))
def test_signed_side_is_the_distance_to_the_line(a, b, along, offset):
    assume(math.dist(a, b) > 1e-2)
    a_, b_ = np.array(a), np.array(b)
    direction = (b_ - a_) / np.linalg.norm(b_ - a_)
    right = np.array([-direction[1], direction[0]])  # clockwise on an image (y down)
    point = a_ + along * (b_ - a_) + offset * right
    assert signed_side(point[None], a, b)[0] == pytest.approx(offset, abs=1e-6 * (1 + np.abs(point).max()))


def test_signed_side_positive_is_right_of_a_to_b_on_the_image():
    # a -> b points right; with y growing downwards the right-hand side is below the line
    assert signed_side(np.array([[0.5, 1.0], [0.5, -1.0]]), (0, 0), (1, 0)).tolist() == [1.0, -1.0]


@given(int_point, int_point, int_point, int_point)
def test_segments_cross_is_symmetric(p, q, a, b):
    expected = segments_cross(p, q, a, b)
    assert segments_cross(a, b, p, q) is expected
    assert segments_cross(q, p, a, b) is expected
    assert segments_cross(p, q, b, a) is expected


def _orient(a, b, c) -> int:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


@given(int_point, int_point, int_point, int_point)
def test_segments_cross_against_exact_integer_orientation(p, q, a, b):
    d1, d2, d3, d4 = _orient(a, b, p), _orient(a, b, q), _orient(p, q, a), _orient(p, q, b)
    if d1 * d2 < 0 and d3 * d4 < 0:
        assert segments_cross(p, q, a, b)  # proper crossing
    overlap_x = max(min(p[0], q[0]), min(a[0], b[0])) <= min(max(p[0], q[0]), max(a[0], b[0]))
    overlap_y = max(min(p[1], q[1]), min(a[1], b[1])) <= min(max(p[1], q[1]), max(a[1], b[1]))
    if not (overlap_x and overlap_y):
        assert not segments_cross(p, q, a, b)  # bounding boxes apart
    if d1 == d2 == 0:
        assert not segments_cross(p, q, a, b)  # collinear: sliding along the line is no crossing


@pytest.mark.parametrize(
    ("p", "q", "crosses"),
    [
        ((0.5, -1), (0.5, 1), True),
        ((2, -1), (2, 1), False),
        ((1, -1), (1, 1), True),
        ((0.5, 0), (0.5, 1), True),
        ((0.2, 0), (0.8, 0), False),
        ((0.5, 0.1), (0.5, 1), False),
    ],
)
def test_segments_cross_table(p, q, crosses):
    assert segments_cross(p, q, (0, 0), (1, 0)) is crosses


# ------------------------------------------------------------------ boxes and anchors


@given(st.lists(box, min_size=1, max_size=6), st.lists(box, min_size=1, max_size=6))
def test_box_iou_symmetric_and_bounded(boxes_a, boxes_b):
    a, b = np.array(boxes_a), np.array(boxes_b)
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.all((iou >= 0) & (iou <= 1 + 1e-9))
    np.testing.assert_allclose(iou, box_iou(b, a).T, rtol=1e-9, atol=1e-12)
    inter = box_intersection(a, b)
    assert np.all(inter <= np.minimum(box_area(a)[:, None], box_area(b)[None, :]) * (1 + 1e-9) + 1e-9)


@given(box)
def test_box_iou_with_itself_is_one(b):
    a = np.array([b])
    assume(box_area(a)[0] > 1e-6)
    assert box_iou(a, a)[0, 0] == pytest.approx(1.0)


@given(box, st.floats(1, 100))
def test_box_iou_of_separated_boxes_is_zero(b, gap):
    a = np.array([b])
    moved = a + np.array([a[0, 2] - a[0, 0] + gap, 0, a[0, 2] - a[0, 0] + gap, 0])
    assert box_iou(a, moved)[0, 0] == 0.0


def test_box_iou_known_and_empty():
    a = np.array([[0, 0, 2, 2]], float)
    assert box_iou(a, np.array([[1, 0, 3, 2]], float))[0, 0] == pytest.approx(2 / 6)
    assert box_iou(np.array([[1, 1, 1, 1]], float), np.array([[1, 1, 1, 1]], float))[0, 0] == 0.0  # empty union


@given(box)
def test_anchors_and_box_measures(b):
    x1, y1, x2, y2 = b
    assert anchor_point(b) == pytest.approx(((x1 + x2) / 2, y2))
    assert anchor_point(b, "bottom_center") == anchor_point(b)
    assert anchor_point(b, "center") == pytest.approx(box_centre(b))
    assert box_height(b) == pytest.approx(y2 - y1)
    assert box_height((0, 5, 1, 2)) == 0.0  # upside-down box: no height


def test_relative_anchors():
    boxes = [(10, 20, 30, 60), (100, 0, 200, 100)]
    np.testing.assert_allclose(relative_anchors(boxes, "bottom_center", 200, 100), [[0.1, 0.6], [0.75, 1.0]])
    np.testing.assert_allclose(relative_anchors(boxes, "center", 200, 100), [[0.1, 0.4], [0.75, 0.5]])
    assert relative_anchors([], "center", 200, 100).shape == (0, 2)
    np.testing.assert_allclose(relative_anchors(boxes[:1], "center", 0, 0), [[20, 40]])  # no size: no division by zero


@given(st.lists(box, min_size=1, max_size=10), st.integers(1, 4000), st.integers(1, 4000))
def test_relative_anchors_inside_a_zone_matches_pixel_test(boxes, width, height):
    zone = SQUARE
    relative = relative_anchors(boxes, "bottom_center", width, height)
    pixels = np.array([anchor_point(b) for b in boxes])
    zone_pixels = zone * np.array([width, height])
    keep = np.array([distance_to_boundary(p, zone_pixels) > 1e-6 * max(width, height) for p in pixels])
    assert (points_in_polygon(relative, zone)[keep] == points_in_polygon(pixels, zone_pixels)[keep]).all()
