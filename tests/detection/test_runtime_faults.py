"""A runtime that returns impossible boxes (a reduced-precision overflow, NaN) yields no detection from
them and no numpy warning, and a daemon's JSON log stays JSON even when some library does warn."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from surveil.config import DetectorConfig
from surveil.detection.graph import GraphSpec
from surveil.detection.protocol import DetectionFilter

ROOT = Path(__file__).resolve().parents[2]
S8_MODEL = ROOT / "models/pedestrian-mnv2-s8.pt"
NETWORK_HW = (360, 480)
GOOD = [10.0, 20.0, 40.0, 120.0]
BIG = float(np.finfo(np.float32).max)


@pytest.mark.parametrize(
    ("box", "plausible"),
    [
        (GOOD, True),
        ([0.0, 0.0, 480.0, 360.0], True),  # the whole input
        ([-0.5, -0.5, 480.5, 360.5], True),  # rounding at the border
        ([10.0, 20.0, BIG, 120.0], False),  # what bf16 saturation leaves of an overflow
        ([-BIG, 20.0, 40.0, 120.0], False),
        ([10.0, 20.0, np.inf, 120.0], False),
        ([np.nan, 20.0, 40.0, 120.0], False),
        ([10.0, 20.0, 40.0, 400.0], False),  # below the input
        ([10.0, 20.0, 500.0, 120.0], False),  # right of it
    ],
)
def test_plausible_boxes_are_finite_and_inside_the_network_input(box, plausible):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = GraphSpec.plausible_boxes(np.array([box], np.float32), NETWORK_HW)
    assert got.tolist() == [plausible]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_detection_filter_drops_a_box_with_a_non_finite_coordinate(bad):
    keep = DetectionFilter(DetectorConfig(weights="x.pt", score_threshold=0.1), ["__background__", "person"], {})
    boxes = np.array([GOOD, [bad, 20.0, 40.0, 120.0]], np.float32)
    found = keep(boxes, np.array([0.9, 0.9], np.float32), np.array([1, 1]))
    assert found.xyxy.tolist() == [GOOD]


def test_an_onnx_detector_drops_impossible_boxes_and_counts_them(caplog):
    pytest.importorskip("onnxruntime")
    from surveil.detection.runtimes import OnnxDetector

    detector = OnnxDetector(DetectorConfig(weights=str(S8_MODEL), score_threshold=0.1), "onnxruntime")
    frame = np.zeros((720, 960, 3), np.uint8)  # twice the network input (360 x 480) each way
    height, width = detector.spec.preprocess(frame).shape[2:]
    rows = [GOOD, [10.0, 20.0, BIG, 120.0], [np.nan] * 4, [10.0, 20.0, 40.0, height + 50.0]]
    dimension = 4
    detector._run = lambda image: (
        np.array(rows, np.float32),
        np.ones(len(rows), np.int64),
        np.full(len(rows), 0.9, np.float32),
        np.eye(len(rows), dimension, dtype=np.float32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overflow encountered in multiply"
        (found,) = detector.detect([frame])
        for _ in range(3):
            detector.detect([frame])
    scale = frame.shape[1] / width
    np.testing.assert_allclose(found.xyxy, [[v * scale for v in GOOD]], rtol=1e-5)
    assert found.embedding is not None and found.embedding.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert detector.implausible_boxes == 12
    warned = [r.getMessage() for r in caplog.records if "outside the picture or not finite" in r.getMessage()]
    assert len(warned) == 2 and "returned 3 box(es)" in warned[0] and "returned 12 box(es)" in warned[1]


def test_a_warning_in_a_json_logging_process_is_a_json_line():
    code = (
        "import numpy as np\n"
        "from surveil.service.logsetup import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "np.array([3e38], np.float32) * np.float32(10)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is JSON
    assert [(e["level"], e["logger"]) for e in entries] == [("WARNING", "py.warnings")]
    assert "overflow encountered in multiply" in entries[0]["msg"]
