"""bench/zone_alerts_pipeline.py's recorder: frame numbers (seq + 1), incident starts and the frame check."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.zone_alerts_pets import Start, person_of_track, score
from bench.zone_alerts_pipeline import Recorder, frame_hash
from surveil.analysis.analyzer import CameraAnalyzer
from surveil.types import Detections, Frame, Subject


class FakeTracker:
    def update(self, detections, now, confident):
        box = (float(now), 0.0, float(now) + 10, 20.0)  # one track, moving 1 px per frame; lost at seq 4
        return [SimpleNamespace(track_id=7, xyxy=box, missed=int(now >= 4))]


class FakeAnalyzer:
    """CameraAnalyzer's side of ``on_step``: a frame's context gets its tracks, then the observer hears the step."""

    def __init__(self, updates):
        self.updates = updates  # seq -> updates
        self.tracker = FakeTracker()
        self.on_step = None

    def process(self, ctx):
        if ctx.seq is not None:
            ctx = SimpleNamespace(**vars(ctx), tracks=tuple(self.tracker.update(None, ctx.seq, None)))
        updates = self.updates.get(ctx.seq, [])
        if self.on_step is not None:
            self.on_step(ctx, updates)
        return updates


def test_recorder_numbers_frames_from_one_and_keeps_starts():
    clip = [np.full((4, 4, 3), i, np.uint8) for i in range(5)]
    start = SimpleNamespace(phase="start", zone="lawn", subjects=(Subject(7, "pedestrian", 0.9, (1.0, 2.0, 3.0, 4.0)),))
    end = SimpleNamespace(phase="end", zone="lawn", subjects=start.subjects)
    analyzer = FakeAnalyzer({2: [start], 4: [end]})
    recorder = Recorder([frame_hash(f) for f in clip])
    analyzer.on_step = recorder
    for seq, image in ((0, clip[0]), (2, clip[2]), (None, None), (4, clip[3])):  # a tick between; seq 4 shows frame 3
        analyzer.process(SimpleNamespace(seq=seq, image=image))
    assert recorder.frames == [1, 3, 5]
    assert [(n, z, b.tolist(), t) for n, z, b, t in recorder.starts] == [(3, "lawn", [1.0, 2.0, 3.0, 4.0], 7)]
    assert recorder.mismatched == [4]
    assert {n: {t: b.tolist() for t, b in boxes.items()} for n, boxes in recorder.tracks.items()} == {
        1: {7: [0.0, 0.0, 10.0, 20.0]},
        3: {7: [2.0, 0.0, 12.0, 20.0]},
        5: {},
    }  # seq 4: predicted only, not matched


def test_recorder_hears_every_step_of_a_real_analyser():
    clip = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    recorder = Recorder([frame_hash(f) for f in clip])
    analyzer = CameraAnalyzer("cam1", FakeTracker(), [], ["__background__", "pedestrian"], on_step=recorder)
    for seq in (0, 2):
        frame = Frame("cam1", seq, float(seq), 1_700_000_000.0 + seq, clip[seq])
        analyzer.process(analyzer.context(frame, Detections.empty()))
        analyzer.tick(seq + 0.5, 1_700_000_000.5 + seq)  # ticks reach the observer too, and are not frames
    assert recorder.frames == [1, 3]
    assert recorder.mismatched == []
    assert {n: {t: b.tolist() for t, b in boxes.items()} for n, boxes in recorder.tracks.items()} == {
        1: {7: [0.0, 0.0, 10.0, 20.0]},
        3: {7: [2.0, 0.0, 12.0, 20.0]},
    }


def _gt(*frames):
    """{frame number: (boxes, person ids)} from (number, {person: box}) pairs."""
    return {
        n: (np.array(list(people.values()), np.float32).reshape(-1, 4), np.array(list(people), np.int64))
        for n, people in frames
    }


LEFT, RIGHT = (0.0, 0.0, 10.0, 30.0), (12.0, 0.0, 22.0, 30.0)
BETWEEN = (4.0, 0.0, 18.0, 30.0)  # one box over two people walking side by side: IoU < 0.5 with either


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        pytest.param({8: LEFT, 9: LEFT, 10: BETWEEN}, 1, id="side-by-side-at-the-start-frame"),
        pytest.param({8: RIGHT, 9: RIGHT, 10: RIGHT}, 2, id="clean-track"),
        pytest.param({5: LEFT, 8: RIGHT, 9: RIGHT, 10: BETWEEN}, 2, id="only-the-last-three-matched-frames-vote"),
        pytest.param(
            {4: LEFT, 5: LEFT, 6: LEFT, 7: LEFT, 8: RIGHT, 9: RIGHT, 10: RIGHT},
            2,
            id="a-swap-before-the-alert-does-not-count",
        ),
        pytest.param({6: LEFT, 9: RIGHT, 10: RIGHT}, 2, id="frames-without-a-match-are-skipped"),
        pytest.param({8: LEFT, 9: RIGHT, 10: BETWEEN}, 2, id="a-tie-goes-to-the-frame-nearest-the-start"),
        pytest.param({10: BETWEEN}, None, id="no-frame-matches-anyone"),
        pytest.param({1: LEFT, 10: BETWEEN}, None, id="matches-outside-the-window-do-not-count"),
    ],
)
def test_person_of_track(track, expected):
    gt = _gt(*[(n, {1: LEFT, 2: RIGHT}) for n in range(1, 11)])
    tracks = {n: {7: np.array(box, np.float32)} for n, box in track.items()}
    start = Start(10, "lawn", np.array(BETWEEN, np.float32), 7)
    assert person_of_track(start, gt, tracks, window=5, last=3) == expected


def test_track_attribution_turns_a_shared_box_into_the_true_alert_it_was():
    gt = _gt(*[(n, {1: LEFT, 2: RIGHT}) for n in range(1, 11)])
    truth = [(1, "lawn", 3, 10)]  # person 1's visit
    start = Start(10, "lawn", np.array(BETWEEN, np.float32), 7)
    tracks = {n: {7: np.array(LEFT, np.float32)} for n in (8, 9)}
    by_box = score(truth, [start], gt, merge_frames=5)
    by_track = score(truth, [start], gt, merge_frames=5, tracks=tracks)
    assert (by_box.hit, by_box.false) == (0, 1)
    assert (by_track.hit, by_track.false) == (1, 0)
