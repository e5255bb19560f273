"""Detection datasets: one loader per annotation format behind one interface.

``load_dataset(path, fmt, split)`` returns a :class:`DatasetIndex`: a list of samples (image path,
xyxy pixel boxes, labels 1..K) and the class names (index 0 of the model's label map is the
background, so class ``class_names[i]`` has label ``i + 1``).

Formats:
- ``coco``: a COCO JSON file, or a folder with ``annotations/instances_<split>.json`` (or
  ``<split>.json``) and images beside it.
- ``voc``: a Pascal VOC folder (``Annotations/*.xml``, ``JPEGImages/``, optional
  ``ImageSets/Main/<split>.txt``).
- ``yolo``: ``images/<split folder>/*.{jpg,png}`` with ``labels/<same folder>/<stem>.txt``
  (``class cx cy w h``, normalised) and a ``*.names`` (or ``classes.txt``) file.
- ``mot``: a MOTChallenge sequence (``gt/gt.txt``, ``img/`` or ``img1/``, optional
  ``seqinfo.ini``) or a folder of sequences. Rows whose conf/flag column is 0 are dropped; in
  9-column (MOT16/17) files only class 1 (pedestrian) is kept. Class name: ``pedestrian``.

Boxes with no area or entirely outside the image are dropped and counted (``DatasetIndex.dropped``);
boxes partly outside are clipped. A malformed annotation raises :class:`DatasetFormatError` naming
the file (and line where there is one).
"""

from __future__ import annotations

import configparser
import json
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

FORMATS = ("coco", "voc", "yolo", "mot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetFormatError(ValueError):
    """An annotation file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Sample:
    image_path: Path
    boxes: np.ndarray  # (M, 4) float32, xyxy pixels
    labels: np.ndarray  # (M,) int64 in 1..K
    group: str = ""  # e.g. the video sequence; splits keep a group's frames in order
    size: tuple[int, int] | None = None  # (height, width) when the annotation states it


@dataclass
class DatasetIndex:
    samples: list[Sample]
    class_names: list[str]
    dropped: int = 0  # invalid boxes dropped while loading
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def label_map(self) -> list[str]:
        """The model's labels: background first, then the class names."""
        return ["__background__", *self.class_names]


# ---------------------------------------------------------------- box hygiene


def clean_boxes(
    boxes: ArrayLike, labels: ArrayLike, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Clip boxes to the image (when its size is known) and drop those without area.

    Returns (boxes, labels, number dropped).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    finite = np.asarray(np.isfinite(boxes).all(axis=1))
    boxes = np.where(finite[:, None], boxes, 0.0).astype(np.float32)
    if size is not None:
        h, w = size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    keep = finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], labels[keep], int((~keep).sum())


def _image_size(path: Path) -> tuple[int, int]:
    import cv2  # lazy: only formats that do not state the size need it

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetFormatError(f"{path}: cannot read image")
    return int(image.shape[0]), int(image.shape[1])


# ---------------------------------------------------------------- format detection


def detect_format(path: Path) -> str:
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return "coco"
    if (path / "gt" / "gt.txt").is_file() or any((p / "gt" / "gt.txt").is_file() for p in _subdirs(path)):
        return "mot"
    if (path / "Annotations").is_dir():
        return "voc"
    if (path / "labels").is_dir() and (path / "images").is_dir():
        return "yolo"
    if (path / "annotations").is_dir() or list(path.glob("*.json")):
        return "coco"
    raise DatasetFormatError(f"{path}: cannot tell the dataset format; pass one of {', '.join(FORMATS)}")


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir())


