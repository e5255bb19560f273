"""bench/zone_alerts_pipeline.py's recorder: frame numbers (seq + 1), incident starts and the frame check."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from zone_alerts_pipeline import Recorder, frame_hash  # noqa: E402

from surveil.types import Subject  # noqa: E402


class FakeAnalyzer:
    def __init__(self, updates):
        self.updates = updates  # seq -> updates

    def process(self, ctx):
        return self.updates.get(ctx.seq, [])


def test_recorder_numbers_frames_from_one_and_keeps_starts():
    clip = [np.full((4, 4, 3), i, np.uint8) for i in range(5)]
    start = SimpleNamespace(phase="start", zone="lawn", subjects=(Subject(7, "pedestrian", 0.9, (1.0, 2.0, 3.0, 4.0)),))
    end = SimpleNamespace(phase="end", zone="lawn", subjects=start.subjects)
    analyzer = FakeAnalyzer({2: [start], 4: [end]})
    recorder = Recorder([frame_hash(f) for f in clip])
    recorder.wrap(analyzer)
    for seq, image in ((0, clip[0]), (2, clip[2]), (None, None), (4, clip[3])):  # a tick between; seq 4 shows frame 3
        analyzer.process(SimpleNamespace(seq=seq, image=image))
    assert recorder.frames == [1, 3, 5]
    assert [(n, z, b.tolist()) for n, z, b in recorder.starts] == [(3, "lawn", [1.0, 2.0, 3.0, 4.0])]
    assert recorder.mismatched == [4]
