"""Folding in a close-up scene: TUD-Campus (MOT15, street level, people half the picture tall).

Exact ground-truth boxes through the daemon's analyser (tracker, zone_intrusion over the whole
picture, incident book with the default merge settings). People who walk in while another walks
out must each get their own incident: 1.5 box heights of a person this tall covers most of the
frame, so folding's yardstick is capped by the scene. Every start is attributed to the person
whose box it carries; no person may have two starts and no start may stand for two people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surveil.analysis.analyzer import build_analyzer
from surveil.config import CameraConfig, TrackerConfig
from surveil.evaluation.surveillance import read_mot_gt
from surveil.geometry import box_iou
from surveil.types import Detections, Frame

W, H, FPS, FRAMES = 640, 480, 25.0, 71
CAMERA = {
    "name": "tud",
    "url": "tud.mp4",
    "zones": [{"name": "street", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
    "rules": [{"id": "street-intrusion", "type": "zone_intrusion", "zone": "street", "min_frames": 3}],
}


def boxes_at(rows: np.ndarray, number: int) -> tuple[np.ndarray, np.ndarray]:
    mine = rows[rows[:, 0] == number]
    xyxy = np.c_[mine[:, 2:4], mine[:, 2:4] + mine[:, 4:6]]
    return np.clip(xyxy, 0, [W, H, W, H]).astype(np.float32), mine[:, 1].astype(int)


def starts(rows: np.ndarray, step: int, phase: int) -> list[int]:
    """The person each incident start is about, in order."""
    analyzer = build_analyzer(CameraConfig.model_validate(CAMERA), TrackerConfig(), ["__background__", "pedestrian"])
    blank = np.zeros((H, W, 3), np.uint8)
    people = []
    for number in range(phase, FRAMES + 1, step):
        boxes, ids = boxes_at(rows, number)
        detections = Detections.from_arrays(boxes, np.ones(len(boxes)), np.ones(len(boxes)))
        t = number / FPS
        for update in analyzer.process(analyzer.context(Frame("tud", number, t, t, blank), detections)):
            if update.phase == "start":
                iou = box_iou(np.array([update.subjects[0].xyxy], np.float32), boxes)[0]
                people.append(int(ids[iou.argmax()]) if iou.max() >= 0.5 else -1)
    return people


@pytest.mark.parametrize(("step", "phase"), [(1, 1), (2, 1), (2, 2)])
def test_people_entering_together_are_separate_incidents(shared_data: Path, step: int, phase: int):
    rows = read_mot_gt(shared_data / "MOT15/TUD-Campus/gt/gt.txt")
    people = starts(rows, step, phase)
    assert -1 not in people
    assert len(people) == len(set(people)), f"a person started twice: {people}"
    # 7 walks in as 1 walks out; 8 appears as 2 walks out: both must get their own incident
    assert {7, 8} <= set(people), people
    assert set(people) >= {
        1,
        2,
        3,
        4,
        5,
        7,
        8,
    }  # everybody but 6, who is gone after 9 frames (not seen long at 12.5 fps)