def load_dataset(path: str | Path, fmt: str = "auto", split: str | None = None) -> DatasetIndex:
    """Load the annotations of ``path`` (``fmt`` one of auto/coco/voc/yolo/mot) for ``split``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    fmt = detect_format(path) if fmt == "auto" else fmt
    loaders = {"coco": load_coco, "voc": load_voc, "yolo": load_yolo, "mot": load_mot}
    if fmt not in loaders:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")
    index = loaders[fmt](path, split)
    index.sources = [f"{fmt}:{path}" + (f"@{split}" if split else "")]
    return index


# ---------------------------------------------------------------- COCO


def _coco_file(path: Path, split: str | None) -> Path:
    if path.is_file():
        return path
    names = [f"instances_{split}.json", f"{split}.json"] if split else []
    for folder in (path / "annotations", path):
        for name in names:
            if (folder / name).is_file():
                return folder / name
        candidates = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not split and len(candidates) == 1:
            return candidates[0]
    raise DatasetFormatError(f"{path}: no COCO annotation file for split {split!r}")


def load_coco(path: Path, split: str | None = None) -> DatasetIndex:
    file = _coco_file(path, split)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        categories = sorted(data["categories"], key=lambda c: c["id"])
        images = {img["id"]: img for img in data["images"]}
        annotations = data.get("annotations", [])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetFormatError(f"{file}: not a COCO detection file ({type(exc).__name__}: {exc})") from None
    label_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
    per_image: dict[int, list[tuple[list[float], int]]] = {i: [] for i in images}
    for n, ann in enumerate(annotations):
        try:
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            per_image[ann["image_id"]].append(([x, y, x + w, y + h], label_of[ann["category_id"]]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetFormatError(f"{file}: annotation #{n} is malformed ({type(exc).__name__}: {exc})") from None
    root = _coco_image_root(file, split)
    samples, dropped = [], 0
    for image_id, img in sorted(images.items()):
        anns = per_image[image_id]
        size = (int(img["height"]), int(img["width"])) if "height" in img and "width" in img else None
        boxes, labels, bad = clean_boxes([a[0] for a in anns], [a[1] for a in anns], size)
        dropped += bad
        samples.append(Sample(root / img["file_name"], boxes, labels, size=size))
    return DatasetIndex(samples, [str(c["name"]) for c in categories], dropped)


def _coco_image_root(file: Path, split: str | None) -> Path:
    base = file.parent.parent if file.parent.name == "annotations" else file.parent
    for candidate in ([base / split, base / "images" / split] if split else []) + [base / "images", base]:
        if candidate.is_dir():
            return candidate
    return base


# ---------------------------------------------------------------- Pascal VOC


def load_voc(path: Path, split: str | None = None) -> DatasetIndex:
    ann_dir = path / "Annotations"
    if split:
        list_file = path / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetFormatError(f"{path}: no split list {list_file}")
        stems = [s.split()[0] for s in list_file.read_text().splitlines() if s.strip()]
        files = [ann_dir / f"{s}.xml" for s in stems]
    else:
        files = sorted(ann_dir.glob("*.xml"))
    parsed = [_parse_voc(f, path) for f in files]
    names = sorted({name for _, objs, _ in parsed for name, _ in objs})
    label_of = {n: i + 1 for i, n in enumerate(names)}
    samples, dropped = [], 0
    for image_path, objs, size in parsed:
        boxes, labels, bad = clean_boxes([b for _, b in objs], [label_of[n] for n, _ in objs], size)
        dropped += bad
        samples.append(Sample(image_path, boxes, labels, size=size))
    return DatasetIndex(samples, names, dropped)


def _parse_voc(file: Path, root: Path) -> tuple[Path, list[tuple[str, list[float]]], tuple[int, int] | None]:
    try:
        tree = ET.parse(file).getroot()
        filename = tree.findtext("filename") or f"{file.stem}.jpg"
        size_el = tree.find("size")
        size = None
        height = size_el.findtext("height") if size_el is not None else None
        width = size_el.findtext("width") if size_el is not None else None
        if height and width:
            size = (int(float(height)), int(float(width)))
        objs = []
        for obj in tree.iter("object"):
            if (obj.findtext("difficult") or "0").strip() == "1":
                continue
            bb = obj.find("bndbox")
            name = (obj.findtext("name") or "").strip()
            if bb is None or not name:
                raise ValueError("an <object> lacks <name> or <bndbox>")
            # a missing coordinate is float(None): a TypeError, reported as a malformed annotation below
            box = [float(cast(str, bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]
            objs.append((name, box))
    except FileNotFoundError:
        raise DatasetFormatError(f"{file}: annotation file is missing") from None
    except (ET.ParseError, ValueError, TypeError) as exc:
        raise DatasetFormatError(f"{file}: malformed VOC annotation ({exc})") from None
    return root / "JPEGImages" / filename, objs, size


# ---------------------------------------------------------------- YOLO


def _yolo_names(path: Path) -> list[str]:
    for candidate in [*sorted(path.glob("*.names")), *sorted((path / "images").glob("*.names")), path / "classes.txt"]:
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    raise DatasetFormatError(f"{path}: no class names file (*.names or classes.txt)")


def _yolo_split_dir(path: Path, split: str | None) -> list[Path]:
    folders = _subdirs(path / "images")
    if not folders:
        return [path / "images"]
    if split is None:
        return folders
    chosen = [f for f in folders if f.name == split or f.name.startswith(f"{split}_") or f.name.split("_")[0] == split]
    if not chosen:
        raise DatasetFormatError(f"{path}: no image folder for split {split!r} (have {[f.name for f in folders]})")
    return chosen


def load_yolo(path: Path, split: str | None = None) -> DatasetIndex:
    names = _yolo_names(path)
    samples, dropped = [], 0
    for folder in _yolo_split_dir(path, split):
        label_dir = path / "labels" / folder.relative_to(path / "images")
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            rows = _read_yolo_rows(label_dir / f"{image.stem}.txt", len(names))
            size = _image_size(image)
            h, w = size
            cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
            xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
            boxes, labels, bad = clean_boxes(xyxy, rows[:, 0].astype(np.int64) + 1, size)
            dropped += bad
            samples.append(Sample(image, boxes, labels, size=size))
    return DatasetIndex(samples, names, dropped)


def _read_yolo_rows(file: Path, num_classes: int) -> np.ndarray:
    if not file.is_file():
        return np.zeros((0, 5), dtype=np.float64)  # an image without a label file has no objects
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError(f"expected 5 values (class cx cy w h), got {len(parts)}")
            values = [float(v) for v in parts]
            if values[0] != int(values[0]) or not 0 <= values[0] < num_classes:
                raise ValueError(f"class {parts[0]} is not an index below {num_classes}")
        except ValueError as exc:
            raise DatasetFormatError(f"{file}:{number}: malformed YOLO label: {exc}") from None
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


# ---------------------------------------------------------------- MOTChallenge


def _mot_sequences(path: Path, split: str | None) -> list[Path]:
    if (path / "gt" / "gt.txt").is_file():
        return [path]
    base = path / split if split and (path / split).is_dir() else path
    sequences = [p for p in _subdirs(base) if (p / "gt" / "gt.txt").is_file()]
    if not sequences:
        raise DatasetFormatError(f"{path}: no MOT sequence (a folder with gt/gt.txt)")
    return sequences


def load_mot(path: Path, split: str | None = None) -> DatasetIndex:
    samples, dropped = [], 0
    for sequence in _mot_sequences(path, split):
        seq_samples, bad = _load_mot_sequence(sequence)
        samples += seq_samples
        dropped += bad
    return DatasetIndex(samples, ["pedestrian"], dropped)


def _mot_info(sequence: Path) -> tuple[Path, str, tuple[int, int] | None]:
    ini = sequence / "seqinfo.ini"
    if ini.is_file():
        parser = configparser.ConfigParser()
        parser.read(ini)
        seq = parser["Sequence"]
        size = (int(seq["imHeight"]), int(seq["imWidth"])) if "imHeight" in seq else None
        return sequence / seq.get("imDir", "img1"), seq.get("imExt", ".jpg"), size
    for name in ("img1", "img"):
        if (sequence / name).is_dir():
            return sequence / name, ".jpg", None
    raise DatasetFormatError(f"{sequence}: no image folder (img1/ or img/) and no seqinfo.ini")


def _mot_frame_images(img_dir: Path, ext: str) -> dict[int, Path]:
    frames = {}
    for image in img_dir.glob(f"*{ext}"):
        match = re.search(r"(\d+)$", image.stem)
        if match:
            frames[int(match.group(1))] = image
    return frames


def _read_mot_rows(file: Path) -> np.ndarray:
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.replace(" ", "").split(",")
        try:
            if len(parts) < 7:
                raise ValueError(f"expected at least 7 comma-separated values, got {len(parts)}")
            values = [float(v) for v in parts[:9]] + [0.0] * max(0, 9 - len(parts))
        except ValueError as exc:
            raise DatasetFormatError(f"{file}:{number}: malformed MOT row: {exc}") from None
        rows.append([*values, len(parts)])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 10)


def _load_mot_sequence(sequence: Path) -> tuple[list[Sample], int]:
    img_dir, ext, size = _mot_info(sequence)
    images = _mot_frame_images(img_dir, ext)
    rows = _read_mot_rows(sequence / "gt" / "gt.txt")
    keep = rows[:, 6] != 0  # conf/flag 0 = ignore
    nine_columns = rows[:, 9] == 9  # MOT16/17: the 8th column is the class
    keep &= ~nine_columns | (rows[:, 7] == 1)
    rows = rows[keep]
    samples, dropped = [], 0
    for frame in sorted(images):
        r = rows[rows[:, 0] == frame]
        xyxy = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
        frame_size = size or _image_size(images[frame])
        size = frame_size  # one size per sequence
        boxes, labels, bad = clean_boxes(xyxy, np.ones(len(r), dtype=np.int64), frame_size)
        dropped += bad
        samples.append(Sample(images[frame], boxes, labels, group=sequence.name, size=frame_size))
    return samples, dropped


# ---------------------------------------------------------------- combining and splitting


def merge_datasets(indexes: Sequence[DatasetIndex]) -> DatasetIndex:
    """One index over several; class names are united (sorted) and labels remapped by name."""
    if not indexes:
        raise ValueError("no datasets to merge")
    if all(ix.class_names == indexes[0].class_names for ix in indexes):
        names = list(indexes[0].class_names)
    else:
        names = sorted({n for ix in indexes for n in ix.class_names})
    samples: list[Sample] = []
    for ix in indexes:
        remap = np.array([0] + [names.index(n) + 1 for n in ix.class_names], dtype=np.int64)
        samples += [replace(s, labels=remap[s.labels]) for s in ix.samples]
    return DatasetIndex(
        samples, names, sum(ix.dropped for ix in indexes), [src for ix in indexes for src in ix.sources]
    )


def rename_classes(index: DatasetIndex, mapping: dict[str, str]) -> DatasetIndex:
    """Rename classes (e.g. {'person': 'pedestrian'}) so datasets with different names merge."""
    names = [mapping.get(n, n) for n in index.class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"renaming {mapping} merges classes {names}; not supported")
    return DatasetIndex(index.samples, names, index.dropped, index.sources)


def split_dataset(index: DatasetIndex, val_fraction: float, seed: int = 0) -> tuple[DatasetIndex, DatasetIndex]:
    """A seeded train/val split. Frames of a sequence (same ``group``) are correlated, so each
    sequence gives its last ``val_fraction`` of frames to val (a contiguous block, no leakage);
    ungrouped samples are split at random with ``seed``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train, val = [], []
    for group, members in _groups(index.samples):
        if group:
            cut = len(members) - round(len(members) * val_fraction)
            train += members[:cut]
            val += members[cut:]
        else:
            order = list(members)
            random.Random(seed).shuffle(order)
            n_val = round(len(order) * val_fraction)
            val += order[:n_val]
            train += order[n_val:]
    make = lambda s: DatasetIndex(s, list(index.class_names), 0, list(index.sources))  # noqa: E731
    return make(train), make(val)


def _groups(samples: Iterable[Sample]) -> list[tuple[str, list[Sample]]]:
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    return list(groups.items())


# ---------------------------------------------------------------- torch dataset


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class DetectionDataset:
    """A map-style dataset of (image tensor, target dict) through ``transforms`` (a v2 pipeline
    taking (image, target) — see surveil.training.transforms)."""

    def __init__(self, samples: Sequence[Sample], transforms: Callable[..., Any]) -> None:
        self.samples = list(samples)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[object, dict[str, object]]:
        import torch

        sample = self.samples[i]
        rgb = read_rgb(sample.image_path)
        image = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        target = make_target(sample.boxes, sample.labels, (rgb.shape[0], rgb.shape[1]))
        return self.transforms(image, target)


def make_target(boxes: np.ndarray, labels: np.ndarray, canvas_size: tuple[int, int]) -> dict[str, Any]:
    """A sample's boxes and labels as the target dict the v2 transforms move with the image."""
    import torch
    from torchvision import tv_tensors

    return {
        "boxes": tv_tensors.BoundingBoxes(
            torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas_size
        ),
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
        "num_dropped": 0,
    }
