"""The demo clip shipped in the repository: small, complete and frame for frame the PETS09-S2L1
sequence that the MOT15 ground truth indexes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA

CLIP = REPO_ROOT / "configs/media/pets2009-s2l1.mp4"
SOURCE = SHARED_DATA / "video/vtest_pets2009-s2l1-view001_480x360.avi"
FRAMES, WIDTH, HEIGHT, FPS = 795, 480, 360, 10.0


def frames(path: Path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def test_clip_is_small_complete_and_documented():
    assert CLIP.stat().st_size <= 3 * 1024 * 1024
    capture = cv2.VideoCapture(str(CLIP))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    capture.release()
    shapes = [image.shape for image in frames(CLIP)]
    assert len(shapes) == FRAMES
    assert set(shapes) == {(HEIGHT, WIDTH, 3)}
    readme = (CLIP.parent / "README.md").read_text()
    for credit in ("PETS 2009", "University of Reading", "vtest.avi"):
        assert credit in readme


@pytest.mark.slow
def test_clip_matches_the_source_frame_for_frame():
    if not SOURCE.is_file():
        pytest.skip(f"source video {SOURCE} is absent")
    diffs = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(frames(SOURCE), frames(CLIP), strict=True)]
    assert len(diffs) == FRAMES
    assert max(diffs) < 1.0
