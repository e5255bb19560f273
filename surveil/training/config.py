"""The ``surveil train`` options: one typed model, resolved from defaults < the ``-c`` YAML file < flags.

Every option is documented once, here, in its field description (which is also its ``--help``
text) with a realistic range. Each is a ``--flag`` (``_`` written ``-``) and a key of the YAML
file. The resolved :class:`TrainConfig` is what the training code reads; its plain-dict form
(:meth:`TrainConfig.as_dict`) is stored in checkpoints and hashed into the deployable one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from surveil.datasets import FORMATS

# An option that takes a real number keeps an int as written (``clip_grad_norm: 0`` stays 0), so the
# config stored in checkpoints, and its hash, are the ones written before the options were typed.
Real = int | float


class TrainingError(Exception):
    """Training cannot go on; the message says why and what to try."""


class TrainConfig(BaseModel):
    """Every ``surveil train`` option, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # data
    train_data: list[str] = Field(
        default_factory=list,
        description="training dataset, repeatable: [FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...], e.g. yolo:data/PennFudanPed@train or mot:seq*2",
    )
    val_data: list[str] = Field(
        default_factory=list,
        description="validation dataset(s), same form; none = a seeded --val-fraction of the training data",
    )
    test_data: list[str] = Field(
        default_factory=list, description="test dataset(s), scored once at the end with the best weights"
    )
    val_fraction: Real = Field(
        default=0.15,
        ge=0,
        lt=1,
        description="share of the training data held out for validation when no --val-data (a sequence gives its last frames)",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed for the split, augmentation and sampling")
    # model
    architecture: str = Field(
        default="fasterrcnn_mobilenet_v2_fpn",
        description="fasterrcnn_mobilenet_v2_fpn, fasterrcnn_mobilenet_v2_fpn_s8 (adds a stride-8 level: 480x360 video at "
        "its native size), fasterrcnn_resnet50_fpn or fasterrcnn_mobilenet_v3_large_fpn",
    )
    backbone_weights: str = Field(
        default="imagenet",
        description="imagenet, coco (whole detector, torchvision architectures), none, or a MobileNetV2 state-dict file",
    )
    trainable_stages: int = Field(
        default=1, ge=0, le=5, description="backbone stages left trainable, from the top (0 = backbone frozen)"
    )
    freeze_bn: bool = Field(
        default=True, description="BatchNorm with frozen statistics and affine parameters (MobileNetV2)"
    )
    anchor_sizes: list[list[int]] = Field(
        default_factory=lambda: [[32, 64, 128], [192, 320, 512]],
        min_length=1,
        max_length=8,
        description="anchor sizes per feature level (MobileNetV2): JSON list of lists",
    )
    aspect_ratios: list[Real] = Field(
        default_factory=lambda: [1.5, 2.5, 3.5],
        min_length=1,
        max_length=16,
        description="anchor aspect ratios height/width (MobileNetV2): JSON list",
    )
    neck_channels: int | None = Field(
        default=None,
        ge=8,
        le=1024,
        description="MobileNetV2 architectures: FPN channels, e.g. 64-128 (none = the architecture's default: 128, s8 96)",
    )
    box_head_size: int | None = Field(
        default=None,
        ge=8,
        le=4096,
        description="MobileNetV2 architectures: width of the RoI head's two layers, e.g. 128-1024 (none = 256)",
    )
    min_size: int = Field(
        default=720,
        ge=32,
        le=4096,
        description="shorter side of the network input at validation, test and deployment",
    )
    max_size: int = Field(default=1280, ge=32, le=8192, description="cap on the longer side of the network input")
    train_sizes: list[Annotated[int, Field(ge=32, le=4096)]] = Field(
        default_factory=lambda: [480, 608, 736, 864],
        min_length=1,
        max_length=64,
        description="shorter sides for scale jitter during training: JSON list",
    )
    rpn_post_nms_top_n_train: int = Field(
        default=1000, ge=1, le=10_000, description="RPN proposals kept per image in training"
    )
    rpn_post_nms_top_n_test: int = Field(
        default=300,
        ge=1,
        le=10_000,
        description="RPN proposals kept per image at inference (the main CPU cost lever)",
    )
    box_batch_size_per_image: int = Field(
        default=256, ge=1, le=4096, description="RoIs sampled per image for the box head's loss"
    )
    box_detections_per_img: int = Field(default=100, ge=1, le=1000, description="most detections per image")
    # optimisation
    epochs: int = Field(default=16, ge=1, le=10_000, description="training epochs")
    batch_size: int = Field(default=4, ge=1, le=1024, description="images per step and process")
    optimizer: Literal["sgd", "adamw"] = Field(default="sgd", description="sgd or adamw")
    lr: Real = Field(
        default=0.02,
        gt=0,
        le=10,
        description="peak learning rate (scaled by nothing: give the one for your total batch)",
    )
    momentum: Real = Field(default=0.9, ge=0, le=1, description="SGD momentum")
    weight_decay: Real = Field(default=1e-4, ge=0, le=1, description="weight decay")
    warmup_iters: int = Field(default=100, ge=0, le=1_000_000, description="steps of linear warm-up from lr/1000")
    lr_schedule: Literal["cosine", "step"] = Field(default="cosine", description="cosine or step")
    lr_steps: list[int] = Field(
        default_factory=list,
        max_length=100,
        description="epochs at which the step schedule multiplies the lr by --lr-gamma: JSON list",
    )
    lr_gamma: Real = Field(default=0.1, gt=0, le=1, description="step schedule factor")
    clip_grad_norm: Real = Field(
        default=10.0, ge=0, le=1_000_000, description="clip the gradient norm to this (0 = off)"
    )
    amp: bool = Field(default=True, description="mixed precision on CUDA (ignored on CPU)")
    patience: int = Field(
        default=5,
        ge=0,
        le=10_000,
        description="stop after this many epochs without a better validation metric (0 = never)",
    )
    early_stop_metric: Literal["map", "ap50"] = Field(default="map", description="map (COCO mAP@[.5:.95]) or ap50")
    # feature cache and augmentation
    cache: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto, on or off: cache the frozen stem's features (MobileNetV2, trainable_stages <= 1)",
    )
    cache_dir: str | None = Field(
        default=None, description="keep the feature cache on disk here and reuse it across runs"
    )
    cache_photometric: Real = Field(default=0.3, ge=0, le=1, description="share of cached views with a colour jitter")
    crop_cells: int = Field(
        default=0,
        ge=0,
        le=4096,
        description="random crop of cached features to at most this many 16-px cells per side (0 = off)",
    )
    hflip: bool = Field(default=True, description="horizontal flip augmentation")
    # output and run
    output_dir: str = Field(
        default="runs/train", description="run folder: checkpoint.pt (full state), log.csv, model.pt"
    )
    output: str | None = Field(default=None, description="deployable checkpoint path (default: OUTPUT_DIR/model.pt)")
    resume: str | None = Field(
        default=None, description="full-state checkpoint to continue from (e.g. runs/train/checkpoint.pt)"
    )
    keep_checkpoints: bool = Field(
        default=False, description="also keep each epoch's full state as checkpoint-epochN.pt"
    )
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    workers: int = Field(default=0, ge=0, le=256, description="data-loading worker processes (uncached path)")
    threads: int | None = Field(default=None, ge=1, le=1024, description="torch CPU threads per process")
    log_every: int = Field(default=20, ge=1, le=1_000_000, description="log a progress line every N steps")
    max_steps: int | None = Field(
        default=None, ge=0, le=1_000_000_000, description="stop each epoch after this many steps (smoke tests)"
    )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrainConfig:
        """Validate a mapping of options (unknown, missing or out-of-range ones raise TrainingError)."""
        check_options(options)
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            raise TrainingError(_describe(exc)) from None

    def as_dict(self) -> dict[str, Any]:
        """The options as plain data (what checkpoints store; loads with weights_only=True)."""
        return self.model_dump()

    def sha256(self) -> str:
        """Hash of the options that change the trained model (not where it runs or writes).

        Datasets and weights are named by their last path components, not their absolute paths, so
        that the same config hashes alike in every checkout and on every machine.
        """
        relevant = {
            k: v for k, v in self.as_dict().items() if k not in HASH_EXCLUDED and not (k in HASH_IF_SET and v is None)
        }
        for key in DATA_KEYS:
            if relevant.get(key):
                relevant[key] = [_location_free_spec(spec) for spec in relevant[key]]
        if relevant.get("backbone_weights"):
            relevant["backbone_weights"] = _location_free_path(str(relevant["backbone_weights"]))
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


