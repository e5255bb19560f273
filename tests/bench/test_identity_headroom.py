"""bench/identity_headroom.py's three IDF1 figures, on sequences and trackers built by hand."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from bench.identity_headroom import _checked, detections_oracle, headroom, true_identities
from bench.track_mot import Sequence
from surveil.config import TrackerConfig

ALICE, BOB = (100.0, 100.0, 120.0, 160.0), (300.0, 100.0, 320.0, 160.0)
FRAMES = range(1, 11)


def sequence(alice_scores: dict[int, float] | None = None, false_box: bool = False) -> Sequence:
    """Alice (person 1) and Bob (person 2) in frames 1-10, each detected at 0.9 unless ``alice_scores``
    says otherwise (a frame missing from it: Alice undetected); ``false_box`` adds a box on nobody."""
    dets, gt = {}, {}
    for n in FRAMES:
        boxes, scores = [BOB], [0.9]
        alice = 0.9 if alice_scores is None else alice_scores.get(n)
        if alice is not None:
            boxes.append(ALICE)
            scores.append(alice)
        if false_box:
            boxes.append((500.0, 300.0, 520.0, 360.0))
            scores.append(0.9)
        dets[n] = (np.array(boxes, np.float32), np.array(scores, np.float32))
        gt[n] = (np.array([1, 2]), np.array([ALICE, BOB], np.float32), np.array([True, True]))
    return Sequence("hand", 10.0, len(FRAMES), dets, gt)


def test_true_identities_relabel_covering_boxes_and_keep_false_positives_apart():
    seq = sequence()
    boxes = np.array([BOB, (500.0, 300.0, 520.0, 360.0), ALICE], np.float32)
    ((frame, ids, same_boxes),) = true_identities(seq, [(3, np.array([7, 8, 9]), boxes)])
    assert frame == 3 and same_boxes is boxes
    assert ids.tolist() == [2, -9, 1]


@pytest.mark.parametrize(
    ("alice_scores", "low_score", "min_hits", "alice_frames"),
    [
        (None, 0.1, 1, list(FRAMES)),
        (None, 0.1, 2, list(FRAMES)[1:]),  # the first sighting goes: no tracker returns it confirmed
        (None, 0.1, 3, list(FRAMES)[2:]),
        (dict.fromkeys((1, 4, 5, 9), 0.9), 0.1, 2, [4, 5, 9]),  # sightings counted, not consecutive frames
        ({n: 0.05 if n < 4 else 0.9 for n in FRAMES}, 0.1, 2, list(range(5, 11))),  # below low_score: unseen
    ],
)
def test_the_detections_oracle_returns_each_person_from_their_confirming_sighting(
    alice_scores, low_score, min_hits, alice_frames
):
    outputs = detections_oracle(sequence(alice_scores, false_box=True), 1, 0, low_score, min_hits)
    assert [frame for frame, ids, _ in outputs if 1 in ids.tolist()] == alice_frames
    assert all(set(ids.tolist()) <= {1, 2} for _, ids, _ in outputs)  # the box on nobody never comes back


def test_the_detections_oracle_sees_only_its_phase():
    outputs = detections_oracle(sequence(), 3, 1, 0.1, 2)
    assert [frame for frame, _, _ in outputs] == [2, 5, 8]
    assert [ids.tolist() for _, ids, _ in outputs] == [[], [2, 1], [2, 1]]


def swapping_tracker(swap_at: int):
    """A fake tracker that follows Alice as 1 and Bob as 2, and exchanges the two ids from ``swap_at`` on."""

    def make():
        frame = {"n": 0}

        def step(xyxy, scores, now, embedding=None):
            frame["n"] += 1
            alice, bob = (2, 1) if frame["n"] >= swap_at else (1, 2)
            ids = [alice if tuple(box) == ALICE else bob for box in xyxy.tolist()]
            return np.array(ids, int), xyxy

        step.seconds = 0.0  # type: ignore[attr-defined]
        return step

    return make


@pytest.mark.parametrize(
    ("swap_at", "tracker_idf1"),
    [
        (100, 1.0),  # never swaps: the tracker loses nothing to identity
        (6, 0.5),  # swaps half way: each person's best id covers half of their frames
        (9, 0.8),
    ],
)
def test_headroom_separates_identity_from_coverage(swap_at, tracker_idf1):
    tracker, true_ids, oracle = headroom(sequence(), 1, 0, swapping_tracker(swap_at), TrackerConfig(min_hits=1))
    assert tracker == pytest.approx(tracker_idf1)
    assert true_ids == pytest.approx(1.0)
    assert oracle == pytest.approx(1.0)


def test_an_undetected_stretch_costs_coverage_not_identity():
    seq = sequence(dict.fromkeys((1, 2, 3, 4, 5), 0.9))  # Alice undetected in frames 6-10
    tracker, true_ids, oracle = headroom(seq, 1, 0, swapping_tracker(100), TrackerConfig(min_hits=1))
    assert tracker == pytest.approx(true_ids) == pytest.approx(oracle)
    assert tracker < 1.0


@pytest.mark.parametrize(
    ("steps", "threshold", "data", "message"),
    [
        ([0], 0.3, ".", "--steps 0"),
        ([5, 51], 0.3, ".", "--steps 51"),
        ([5], 1.5, ".", "--threshold 1.5"),
        ([5], 0.3, "no/such/folder", "--data no/such/folder"),
    ],
)
def test_bad_arguments_exit_2_with_what_is_wrong(capsys, steps, threshold, data, message):
    with pytest.raises(SystemExit) as exit_info:
        _checked(argparse.Namespace(steps=steps, threshold=threshold, data=data, set=[]))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
