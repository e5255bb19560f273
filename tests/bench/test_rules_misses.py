"""bench/rules_misses.py's classes of a missed visit or stay and of a false start, on scenes built by hand."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from bench.rules_misses import Scene, _chain_spans, _has_run, false_cause, identity_changes, miss_cause
from surveil.types import Detections

FRAMES = list(range(10))
RULE = SimpleNamespace(anchor="bottom_center", min_frames=3, merge_window_s=2.0)
CAMERA = SimpleNamespace(zones=[SimpleNamespace(name="plaza", polygon=[[0, 0], [1, 0], [1, 1], [0, 1]])])
ALICE, BOB = (100.0, 100.0, 120.0, 160.0), (300.0, 100.0, 320.0, 160.0)


def scene(boxes_of_alice=FRAMES, tracks=None) -> Scene:
    """Alice and Bob stand in the zone in every frame; the detector sees Bob always and Alice in
    ``boxes_of_alice``; ``tracks``: frame -> {track id: box} of the matched tracks."""
    gt = {n: (np.array([ALICE, BOB], np.float32), np.array([1, 2])) for n in FRAMES}
    found = {}
    for n in FRAMES:
        boxes = [ALICE, BOB] if n in boxes_of_alice else [BOB]
        found[n] = Detections.from_arrays(np.array(boxes, np.float32), np.full(len(boxes), 0.9), np.ones(len(boxes)))
    matched = {n: {t: np.array(b, np.float32) for t, b in (tracks or {}).get(n, {}).items()} for n in FRAMES}
    return Scene(gt, found, np.array([1.0, 0.5]), FRAMES, matched, CAMERA, max_gap_frames=3)


def on(alice_track: dict[int, int], bob_track: dict[int, int]) -> dict:
    """frame -> {track id: box}: Alice's and Bob's tracks frame by frame (a missing frame: no track on them)."""
    out: dict[int, dict] = {n: {} for n in FRAMES}
    for n, t in alice_track.items():
        out[n][t] = ALICE
    for n, t in bob_track.items():
        out[n][t] = BOB
    return out


ONE_TRACK_EACH = on(dict.fromkeys(FRAMES, 1), dict.fromkeys(FRAMES, 2))
EXCHANGED = on({n: 1 if n < 5 else 2 for n in FRAMES}, {n: 2 if n < 5 else 1 for n in FRAMES})
NEW_ID = on({n: 1 if n < 5 else 3 for n in FRAMES}, dict.fromkeys(FRAMES, 2))


@pytest.mark.parametrize(
    ("alice_seen", "tracks", "dwell_s", "cause"),
    [
        ([], ONE_TRACK_EACH, None, "detector"),
        ([0, 1, 3, 4, 6, 7], ONE_TRACK_EACH, None, "detector"),  # never 3 frames in a row
        ([0, 1, 2, 7, 8, 9], ONE_TRACK_EACH, 0.5, "detector"),  # a 5-frame gap: no chain spans 5 frames
        (FRAMES, {}, None, "never tracked"),
        (FRAMES, ONE_TRACK_EACH, None, "tracked"),
        (FRAMES, EXCHANGED, 0.5, "swap"),
        ([n for n in FRAMES if n != 5], EXCHANGED, 0.5, "swap, no own box"),
        (FRAMES, NEW_ID, 0.5, "re-birth"),
        ([n for n in FRAMES if n != 4], NEW_ID, 0.5, "re-birth, no own box"),
    ],
)
def test_a_miss_is_put_in_one_class(alice_seen, tracks, dwell_s, cause):
    assert miss_cause(scene(alice_seen, tracks), 1, "plaza", FRAMES, RULE, dwell_s) == cause


@pytest.mark.parametrize(
    ("person", "tracks", "visits", "cause"),
    [
        (None, ONE_TRACK_EACH, [], "on nobody"),
        (2, EXCHANGED, [], "carried"),  # track 1 followed Alice, then Bob: the start at frame 9 is Bob's
        (1, ONE_TRACK_EACH, [(1, "plaza", 2, 9)], "early"),
        (1, ONE_TRACK_EACH, [(1, "plaza", 0, 3)], "elsewhere"),
    ],
)
def test_a_false_start_is_put_in_one_class(person, tracks, visits, cause):
    start = SimpleNamespace(number=9, track_id=1)
    assert false_cause(scene(FRAMES, tracks), start, person, RULE, visits, dwell_s=1.0) == cause


def test_a_start_carried_while_one_box_covered_both_says_so():
    start = SimpleNamespace(number=9, track_id=1)
    assert false_cause(scene([0, 1, 2, 3, 4, 6, 7, 8, 9], EXCHANGED), start, 2, RULE, [], 1.0) == "carried, no own box"


@pytest.mark.parametrize(
    ("seen", "max_gap", "span", "reaches"),
    [
        ([0, 10, 20, 30], 10, 30, True),
        ([0, 10, 21, 31], 10, 30, False),  # one gap of 11 breaks the chain
        ([0, 11, 22, 33, 44], 11, 30, True),
        ([5], 10, 0, True),
        ([], 10, 0, False),
    ],
)
def test_a_chain_of_sightings_spans_the_dwell_only_without_a_long_gap(seen, max_gap, span, reaches):
    assert _chain_spans(seen, max_gap, span) is reaches


@pytest.mark.parametrize(
    ("good", "length", "found"), [({0, 1, 2}, 3, True), ({0, 1, 3, 4}, 3, False), (set(), 1, False)]
)
def test_a_run_of_frames_must_be_unbroken(good, length, found):
    assert _has_run(list(range(6)), good, length) is found


def test_identity_changes_tell_a_flip_that_comes_back_from_a_lasting_swap():
    flip = on({n: 2 if n == 5 else 1 for n in FRAMES}, {n: 1 if n == 5 else 2 for n in FRAMES})
    assert identity_changes(scene(FRAMES, flip)) == Counter({"alone": 4, "flip": 4})  # two people, out and back
    assert identity_changes(scene(FRAMES, EXCHANGED)) == Counter({"alone": 2})
    assert identity_changes(scene([n for n in FRAMES if n != 5], EXCHANGED)) == Counter({"alone": 1, "no own box": 1})