# Every option's default and help text, in the order of the model (``surveil train --help``).
DEFAULTS: dict[str, Any] = {
    name: info.get_default(call_default_factory=True) for name, info in TrainConfig.model_fields.items()
}
HELP: dict[str, str] = {name: info.description or "" for name, info in TrainConfig.model_fields.items()}

PATH_KEYS = ("cache_dir", "output_dir", "output", "resume")
DATA_KEYS = ("train_data", "val_data", "test_data")
# Options added after models were shipped: left out of the hash while unset, so that the configs of
# shipped checkpoints keep their hash.
HASH_IF_SET = ("neck_channels", "box_head_size")
JSON_KEYS = ("anchor_sizes", "aspect_ratios", "train_sizes", "lr_steps")
HASH_EXCLUDED = (
    "resume",
    "keep_checkpoints",
    "output",
    "output_dir",
    "cache_dir",
    "device",
    "workers",
    "threads",
    "log_every",
)
_CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "lr_schedule": ("cosine", "step"),
    "cache": ("auto", "on", "off"),
    "early_stop_metric": ("map", "ap50"),
}


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "options"
        problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "invalid training option(s): " + "; ".join(problems)


# ---------------------------------------------------------------- command line and YAML


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``surveil train`` options (each is also a key of the ``-c`` YAML file, with '_')."""
    parser.add_argument("-c", "--config", type=Path, help="YAML file of options (keys as below, with '_')")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        helptext = f"{HELP[key]} (default: {default})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif key in DATA_KEYS:
            parser.add_argument(flag, action="append", default=None, metavar="SPEC", help=helptext)
        elif key in JSON_KEYS:
            parser.add_argument(flag, type=json.loads, default=None, metavar="JSON", help=helptext)
        elif key in ("threads", "max_steps", "neck_channels", "box_head_size"):
            parser.add_argument(flag, type=int, default=None, help=helptext)
        elif isinstance(default, (int, float)):
            parser.add_argument(flag, type=type(default), default=None, help=helptext)
        else:
            parser.add_argument(flag, default=None, help=helptext)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < the ``-c`` file < explicit flags (argparse defaults are None, so a value from the
    file can be told apart from one given on the command line)."""
    options = dict(DEFAULTS)
    if getattr(args, "config", None):
        options.update(read_yaml(Path(args.config)))
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    return TrainConfig.from_options(options)


