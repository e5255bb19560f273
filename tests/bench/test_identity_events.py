"""bench/identity_events.py: the recording tracker decides as the daemon's, and the tally classifies each match."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from bench.identity_events import Match, RecordingTracker, _checked, record, tally
from bench.track_mot import Sequence
from surveil.config import TrackerConfig
from surveil.tracking import make_tracker, surveil_options
from surveil.types import Detections

ALICE, BOB = (100.0, 100.0, 120.0, 160.0), (300.0, 100.0, 320.0, 160.0)


def two_walkers(frames: int = 10) -> Sequence:
    """Alice and Bob walking right, far apart, each detected at 0.9 in every frame."""
    dets, gt = {}, {}
    for n in range(1, frames + 1):
        boxes = np.array([ALICE, BOB], np.float32) + np.array([4.0 * n, 0, 4.0 * n, 0], np.float32)
        dets[n] = (boxes, np.array([0.9, 0.9], np.float32))
        gt[n] = (np.array([1, 2]), boxes.copy(), np.array([True, True]))
    return Sequence("hand", 10.0, frames, dets, gt)


def test_two_people_apart_are_born_confirmed_and_followed_without_a_wrong_match():
    frames = record(two_walkers(), 1, 0, TrackerConfig())
    assert [m.stage for m in frames[0][1]] == ["birth", "birth"]
    assert {m.stage for m in frames[1][1]} == {"tentative, IoU"}
    assert all({m.stage for m in f[1]} == {"confirmed, IoU, seen"} for f in frames[2:])
    cells = tally(frames)
    assert cells["confirmed, IoU, seen", "right"] == 16 and cells["tentative, IoU", "right"] == 2
    assert not any(v for (_, col), v in cells.items() if col.startswith("wrong") or col == "with a false box")


def test_the_recording_tracker_decides_exactly_as_the_daemons():
    rng = np.random.default_rng(7)
    config = TrackerConfig()
    plain, recording = make_tracker(config, "cam"), RecordingTracker("cam", **surveil_options(config))
    for n in range(60):
        count = int(rng.integers(0, 6))
        centres = rng.uniform(50, 400, size=(count, 2))
        half = np.array([10.0, 30.0])
        boxes = np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)
        given = Detections.from_arrays(boxes, rng.uniform(0.05, 1.0, count).astype(np.float32), np.zeros(count))
        out_plain, out_recording = plain.update(given, n / 2), recording.update(given, n / 2)
        assert [(t.track_id, t.xyxy, t.missed) for t in out_plain] == [
            (t.track_id, t.xyxy, t.missed) for t in out_recording
        ]
        assert all(0 <= m.detection < count for m in recording.matches)


def frame(matches: list[Match], people: dict[int, int], kept: dict[int, int] | None = None) -> tuple:
    return (0, matches, people, kept if kept is not None else {m.track_id: 0 for m in matches})


def test_a_track_that_moves_to_another_person_counts_as_wrong_lasting_and_kept_frames():
    iou = "confirmed, IoU, seen"
    frames = [
        frame([Match(1, 0, "birth"), Match(2, 1, "birth")], {0: 10, 1: 20}),
        frame([Match(1, 0, iou), Match(2, 1, iou)], {0: 10, 1: 20}),
        frame([Match(1, 1, iou)], {0: 10, 1: 20}),  # track 1 takes Bob's box while Alice has her own
        frame([Match(1, 0, iou)], {0: 20}),
        frame([Match(1, 0, iou)], {0: 20}),
        frame([Match(1, 0, iou), Match(3, 1, "birth")], {0: 20, 1: 10}, {1: 0, 2: 3}),  # Alice born anew
    ]
    cells = tally(frames)
    assert cells[iou, "right"] == 5 and cells[iou, "wrong"] == 1 and cells[iou, "wrong, own box"] == 1
    assert cells[iou, "wrong, lasting"] == 1 and cells[iou, "frames kept"] == 4
    assert cells["birth for a tracked person", "old track on another person"] == 1


@pytest.mark.parametrize(
    ("kept", "why"),
    [
        ({1: 2}, "old track lost, kept"),
        ({}, "old track dropped"),
        ({1: 0}, "old track matched elsewhere"),
    ],
)
def test_a_new_track_for_a_followed_person_says_what_became_of_the_old_one(kept, why):
    frames = [
        frame([Match(1, 0, "birth")], {0: 10}),
        frame([Match(2, 0, "birth")], {0: 10}, kept),
    ]
    cells = tally(frames)
    assert cells["birth for a tracked person", why] == 1
    assert sum(v for (row, _), v in cells.items() if row == "birth for a tracked person") == 1


def test_a_brief_change_is_wrong_but_not_lasting_and_a_box_on_nobody_is_counted_apart():
    iou = "confirmed, IoU, seen"
    frames = [
        frame([Match(1, 0, "birth")], {0: 10}),
        frame([Match(1, 0, iou)], {0: 20}),  # Bob's box, and Alice has none: not "own box"
        frame([Match(1, 0, iou)], {0: 10}),
        frame([Match(1, 0, iou)], {}),  # a box on nobody
    ]
    cells = tally(frames)
    assert cells[iou, "wrong"] == 2 and cells[iou, "wrong, own box"] == 0 and cells[iou, "wrong, lasting"] == 0
    assert cells[iou, "frames kept"] == 2 and cells[iou, "with a false box"] == 1


@pytest.mark.parametrize(
    "argv",
    [["--steps", "0"], ["--threshold", "2"], ["--data", "/nonexistent"]],
)
def test_bad_arguments_exit_2(argv, capsys):
    from bench.identity_events import get_args_parser

    with pytest.raises(SystemExit) as stop:
        _checked(get_args_parser().parse_args(argv))
    assert stop.value.code == 2 and capsys.readouterr().err.strip()


def test_good_arguments_pass(tmp_path):
    args = argparse.Namespace(steps=[5], threshold=0.3, data=str(tmp_path), set=[])
    assert _checked(args) is args
