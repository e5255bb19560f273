"""Metric tests with hand-computed expectations.

COCO AP is 101-point interpolated: a class whose precision envelope is p up to recall r and 0
after scores p * (number of recall points <= r) / 101.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from surveil.evaluation import Prediction, Target, evaluate
from surveil.evaluation.metrics import box_iou

NAMES = ["__background__", "person"]
TWO = ["__background__", "person", "car"]
A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
C = [40, 40, 50, 50]
A_HALF = [5, 0, 15, 10]  # IoU with A = 50 / 150 = 1/3


def pred(boxes, scores, labels=None) -> Prediction:
    labels = [1] * len(scores) if labels is None else labels
    return Prediction(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), np.array(labels))


def tgt(boxes, labels=None, ignore=None) -> Target:
    labels = [1] * len(boxes) if labels is None else labels
    return Target(
        np.array(boxes, np.float32).reshape(-1, 4), np.array(labels), None if ignore is None else np.array(ignore)
    )


# name, predictions, targets, (precision, recall, f1) at 0.5, best F1, best threshold, AP50
SINGLE_CLASS_CASES = [
    ("perfect", [pred([A, B], [0.9, 0.8])], [tgt([A, B])], (1, 1, 1), 1.0, 0.8, 1.0),
    ("perfect over two images", [pred([A], [0.9]), pred([B], [0.7])], [tgt([A]), tgt([B])], (1, 1, 1), 1.0, 0.7, 1.0),
    ("one FP above a TP", [pred([C, A], [0.9, 0.8])], [tgt([A])], (0.5, 1, 2 / 3), 2 / 3, 0.8, 0.5),
    ("missed object", [pred([A], [0.9])], [tgt([A, B])], (1, 0.5, 2 / 3), 2 / 3, 0.9, 51 / 101),
    ("IoU 1/3 is a miss", [pred([A_HALF], [0.9])], [tgt([A])], (0, 0, 0), 0.0, None, 0.0),
    ("duplicate detection", [pred([A, A], [0.9, 0.8])], [tgt([A])], (0.5, 1, 2 / 3), 1.0, 0.9, 1.0),
    ("TP below the threshold", [pred([A], [0.3])], [tgt([A])], (0, 0, 0), 1.0, 0.3, 1.0),
    ("no predictions", [pred([], [])], [tgt([A])], (0, 0, 0), 0.0, None, 0.0),
    # tied scores: no threshold keeps the TP without the FP (pycocotools ranks ties in input
    # order, so its AP50 here says 1.0: not checked)
    ("tied TP and FP", [pred([A, C], [0.9, 0.9])], [tgt([A])], (0.5, 1, 2 / 3), 2 / 3, 0.9, None),
]


@pytest.mark.parametrize(
    ("name", "preds", "targets", "prf", "best_f1", "best_thr", "ap50"),
    SINGLE_CLASS_CASES,
    ids=[c[0] for c in SINGLE_CLASS_CASES],
)
def test_single_class(name, preds, targets, prf, best_f1, best_thr, ap50):
    person = evaluate(preds, targets, NAMES).classes[0]
    assert (person.precision, person.recall, person.f1) == pytest.approx(prf)
    assert person.best_f1 == pytest.approx(best_f1)
    assert person.best_threshold == (None if best_thr is None else pytest.approx(best_thr))
    if ap50 is not None:
        assert person.ap50 == pytest.approx(ap50, abs=1e-6)


def test_perfect_predictions_give_map_one():
    report = evaluate([pred([A, B], [0.9, 0.8])], [tgt([A, B])], NAMES)
    assert report.map == pytest.approx(1.0)
    assert report.ap50 == pytest.approx(1.0)


def test_map_averages_over_iou_thresholds():
    # IoU of [0,0,10,10] with [0,0,10,8] is 0.8: a hit at IoU thresholds .50 ... .80 (7 of 10)
    report = evaluate([pred([[0, 0, 10, 8]], [0.9])], [tgt([A])], NAMES)
    assert report.ap50 == pytest.approx(1.0)
    assert report.map == pytest.approx(0.7)


# operating threshold -> (precision, recall, f1); predictions TP .9, FP .6, TP .3 for 2 objects
THRESHOLD_CASES = [
    (0.95, (0, 0, 0)),
    (0.7, (1, 0.5, 2 / 3)),
    (0.5, (0.5, 0.5, 0.5)),
    (0.3, (2 / 3, 1, 0.8)),
    ({"person": 0.7}, (1, 0.5, 2 / 3)),
    ({}, (0.5, 0.5, 0.5)),  # missing class: 0.5
]


@pytest.mark.parametrize(("threshold", "prf"), THRESHOLD_CASES)
def test_threshold_effects(threshold, prf):
    report = evaluate([pred([A, C, B], [0.9, 0.6, 0.3])], [tgt([A, B])], NAMES, score_thresholds=threshold)
    person = report.classes[0]
    assert (person.precision, person.recall, person.f1) == pytest.approx(prf)
    assert person.best_f1 == pytest.approx(0.8)  # the threshold does not move the best F1 ...
    assert person.best_threshold == pytest.approx(0.3)  # ... nor where it is


def test_best_threshold_prefers_the_highest_of_equal_f1():
    # TP .9, FP .8, TP .7 for 3 objects: F1 at .9 = 2*1*(1/3)/(4/3) = .5; at .7 = 2*(2/3)*(2/3)/(4/3) = 2/3
    # add an FP .6 and TP .5: at .5 = 2*.6*1/1.6 = .75 -> best
    report = evaluate(
        [pred([A, C, B, C, [60, 60, 70, 70]], [0.9, 0.8, 0.7, 0.6, 0.5])], [tgt([A, B, [60, 60, 70, 70]])], NAMES
    )
    assert report.classes[0].best_f1 == pytest.approx(0.75)
    assert report.classes[0].best_threshold == pytest.approx(0.5)
    # a perfect ranking reaches F1 1 at its lowest TP score and not above
    report = evaluate([pred([A, B, C], [0.9, 0.8, 0.1])], [tgt([A, B])], NAMES)
    assert (report.classes[0].best_f1, report.classes[0].best_threshold) == (pytest.approx(1.0), pytest.approx(0.8))


def test_greedy_matching_goes_by_score_not_iou():
    # the high-score box overlaps A less (IoU 0.64) but claims it first; the better-fitting low-score one is an FP
    report = evaluate([pred([[0, 0, 10, 6.4], A], [0.9, 0.4])], [tgt([A])], NAMES, score_thresholds=0.0)
    person = report.classes[0]
    assert (person.tp, person.fp) == (1, 1)
    assert person.best_threshold == pytest.approx(0.9)


def test_two_classes():
    preds = [pred([A, B, C], [0.9, 0.8, 0.7], [1, 2, 1])]
    targets = [tgt([A, B, C], [1, 2, 2])]  # C is a car predicted as a person
    report = evaluate(preds, targets, TWO)
    person, car = report.by_name("person"), report.by_name("car")
    assert (person.tp, person.fp, person.support) == (1, 1, 1)
    assert (car.tp, car.fp, car.support) == (1, 0, 2)
    assert (person.precision, person.recall) == pytest.approx((0.5, 1.0))
    assert (car.precision, car.recall) == pytest.approx((1.0, 0.5))
    assert person.ap50 == pytest.approx(1.0)  # the TP ranks first
    assert car.ap50 == pytest.approx(51 / 101)
    assert report.ap50 == pytest.approx((1 + 51 / 101) / 2)
    micro = report.averages["micro avg"]
    assert (micro["precision"], micro["recall"], micro["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert report.averages["macro avg"]["f1"] == pytest.approx(2 / 3)


def test_class_without_ground_truth_has_no_ap():
    report = evaluate([pred([A], [0.9], [1])], [tgt([A], [1])], TWO)
    car = report.by_name("car")
    assert car.support == 0 and car.ap is None and car.ap50 is None
    assert report.map == pytest.approx(1.0)  # COCO averages over classes that have ground truth


def test_ignored_ground_truth_is_neither_hit_nor_miss():
    preds = [pred([A, [20, 20, 30, 29]], [0.9, 0.8])]
    targets = [tgt([A, B], ignore=[False, True])]
    person = evaluate(preds, targets, NAMES).classes[0]
    assert (person.support, person.tp, person.fp) == (1, 1, 0)
    assert person.ap50 == pytest.approx(1.0)
    # without the ignore flag the second box is a hit and the support 2
    person = evaluate(preds, [tgt([A, B])], NAMES).classes[0]
    assert (person.support, person.tp) == (2, 2)


ERROR_CASES = [
    ("length mismatch", [pred([A], [0.9])], [], NAMES, "predictions for"),
    ("no background", [pred([A], [0.9])], [tgt([A])], ["person"], "__background__"),
    ("label 0", [pred([A], [0.9], [0])], [tgt([A])], NAMES, "labels must be in 1..1"),
    ("label too big", [pred([A], [0.9])], [tgt([A], [2])], NAMES, "labels must be in 1..1"),
]


@pytest.mark.parametrize(("name", "preds", "targets", "names", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_invalid_input(name, preds, targets, names, message):
    with pytest.raises(ValueError, match=message):
        evaluate(preds, targets, names)


def test_value_types_check_lengths():
    with pytest.raises(ValueError, match="lengths differ"):
        Prediction(np.zeros((2, 4)), np.zeros(1), np.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        Target(np.zeros((2, 5)), np.zeros(2))


def test_iou():
    iou = box_iou(np.array([A], np.float32), np.array([A, A_HALF, C], np.float32))
    assert iou == pytest.approx(np.array([[1.0, 1 / 3, 0.0]]))


def test_report_serialises_and_prints():
    report = evaluate([pred([A, C], [0.9, 0.6])], [tgt([A])], TWO, score_thresholds={"person": 0.5})
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["classes"]["person"]["precision"] == pytest.approx(0.5)
    assert doc["classes"]["car"]["ap50"] is None
    table = report.format_table()
    header = table.splitlines()[0].split()
    assert header[:4] == ["precision", "recall", "f1-score", "support"]
    person_row = next(line for line in table.splitlines() if line.strip().startswith("person")).split()
    assert person_row[1:5] == ["0.500", "1.000", "0.667", "1"]
    assert "mAP@[.50:.95] 1.000" in table
    assert report.best_thresholds() == {"person": pytest.approx(0.9)}


def test_class_with_ground_truth_but_no_detection_counts_as_zero():
    report = evaluate([pred([A], [0.9], [1])], [tgt([A, B], [1, 2])], TWO)
    assert report.by_name("car").ap50 == pytest.approx(0.0)
    assert report.by_name("car").best_threshold is None
    assert report.map == pytest.approx(0.5) and report.ap50 == pytest.approx(0.5)