def read_yaml(path: Path) -> dict[str, Any]:
    """The options of a YAML file, relative paths made absolute against its folder."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"{path}: cannot read training config: {exc}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: a training config is a YAML mapping of options")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"{path}: unknown option(s) {', '.join(unknown)}; see `surveil train --help`")
    base = path.resolve().parent
    for key in PATH_KEYS:
        if data.get(key):
            data[key] = str(_relative_to(base, data[key]))
    if data.get("backbone_weights") and str(data["backbone_weights"]) not in ("imagenet", "coco", "none"):
        data["backbone_weights"] = str(_relative_to(base, data["backbone_weights"]))
    for key in DATA_KEYS:
        if key in data:
            data[key] = [_resolve_spec(base, s) for s in _as_list(data[key])]
    return data


def check_options(options: Mapping[str, Any]) -> None:
    """The checks whose messages ``surveil train`` has always given, before the typed validation."""
    for key, allowed in _CHOICES.items():
        if options[key] not in allowed:
            raise TrainingError(f"{key} must be one of {', '.join(allowed)}, got {options[key]!r}")
    if not options["train_data"]:
        raise TrainingError("no training data: give --train-data (or train_data: in the -c file)")
    for key in ("epochs", "batch_size"):
        if int(options[key]) < 1:
            raise TrainingError(f"{key} must be >= 1, got {options[key]}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _relative_to(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (base / p).resolve()


def _location_free_path(value: str) -> str:
    """A dataset folder or weights file named by its parent and its own name (``MOT15/TUD-Campus``)."""
    return "/".join(Path(value).parts[-2:]) if Path(value).is_absolute() else value


def _location_free_spec(spec: Any) -> str:
    parsed = parse_data_spec(spec)
    parsed["path"] = _location_free_path(parsed["path"])
    return format_data_spec(parsed)


def _resolve_spec(base: Path, spec: Any) -> str:
    parsed = parse_data_spec(spec)
    parsed["path"] = str(_relative_to(base, parsed["path"]))
    return format_data_spec(parsed)


# ---------------------------------------------------------------- dataset specs

_SPEC = re.compile(
    rf"^(?:(?P<format>{'|'.join(FORMATS)}|auto):)?(?P<path>.+?)(?:@(?P<split>[^@*%]+))?(?:\*(?P<repeat>\d+))?(?:%(?P<sizes>[\d,]+))?$"
)


def parse_data_spec(spec: Any) -> dict[str, Any]:
    """``[FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...]`` or a mapping {path, format, split, repeat}."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"path", "format", "split", "repeat", "sizes"}
        if unknown or "path" not in spec:
            raise TrainingError(f"dataset entry {spec}: needs `path`, may have format, split, repeat, sizes")
        sizes = [int(v) for v in spec["sizes"]] if spec.get("sizes") else None
        return {
            "path": str(spec["path"]),
            "format": spec.get("format", "auto"),
            "split": spec.get("split"),
            "repeat": int(spec.get("repeat", 1)),
            "sizes": sizes,
        }
    match = _SPEC.match(str(spec))
    if not match:
        raise TrainingError(
            f"cannot read dataset spec {spec!r}; expected [FORMAT:]PATH[@SPLIT][*REPEAT][%SIZE,SIZE...]"
        )
    sizes = [int(v) for v in match["sizes"].split(",")] if match["sizes"] else None
    return {
        "path": match["path"],
        "format": match["format"] or "auto",
        "split": match["split"],
        "repeat": int(match["repeat"] or 1),
        "sizes": sizes,
    }


def format_data_spec(parsed: dict[str, Any]) -> str:
    out = f"{parsed['format']}:{parsed['path']}"
    if parsed.get("split"):
        out += f"@{parsed['split']}"
    if parsed.get("repeat", 1) != 1:
        out += f"*{parsed['repeat']}"
    if parsed.get("sizes"):
        out += "%" + ",".join(str(v) for v in parsed["sizes"])
    return out
