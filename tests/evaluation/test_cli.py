from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from surveil.evaluation.cli import (
    add_eval_arguments,
    add_export_arguments,
    align_labels,
    eval_main,
    export_main,
    remap_prediction,
)
from surveil.evaluation.metrics import Prediction

pytestmark = pytest.mark.slow

COCO_LIKE = ["__background__", "person", "bicycle", "car"]

ALIGN_CASES = [
    ("same names", ["__background__", "person", "car"], ["__background__", "car", "person"], {1: 2, 2: 1}),
    ("one class each, any name", ["__background__", "pedestrian"], ["__background__", "walker"], {1: 1}),
    ("pedestrian is person", COCO_LIKE, ["__background__", "pedestrian"], {1: 1}),
    ("case and spaces", COCO_LIKE, ["__background__", " Car "], {3: 1}),
    ("nothing in common", COCO_LIKE, ["__background__", "dog", "cat"], {}),
]


@pytest.mark.parametrize(("name", "model", "data", "expected"), ALIGN_CASES, ids=[c[0] for c in ALIGN_CASES])
def test_align_labels(name, model, data, expected):
    assert align_labels(model, data) == expected


def test_remap_drops_unmapped_classes():
    pred = Prediction(np.zeros((3, 4)), np.array([0.9, 0.8, 0.7]), np.array([1, 2, 3]))
    out = remap_prediction(pred, {1: 1, 3: 2})
    assert out.labels.tolist() == [1, 2] and out.scores.tolist() == pytest.approx([0.9, 0.7])


def _parse(add, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def test_eval_on_pets_prints_table_and_writes_json(random_checkpoint: Path, shared_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "report.json"
    args = _parse(add_eval_arguments, ["--weights", str(random_checkpoint), "--pets", "--shared-data", str(shared_data),
                                       "--every", "200", "--json", str(out)])  # fmt: skip
    assert eval_main(args) == 0
    table = capsys.readouterr().out
    assert "precision" in table and "person" in table and "mAP@[.50:.95]" in table
    doc = json.loads(out.read_text())
    assert doc["num_images"] == 4  # frames 1, 201, 401, 601
    assert doc["classes"]["person"]["threshold"] == pytest.approx(0.4)  # the checkpoint's operating threshold
    assert doc["data"] == "PETS09-S2L1" and doc["ms_per_image"] > 0


def _tiny_yolo_dataset(root: Path) -> Path:
    (root / "images" / "test").mkdir(parents=True)
    (root / "labels" / "test").mkdir(parents=True)
    (root / "classes.txt").write_text("pedestrian\n")
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(root / "images" / "test" / f"{i}.png"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        (root / "labels" / "test" / f"{i}.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    return root


def test_eval_on_a_dataset_with_a_threshold_override(random_checkpoint: Path, tmp_path: Path, capsys):
    data = _tiny_yolo_dataset(tmp_path / "tiny")
    out = tmp_path / "report.json"
    args = _parse(add_eval_arguments, ["--weights", str(random_checkpoint), "--data", str(data), "--format", "yolo",
                                       "--split", "test", "--score-threshold", "0.25", "--json", str(out)])  # fmt: skip
    assert eval_main(args) == 0
    doc = json.loads(out.read_text())
    assert list(doc["classes"]) == ["pedestrian"]  # the dataset's names; the model's 'person' maps onto it
    assert doc["classes"]["pedestrian"]["support"] == 2
    assert doc["classes"]["pedestrian"]["threshold"] == pytest.approx(0.25)


def test_eval_reports_a_missing_checkpoint(tmp_path: Path, capsys):
    args = _parse(add_eval_arguments, ["--weights", str(tmp_path / "nope.pt"), "--pets"])
    assert eval_main(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_command_writes_model_and_sidecar(random_checkpoint: Path, tmp_path: Path, capsys):
    out = tmp_path / "m.ts"
    args = _parse(
        add_export_arguments, ["--weights", str(random_checkpoint), "--format", "torchscript", "--output", str(out)]
    )
    assert export_main(args) == 0
    assert out.is_file() and (tmp_path / "m.ts.json").is_file()
    assert str(out) in capsys.readouterr().out


def test_export_command_reports_a_missing_checkpoint(tmp_path: Path, capsys):
    args = _parse(
        add_export_arguments,
        ["--weights", str(tmp_path / "nope.pt"), "--format", "onnx", "--output", str(tmp_path / "m.onnx")],
    )
    assert export_main(args) == 2
    assert "does not exist" in capsys.readouterr().err
