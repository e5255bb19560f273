"""FrameRing: bounded by seconds and bytes; ``between`` leads with the frame on screen at the start."""

from __future__ import annotations

import pytest

from surveil.review.ring import FrameRing


def _ring(seconds: float, max_bytes: int, pushes: list[tuple[float, int]]) -> FrameRing:
    ring = FrameRing(seconds, max_bytes)
    for ts, size in pushes:
        ring.push(ts, b"x" * size)
    return ring


@pytest.mark.parametrize(
    ("seconds", "max_bytes", "pushes", "kept_ts"),
    [
        (10, 1000, [(0, 10), (5, 10), (11, 10)], [5, 11]),  # 0 is more than 10 s before 11
        (100, 25, [(0, 10), (1, 10), (2, 10)], [1, 2]),  # 30 bytes > 25: the oldest goes
        (100, 5, [(0, 10), (1, 10)], [1]),  # one frame above the budget is still kept
        (10, 1000, [(5, 10), (6, 10), (2, 10)], [2]),  # the clock went back (a looped file): start over
    ],
)
def test_bounds(seconds, max_bytes, pushes, kept_ts):
    ring = _ring(seconds, max_bytes, pushes)
    assert [f.ts for f in ring.between(-1e9, 1e9)] == kept_ts
    assert ring.bytes == 10 * len(kept_ts)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(2.5, 4.0, [2, 3, 4]), (0, 1.5, [0, 1]), (10, 20, [5]), (-5, -1, [])],
)
def test_between_leads_with_the_frame_before_start(start, end, expected):
    ring = _ring(100, 10_000, [(float(t), 1) for t in range(6)])
    assert [f.ts for f in ring.between(start, end)] == expected


def test_invalid_bounds_raise():
    with pytest.raises(ValueError, match="above 0"):
        FrameRing(0, 10)
