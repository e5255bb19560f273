"""The surveillance test bed: PETS09-S2L1 frames with MOTChallenge ground truth.

The video ``video/vtest_pets2009-s2l1-view001_480x360.avi`` is the MOT15 sequence
PETS09-S2L1 (768x576) re-encoded at 480x360, frame for frame: ground-truth boxes are scaled by
0.625 to land on it. Rows whose flag column is 0 are kept as ``ignore`` boxes (people the
annotators marked as not to be scored): detecting them is neither a hit nor a false alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from surveil.evaluation.metrics import Target
from surveil.geometry import box_iou

log = logging.getLogger(__name__)

PETS_VIDEO = Path("video/vtest_pets2009-s2l1-view001_480x360.avi")
PETS_GT = Path("MOT15/PETS09-S2L1/gt/gt.txt")
PETS_SCALE = 480 / 768
PERSON = 1
CLASS_NAMES = ["__background__", "person"]


def load_pets_s2l1(shared_data: Path, every: int = 5) -> tuple[list[np.ndarray], list[Target]]:
    """Frames 1, 1+every, 1+2*every, ... (1-based) as BGR images, with their ground truth."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    video, gt_file = Path(shared_data) / PETS_VIDEO, Path(shared_data) / PETS_GT
    for path in (video, gt_file):
        if not path.is_file():
            raise FileNotFoundError(f"PETS09-S2L1 test bed needs {path}")
    rows = read_mot_gt(gt_file)
    frames: list[np.ndarray] = []
    targets: list[Target] = []
    for number, frame in _read_frames(video):
        if (number - 1) % every:
            continue
        frames.append(frame)
        targets.append(_frame_target(rows, number))
    log.info("PETS09-S2L1: %d frames (every %d), %d boxes", len(frames), every, sum(len(t.labels) for t in targets))
    return frames, targets


def read_mot_gt(path: Path) -> np.ndarray:
    """MOTChallenge gt.txt as an (N, 7) float array: frame, id, x, y, w, h, flag."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    return rows[:, :7]


def pets_frame_boxes(rows: np.ndarray, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``number``'s ground truth on the 480x360 video: xyxy boxes, track ids, scored (flag != 0)."""
    mine = rows[rows[:, 0] == number]
    xywh = mine[:, 2:6] * PETS_SCALE
    boxes = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]].astype(np.float32)
    return boxes, mine[:, 1].astype(np.int64), mine[:, 6] != 0


def pair_by_iou(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """(row of ``a``, row of ``b``) pairs of xyxy boxes, one to one, each at IoU >= ``min_iou``: the pairing
    with the most overlap in all among such pairs (CLEAR-MOT's per-frame matching; two people side by side
    need it, as the best box for each alone may be one box twice)."""
    if not len(a) or not len(b):
        return []
    iou = box_iou(a, b)
    rows, cols = linear_sum_assignment(np.where(iou >= min_iou, iou, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


def _frame_target(rows: np.ndarray, number: int) -> Target:
    boxes, _ids, scored = pets_frame_boxes(rows, number)
    return Target(boxes, np.full(len(boxes), PERSON, np.int64), ignore=~scored)


def _read_frames(video: Path) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise OSError(f"cannot open video {video}")
    try:
        number = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            number += 1
            yield number, frame
    finally:
        cap.release()
