"""Dataset loaders: each format round-trips boxes; malformed files name themselves; invalid
boxes are dropped and counted; splits are seeded and keep sequences' frames together."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from surveil.datasets import (
    DatasetFormatError,
    DatasetIndex,
    Sample,
    load_dataset,
    merge_datasets,
    split_dataset,
)

W, H = 64, 48
# two images; pixel xyxy boxes chosen to be exact in every format (YOLO stores them normalised)
BOXES = [np.array([[8, 4, 24, 40], [32, 8, 48, 44]], np.float32), np.array([[0, 0, 16, 24]], np.float32)]
LABELS = [np.array([1, 2]), np.array([2])]
NAMES = ["car", "person"]


def _images(folder: Path, ext: str = ".jpg", stems: tuple[str, ...] = ("a", "b")) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}{ext}"), np.zeros((H, W, 3), np.uint8))
    return [f"{s}{ext}" for s in stems]


def write_coco(root: Path, extra: list[dict] | None = None) -> Path:
    files = _images(root / "images")
    anns = []
    for i, (boxes, labels) in enumerate(zip(BOXES, LABELS)):
        for b, label in zip(boxes, labels):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(label) * 10,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "iscrowd": 0,
                }
            )
    data = {
        "images": [{"id": i + 1, "file_name": f, "width": W, "height": H} for i, f in enumerate(files)],
        "categories": [{"id": 10, "name": "car"}, {"id": 20, "name": "person"}],
        "annotations": anns + (extra or []),
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return root


def write_voc(root: Path, extra: str = "") -> Path:
    files = _images(root / "JPEGImages")
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for f, boxes, labels in zip(files, BOXES, LABELS):
        objs = "".join(
            f"<object><name>{NAMES[label - 1]}</name><difficult>0</difficult><bndbox><xmin>{b[0]:g}</xmin><ymin>{b[1]:g}</ymin>"
            f"<xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>"
            for b, label in zip(boxes, labels)
        )
        xml = f"<annotation><filename>{f}</filename><size><width>{W}</width><height>{H}</height></size>{objs}{extra}</annotation>"
        (root / "Annotations" / f"{Path(f).stem}.xml").write_text(xml)
    return root


def write_yolo(root: Path, extra: str = "") -> Path:
    files = _images(root / "images" / "train", ".png")
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "classes.names").write_text("\n".join(NAMES) + "\n")
    for f, boxes, labels in zip(files, BOXES, LABELS):
        lines = [
            f"{label - 1} {(b[0] + b[2]) / 2 / W} {(b[1] + b[3]) / 2 / H} {(b[2] - b[0]) / W} {(b[3] - b[1]) / H}"
            for b, label in zip(boxes, labels)
        ]
        (root / "labels" / "train" / f"{Path(f).stem}.txt").write_text("\n".join(lines) + "\n" + extra)
    return root


def write_mot(root: Path, extra: str = "") -> Path:
    """One MOT17-style sequence (9 columns): class 1 kept, other classes and flag-0 rows dropped."""
    seq = root / "SEQ-01"
    _images(seq / "img1", ".jpg", ("000001", "000002"))
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=SEQ-01\nimDir=img1\nimWidth={W}\nimHeight={H}\nimExt=.jpg\n")
    rows = []
    for frame, boxes in enumerate(BOXES, start=1):
        for tid, b in enumerate(boxes):
            rows.append(f"{frame},{tid},{b[0]:g},{b[1]:g},{b[2] - b[0]:g},{b[3] - b[1]:g},1,1,1.0")
    rows += ["1,7,1,1,10,10,0,1,1.0", "1,8,1,1,10,10,1,3,1.0"]  # flag 0; class 3 (car)
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n" + extra)
    return root


@pytest.mark.parametrize(
    "fmt, writer, split, names",
    [
        ("coco", write_coco, "train", NAMES),
        ("voc", write_voc, None, NAMES),
        ("yolo", write_yolo, "train", NAMES),
        ("mot", write_mot, None, ["pedestrian"]),
    ],
)
def test_each_format_loads_boxes_exactly(tmp_path: Path, fmt, writer, split, names) -> None:
    root = writer(tmp_path / fmt)
    for given in (fmt, "auto"):
        index = load_dataset(root, given, split)
        assert index.class_names == names
        assert [s.image_path.is_file() for s in index.samples] == [True, True]
        for sample, boxes, labels in zip(index.samples, BOXES, LABELS):
            np.testing.assert_allclose(sample.boxes, boxes, atol=1e-4)
            expected = np.ones_like(labels) if fmt == "mot" else labels
            np.testing.assert_array_equal(sample.labels, expected)
            assert sample.boxes.dtype == np.float32 and sample.labels.dtype == np.int64


def test_mot15_rows_keep_every_class_and_drop_flag_zero(tmp_path: Path) -> None:
    seq = tmp_path / "PETS"
    _images(seq / "img", ".jpg", ("frame_0001",))
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(
        "1,1,2,2,10,20,-1,-1,-1,-1\n1,2,20,2,10,20,0,-1,-1,-1\n1,3,30,2,10,20,1,-5.2,3.1,0\n"
    )
    index = load_dataset(seq, "mot")
    np.testing.assert_array_equal(index.samples[0].boxes, [[2, 2, 12, 22], [30, 2, 40, 22]])
    assert index.samples[0].group == "PETS"


@pytest.mark.parametrize(
    "fmt, writer, bad, where",
    [
        ("coco", write_coco, [{"id": 99, "image_id": 1, "category_id": 10}], "instances_train.json"),
        ("voc", write_voc, "<object><name>car</name><bndbox><xmin>x</xmin></bndbox></object>", "a.xml"),
        ("yolo", write_yolo, "0 0.5 oops 0.1 0.1\n", "a.txt:3"),
        ("mot", write_mot, "2,5,abc,1,1,1,1,1,1\n", "gt.txt:6"),
    ],
)
def test_malformed_annotation_names_the_file(tmp_path: Path, fmt, writer, bad, where) -> None:
    root = writer(tmp_path / fmt, bad)
    with pytest.raises(DatasetFormatError, match=where.replace(".", r"\.")):
        load_dataset(root, fmt, "train" if fmt in ("coco", "yolo") else None)


@pytest.mark.parametrize(
    "fmt, writer, bad, dropped",
    [
        (
            "coco",
            write_coco,
            [
                {"id": 98, "image_id": 1, "category_id": 10, "bbox": [5, 5, 0, 10]},
                {"id": 99, "image_id": 2, "category_id": 20, "bbox": [100, 100, 10, 10]},
            ],
            2,
        ),
        # VOC and YOLO: the extra text goes into each of the two annotation files
        (
            "voc",
            write_voc,
            "<object><name>car</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax>"
            "</bndbox></object>",
            2,
        ),
        ("yolo", write_yolo, "0 0.5 0.5 0 0.1\n0 1.5 1.5 0.1 0.1\n", 4),
        ("mot", write_mot, "2,5,3,3,0,10,1,1,1\n2,6,200,200,5,5,1,1,1\n", 2),
    ],
)
def test_invalid_boxes_are_dropped_and_counted(tmp_path: Path, fmt, writer, bad, dropped) -> None:
    root = writer(tmp_path / fmt, bad)
    index = load_dataset(root, fmt, "train" if fmt in ("coco", "yolo") else None)
    assert index.dropped == dropped
    assert sum(len(s.boxes) for s in index.samples) == 3
    for s in index.samples:
        assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()


def test_boxes_partly_outside_are_clipped(tmp_path: Path) -> None:
    root = write_yolo(tmp_path / "yolo", "1 0.95 0.5 0.2 0.5\n")
    boxes = load_dataset(root, "yolo", "train").samples[1].boxes
    np.testing.assert_allclose(boxes[-1], [W * 0.85, H * 0.25, W, H * 0.75], atol=1e-4)


def test_unknown_split_and_format_are_clear_errors(tmp_path: Path) -> None:
    root = write_yolo(tmp_path / "yolo")
    with pytest.raises(DatasetFormatError, match="split 'val'"):
        load_dataset(root, "yolo", "val")
    with pytest.raises(ValueError, match="unknown dataset format"):
        load_dataset(root, "kitti")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nowhere")


def _sample(name: str, group: str = "") -> Sample:
    return Sample(Path(name), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), group=group)


def test_split_keeps_sequence_tails_for_val_and_is_seeded() -> None:
    samples = [_sample(f"s{i}", "seq") for i in range(20)] + [_sample(f"p{i}") for i in range(20)]
    index = DatasetIndex(samples, ["pedestrian"])
    train, val = split_dataset(index, 0.25, seed=3)
    assert [s.image_path.name for s in val.samples if s.group] == [f"s{i}" for i in range(15, 20)]
    assert len(val) == 10 and len(train) == 30
    assert not {s.image_path for s in train.samples} & {s.image_path for s in val.samples}
    assert [s.image_path for s in split_dataset(index, 0.25, seed=3)[1].samples] == [s.image_path for s in val.samples]
    assert [s.image_path for s in split_dataset(index, 0.25, seed=4)[1].samples] != [s.image_path for s in val.samples]


def test_merge_maps_labels_by_class_name() -> None:
    a = DatasetIndex([Sample(Path("a"), np.zeros((1, 4), np.float32), np.array([1]))], ["person"])
    b = DatasetIndex([Sample(Path("b"), np.zeros((2, 4), np.float32), np.array([1, 2]))], ["car", "person"])
    merged = merge_datasets([a, b])
    assert merged.class_names == ["car", "person"]
    assert merged.samples[0].labels.tolist() == [2]
    assert merged.samples[1].labels.tolist() == [1, 2]
