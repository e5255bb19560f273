from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surveil.evaluation.surveillance import load_pets_s2l1, pair_by_iou


@pytest.fixture(scope="module")
def pets(shared_data: Path):
    return load_pets_s2l1(shared_data, every=5)


def test_every_fifth_frame_of_the_video(pets):
    frames, targets = pets
    assert len(frames) == len(targets) == 159  # frames 1, 6, ..., 791 of 795
    assert frames[0].shape == (360, 480, 3) and frames[0].dtype == np.uint8


def test_ground_truth_is_scaled_onto_the_video(pets):
    _, targets = pets
    # gt.txt frame 1, id 9: x 499, y 158, w 31.03, h 75.17 on 768x576; x 0.625 on 480x360
    expected = np.array([499, 158, 499 + 31.03, 158 + 75.17], np.float32) * 0.625
    assert len(targets[0].boxes) == 3
    assert np.abs(targets[0].boxes - expected).max(axis=1).min() < 1e-3
    assert (targets[0].labels == 1).all()
    # second target is frame 6, not frame 2: frame 2 has id 9 at x 497
    assert not np.isclose(targets[1].boxes[:, 0], 497 * 0.625).any()
    everything = np.concatenate([t.boxes for t in targets])
    assert everything[:, [0, 2]].max() <= 480 + 1 and everything[:, [1, 3]].max() <= 360 + 1


def test_flag_zero_rows_become_ignore_boxes(pets):
    _, targets = pets
    ignored = sum(int(t.ignore.sum()) for t in targets)
    total = sum(len(t.labels) for t in targets)
    assert (ignored, total) == (34, 929)  # counted from gt.txt: rows with flag 0 in frames 1, 6, 11, ...


def test_every_must_be_positive(shared_data: Path):
    with pytest.raises(ValueError, match="every"):
        load_pets_s2l1(shared_data, every=0)


def test_missing_data_is_reported(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="vtest_pets2009"):
        load_pets_s2l1(tmp_path)


ALICE, BOB = (100.0, 100.0, 120.0, 160.0), (300.0, 100.0, 320.0, 160.0)


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([ALICE, BOB], [(0, 0), (1, 1)]),
        ([BOB, ALICE], [(0, 1), (1, 0)]),
        ([(100.0, 100.0, 120.0, 125.0)], []),  # under half of Alice: covers nobody
        ([(100.0, 100.0, 320.0, 160.0)], []),  # one box over both: IoU under 0.5 with each
        ([], []),
    ],
)
def test_pair_by_iou_pairs_a_box_with_the_person_it_covers_one_to_one(boxes, expected):
    got = pair_by_iou(np.array(boxes, np.float32).reshape(-1, 4), np.array([ALICE, BOB], np.float32))
    assert sorted(got) == expected


def test_pair_by_iou_gives_two_people_side_by_side_a_box_each():
    left, right = (0.0, 0.0, 10.0, 20.0), (6.0, 0.0, 16.0, 20.0)
    between = (3.0, 0.0, 13.0, 20.0)  # IoU 0.54 with each person; the first box is exactly the left one
    got = pair_by_iou(np.array([between, left], np.float32), np.array([left, right], np.float32))
    assert sorted(got) == [(0, 1), (1, 0)]
