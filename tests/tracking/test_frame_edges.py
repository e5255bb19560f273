"""A track that walks out across the picture's border is gone, not lost (issue 17).

At 2 fps a person who leaves at an edge and somebody who walks in there a second or two later are a
lost track and a fresh detection a few pixels apart: without the border, the tracker hands the first
person's id (and with it their zone visit and loitering dwell) to the second. PETS09-S2L1 does this
at its right edge. Told the picture's size (``set_frame_size``, as the analyser does every frame),
the tracker drops a lost track that was at the border moving out and by now would be past it.
"""

import numpy as np
import pytest

from surveil.config import TrackerConfig
from surveil.tracking import SeesFrameEdges, make_tracker
from surveil.types import Detections

WIDTH, HEIGHT = 480, 360


def dets(*boxes):
    return Detections.from_arrays(np.array(boxes, np.float32).reshape(-1, 4), [0.9] * len(boxes), [0] * len(boxes))


def seen(tracks):
    return {t.track_id for t in tracks if t.missed == 0}


def run(frames, frame_size=True, fps=2.0):
    """Feed ``frames`` (a list of box lists, one per update at ``fps``); the ids seen in each update."""
    tracker = make_tracker(TrackerConfig(), "cam")
    assert isinstance(tracker, SeesFrameEdges)
    if frame_size:
        tracker.set_frame_size(WIDTH, HEIGHT)
    return [seen(tracker.update(dets(*boxes), now=i / fps)) for i, boxes in enumerate(frames)]


def box(cx, bottom=200.0, width=14.0, height=40.0):
    return [cx - width / 2, bottom - height, cx + width / 2, bottom]


def leaves_right_then_another_enters(gap_updates: int):
    """One walker leaves at the right border (40 px/s), ``gap_updates`` empty updates, another walks in there."""
    out = [[box(x)] for x in (400.0, 420.0, 440.0, 460.0, 472.0)]
    out += [[] for _ in range(gap_updates)]
    out += [[box(x)] for x in (470.0, 455.0, 440.0)]  # walking left, into the picture
    return out


@pytest.mark.parametrize("gap_updates", [1, 2, 4])
def test_somebody_walking_in_where_a_person_walked_out_gets_a_new_id(gap_updates):
    ids = run(leaves_right_then_another_enters(gap_updates))
    assert ids[4] and ids[-1] and ids[-1] != ids[4]


def test_without_the_picture_size_the_border_is_unknown_and_the_id_is_handed_on():
    """What the analyser's frame size prevents (and what a tracker used without it still does)."""
    ids = run(leaves_right_then_another_enters(2), frame_size=False)
    assert ids[-1] == ids[4]


@pytest.mark.parametrize(
    ("name", "frames"),
    [
        # standing at the right border, missed for 1.5 s: not moving out, so not gone
        ("standing-at-the-border", [[box(472.0)]] * 4 + [[], [], []] + [[box(472.0)]] * 2),
        # walking down along the left border, missed for 1 s: moving along it, not out of it
        ("walking-along-the-border", [[box(8.0, 100.0 + 20 * i)] for i in range(5)] + [[], []] + [[box(8.0, 240.0)]]),
        # walking right in the middle of the picture, missed for 1.5 s: lost, then found
        ("missed-mid-picture", [[box(200.0 + 20 * i)] for i in range(5)] + [[], [], []] + [[box(360.0)]]),
    ],
)
def test_a_missed_person_who_did_not_walk_out_keeps_their_id(name, frames):
    ids = run(frames)
    assert ids[3] and ids[-1] == ids[3], name


def test_walking_out_at_the_top_and_bottom_too():
    down = [[box(240.0, bottom)] for bottom in (310.0, 325.0, 340.0, 355.0)] + [[], []]
    down += [[box(240.0, bottom)] for bottom in (356.0, 348.0, 340.0)]  # somebody walks up into the picture there
    up = [[box(240.0, bottom)] for bottom in (110.0, 90.0, 70.0, 50.0)] + [[], []]
    up += [[box(240.0, bottom)] for bottom in (48.0, 56.0, 64.0)]
    for frames in (down, up):
        ids = run(frames)
        assert ids[3] and ids[-1] and ids[-1] != ids[3]
