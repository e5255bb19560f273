"""Batched object detection with a torchvision Faster R-CNN.

``Detector`` is the interface the pipeline depends on: a list of BGR frames in, one
``Detections`` per frame out, in each frame's own pixel coordinates. ``TorchDetector`` is the
real implementation; tests may put a scripted detector behind the same interface.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.config import DetectorConfig
from surveil.detection.checkpoints import ModelLoadError, load_checkpoint_model, load_coco_model
from surveil.types import Detections

log = logging.getLogger(__name__)


class Detector(Protocol):
    """Frames in, one ``Detections`` per frame out, down to a low score floor.

    ``operating_thresholds`` (optional attribute, per class id) says which detections are
    confident enough for rules; detectors without it count every detection as confident.
    """

    class_names: list[str]  # index = class id; 0 = background

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


def select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"detector.device is {spec!r} but CUDA is not available on this machine (use `auto` or `cpu`)"
        )
    return torch.device(spec)


def resolve_thresholds(
    config: DetectorConfig, class_names: Sequence[str], checkpoint_thresholds: dict[str, float]
) -> np.ndarray:
    """Per-class score thresholds: config per-class > config default (when set) > checkpoint operating point > default."""
    unknown = sorted(set(config.class_score_thresholds) - set(class_names))
    if unknown:
        raise ModelLoadError(f"detector.class_score_thresholds names classes the model does not know: {unknown}")
    explicit_default = "score_threshold" in config.model_fields_set
    thresholds = np.full(len(class_names), config.score_threshold, np.float32)
    for index, name in enumerate(class_names):
        if name in config.class_score_thresholds:
            thresholds[index] = config.class_score_thresholds[name]
        elif not explicit_default and name in checkpoint_thresholds:
            thresholds[index] = checkpoint_thresholds[name]
    return thresholds


def keep_mask(config: DetectorConfig, class_names: Sequence[str]) -> np.ndarray:
    """Which class ids to keep (background never)."""
    keep = np.ones(len(class_names), bool)
    keep[0] = False
    if config.classes:
        unknown = sorted(set(config.classes) - set(class_names))
        if unknown:
            raise ModelLoadError(
                f"detector.classes names classes the model does not know: {unknown}; it knows {[n for n in class_names[1:] if n != 'N/A']}"
            )
        keep = np.array([name in config.classes for name in class_names])
    return keep


def frames_to_tensors(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """BGR uint8 HWC frames -> RGB float CHW tensors in [0, 1] on ``device`` (every backend's preprocessing).

    Frames of one size (the usual case for a camera fleet) are stacked once and moved in
    one (pinned, asynchronous) copy; the conversion to float happens on the device.
    """
    if len({image.shape for image in images}) == 1:
        batch = [torch.from_numpy(np.stack(images))]
    else:
        batch = [torch.from_numpy(np.ascontiguousarray(image))[None] for image in images]
    tensors = []
    for chunk in batch:
        if device.type == "cuda":
            chunk = chunk.pin_memory().to(device, non_blocking=True)
        tensors.extend(chunk.flip(-1).permute(0, 3, 1, 2).float().div_(255.0).unbind(0))
    return tensors


class HostStaging:
    """Reused host buffers that frames are stacked into before their copy to the device.

    One buffer per frame shape (the few most recent shapes), grown only when a batch of that shape
    is larger than any before. On CUDA the buffers are pinned and the copy is asynchronous: pinning
    afresh for every batch costs more than the copy itself. An event recorded after each copy keeps
    the next batch from overwriting a buffer the device may still be reading.
    """

    MAX_SHAPES = 4  # a fleet has a handful of frame sizes; an unbounded cache would grow with every odd one

    def __init__(self, device: torch.device):
        self.device = device
        self._pin = device.type == "cuda"
        self._buffers: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._copied: dict[tuple[int, ...], torch.cuda.Event] = {}
        self._lock = threading.Lock()

    def upload(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of one shape (H, W, C) -> one uint8 (N, H, W, C) tensor on the device."""
        shape = tuple(frames[0].shape)
        with self._lock:
            pending = self._copied.pop(shape, None)
            if pending is not None:
                pending.synchronize()
            staged = self.buffer(shape, len(frames))
            np.stack(frames, out=staged.numpy())
            if not self._pin:
                return staged
            on_device = staged.to(self.device, non_blocking=True)
            self._copied[shape] = torch.cuda.Event()
            self._copied[shape].record()
            return on_device

    def buffer(self, shape: tuple[int, ...], count: int) -> torch.Tensor:
        """The first ``count`` rows of the buffer for frames of ``shape`` (allocated or grown as needed).

        A buffer dropped here while a copy still reads it is safe: torch's pinned allocator does not
        hand its memory out again before that copy has finished.
        """
        buffer = self._buffers.pop(shape, None)
        if buffer is None or buffer.shape[0] < count:
            buffer = torch.empty((count, *shape), dtype=torch.uint8, pin_memory=self._pin)
        self._buffers[shape] = buffer
        while len(self._buffers) > self.MAX_SHAPES:
            evicted, _ = self._buffers.popitem(last=False)
            self._copied.pop(evicted, None)
        return buffer[:count]


@dataclass(frozen=True, eq=False)
class DevicePreprocess:
    """torchvision's ``GeneralizedRCNNTransform`` at inference, as batched ops on frames of one size.

    BGR uint8 (N, H, W, 3) on the device -> normalised RGB (N, 3, h, w) resized the way
    ``_resize_image_and_masks`` resizes one image: the same scale factor, bilinear,
    ``recompute_scale_factor``, so each frame of the batch gets the values it would get alone.
    """

    min_size: int
    max_size: int
    fixed_size: tuple[int, int] | None
    scale: torch.Tensor  # (1, 3, 1, 1): 1 / (255 std), so uint8 -> [0, 1] -> normalised is one multiply-add
    shift: torch.Tensor  # (1, 3, 1, 1): -mean / std
    memory_format: torch.memory_format  # of the network input

    @classmethod
    def of(
        cls, transform: torch.nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool
    ) -> DevicePreprocess:
        mean = torch.as_tensor(transform.image_mean, dtype=torch.float64).reshape(1, 3, 1, 1)
        std = torch.as_tensor(transform.image_std, dtype=torch.float64).reshape(1, 3, 1, 1)
        return cls(
            transform.min_size[-1],
            transform.max_size,
            transform.fixed_size,
            (1.0 / (255.0 * std)).to(device, dtype),
            (-mean / std).to(device, dtype),
            torch.channels_last if channels_last else torch.contiguous_format,
        )

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        rgb = frames.permute(0, 3, 1, 2).flip(1)  # an NHWC view: what follows keeps that layout
        normalised = torch.addcmul(self.shift, rgb, self.scale)
        resized = F.interpolate(normalised, mode="bilinear", align_corners=False, **self.resize(*frames.shape[1:3]))
        return resized.contiguous(memory_format=self.memory_format)

    def resize(self, height: int, width: int) -> dict:
        if self.fixed_size is not None:
            return {"size": [self.fixed_size[1], self.fixed_size[0]]}
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return {"scale_factor": scale, "recompute_scale_factor": True}


def group_by_shape(images: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of the frames of each shape, shapes in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(index)
    return list(groups.values())


def pad_batch(groups: Sequence[torch.Tensor], order: Sequence[int], size_divisible: int) -> torch.Tensor:
    """``GeneralizedRCNNTransform.batch_images``: zero-pad every image bottom/right to one size, a
    multiple of ``size_divisible``; ``order`` says which input image each row of ``groups`` holds."""
    height = math.ceil(max(g.shape[-2] for g in groups) / size_divisible) * size_divisible
    width = math.ceil(max(g.shape[-1] for g in groups) / size_divisible) * size_divisible
    padded = [F.pad(g, (0, width - g.shape[-1], 0, height - g.shape[-2])) for g in groups]
    batch = padded[0] if len(padded) == 1 else torch.cat(padded)
    if list(order) == sorted(order):
        return batch
    return batch.index_select(0, torch.argsort(torch.as_tensor(order, device=batch.device)))


class DetectionFilter:
    """Every backend's post-processing: class filter, score floor, per-class operating thresholds.

    ``operating_thresholds`` (per class id) is what rules count as confident; ``thresholds`` (the
    lower of that and ``low_score_floor``) is what reaches the tracker.
    """

    def __init__(self, config: DetectorConfig, class_names: list[str], checkpoint_thresholds: dict[str, float]):
        self.class_names = class_names
        self.operating_thresholds = resolve_thresholds(config, class_names, checkpoint_thresholds)
        self.thresholds = np.minimum(self.operating_thresholds, config.low_score_floor)
        self.keep = keep_mask(config, class_names)

    def __call__(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Detections:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        labels_in_range = np.clip(labels, 0, len(self.thresholds) - 1)
        mask = (
            self.keep[labels_in_range] & (scores >= self.thresholds[labels_in_range]) & (labels < len(self.thresholds))
        )
        return Detections.from_arrays(boxes[mask], scores[mask], labels[mask])


def fold_batchnorm(model: torch.nn.Module) -> int:
    """Fold every (Frozen)BatchNorm2d that directly follows a Conv2d in a Sequential into the conv.

    Exact up to float rounding (inference only: BatchNorm in eval mode); the folded norm becomes
    an Identity. Returns how many were folded. On the shipped model this removes the elementwise
    ``x * scale + bias`` that is 30 % of its CPU time (docs/benchmarks.md).
    """
    folded = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (norm_name, norm) in itertools.pairwise(children):
            if (
                isinstance(conv, torch.nn.Conv2d)
                and _is_inference_norm(norm)
                and norm.weight.shape[0] == conv.out_channels
            ):
                _fold_into(conv, norm)
                setattr(module, norm_name, torch.nn.Identity())
                folded += 1
    return folded


def _is_inference_norm(norm: torch.nn.Module) -> bool:
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, torch.nn.BatchNorm2d) and not norm.training and norm.running_var is not None


def _fold_into(conv: torch.nn.Conv2d, norm: torch.nn.Module) -> None:
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        else:
            conv.bias.mul_(scale).add_(bias)


class TorchDetector:
    """The model in PyTorch. ``optimize`` (default): BatchNorm folded into the convolutions, and
    channels_last memory on the CPU — the same boxes within float rounding (tests/test_detector_backends.py);
    ``optimize=False`` is the model as trained (eager), the reference the other backends are tested against.

    ``batched`` (default: as ``optimize``): preprocess each batch on the device in batched ops
    (:class:`HostStaging`, :class:`DevicePreprocess`) and run the model's parts directly, instead of
    ``model(list_of_images)`` whose transform resizes and normalises image by image in Python.
    """

    def __init__(
        self,
        config: DetectorConfig,
        optimize: bool = True,
        batched: bool | None = None,
        channels_last: bool | None = None,
    ):
        self.config = config
        self.device = select_device(config.device)
        # The model's layout: channels_last pays on the CPU (oneDNN's native layout). The batched path's
        # input is channels_last everywhere (the NHWC frames' natural view, no copy): on an H200 no layout
        # ran the shipped model clearly faster (bench/gpu_profile.py, docs/benchmarks.md).
        self.channels_last = optimize and (self.device.type == "cpu" if channels_last is None else channels_last)
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            self.model, self.class_names, checkpoint_thresholds = self._load(config)
            self.model.eval().to(self.device)
            if optimize:
                self._optimize()
        except ModelLoadError:
            raise
        except (
            RuntimeError,
            OSError,
            ValueError,
            EOFError,
        ) as exc:  # e.g. a damaged file in the torch hub cache, a missing GPU
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ModelLoadError(
                f"detector weights {config.weights} cannot be loaded on {self.device} ({type(exc).__name__}: {first})"
            ) from None
        self.filter = DetectionFilter(config, self.class_names, checkpoint_thresholds)
        self.operating_thresholds = self.filter.operating_thresholds
        self._autocast = self.device.type == "cuda" and config.half
        self.batched = (optimize if batched is None else batched) and isinstance(self.model, GeneralizedRCNN)
        self.warm_up_on_cuda = True  # see :meth:`warm_up`
        self._warmed: set[tuple[int, tuple[int, ...]]] = set()  # (thread, frame shape) already warmed up
        if self.batched:
            self._staging = HostStaging(self.device)
            self._preprocess = DevicePreprocess.of(
                self.model.transform,
                self.device,
                torch.float16 if self._autocast else torch.float32,
                channels_last=True,
            )
        log.info("detector ready: %s on %s, %d classes", config.weights, self.device, len(self.class_names) - 1)

    def _optimize(self) -> None:
        folded = fold_batchnorm(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        log.debug("detector: %d BatchNorm layers folded%s", folded, ", channels_last" if self.channels_last else "")

    @staticmethod
    def _load(config: DetectorConfig) -> tuple[torch.nn.Module, list[str], dict[str, float]]:
        sizes = {"min_size": config.min_size, "max_size": config.max_size}
        if config.weights == "coco":
            model, labels = load_coco_model(config.architecture, **{k: v for k, v in sizes.items() if v is not None})
            return model, labels, {}
        model, checkpoint = load_checkpoint_model(config.weights, **sizes)
        return model, list(checkpoint["labels"]), dict(checkpoint.get("score_thresholds", {}))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        if self.device.type == "cuda" and self.warm_up_on_cuda:
            self._warm_up_new_shapes(images)
        with torch.inference_mode():
            outputs = self._run_batched(images) if self.batched else self._run_per_image(images)
        return [self._to_detections(output) for output in outputs]

    WARM_UP_BUDGET_S = (
        30.0  # well inside the default watchdog_stall_s (60 s): a warm-up must not look like a hung detector
    )

    def warm_up(self, frame_shape: tuple[int, ...], max_batch: int | None = None) -> None:
        """One pass at every batch size up to ``max_batch`` (default: ``batch_size``) on frames of ``frame_shape``.

        On CUDA the first pass at each new input shape selects (and may compile) convolution kernels:
        about 1 s per batch size on an H200 (bench/gpu_profile.py). A pipeline whose batches vary in
        size would otherwise meet these stalls mid-stream, one camera's frames late each time. So
        ``detect`` on CUDA calls this itself the first time a thread hands it frames of a new size
        (``warm_up_on_cuda``): the handles those kernels are chosen under are per thread. It stops after
        ``WARM_UP_BUDGET_S``, so a large ``batch_size`` cannot hold the first frames past the watchdog.
        """
        largest = max_batch or self.config.batch_size
        frame = np.zeros(frame_shape, np.uint8)
        deadline = time.monotonic() + self.WARM_UP_BUDGET_S
        for size in [largest, *range(1, largest)]:  # full batches first: the size a loaded pipeline runs most
            if time.monotonic() > deadline:
                log.info(
                    "detector warm-up stopped after %.0f s at batch size %d: the sizes left warm up on first use",
                    self.WARM_UP_BUDGET_S,
                    size,
                )
                return
            self.detect([frame] * size)

    def _warm_up_new_shapes(self, images: Sequence[np.ndarray]) -> None:
        thread = threading.get_ident()
        for shape in {tuple(image.shape) for image in images}:
            if (thread, shape) in self._warmed:
                continue
            if len(self._warmed) >= 256:  # threads come and go (reloads): forget old ones rather than grow
                self._warmed.clear()
            self._warmed.add((thread, shape))
            started = time.monotonic()
            self.warm_up(shape)
            log.info(
                "detector warm-up for %dx%d frames (CUDA kernel selection per batch size) took %.1f s",
                shape[1],
                shape[0],
                time.monotonic() - started,
            )

    def _autocast_context(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self._autocast else contextlib.nullcontext()

    def _run_per_image(self, images: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        with self._autocast_context():
            return self.model(frames_to_tensors(images, self.device))

    def _run_batched(self, images: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """``GeneralizedRCNN.forward`` at inference, its transform replaced by :meth:`_batch`."""
        batch = self._batch(images)
        with self._autocast_context():
            features = self.model.backbone(batch.tensors)
            if isinstance(features, torch.Tensor):
                features = OrderedDict([("0", features)])
            proposals, _ = self.model.rpn(batch, features)
            detections, _ = self.model.roi_heads(features, proposals, batch.image_sizes)
        return self.model.transform.postprocess(detections, batch.image_sizes, [image.shape[:2] for image in images])

    def _batch(self, images: Sequence[np.ndarray]) -> ImageList:
        """Frames -> the padded network input: one upload and one batched preprocessing per frame size."""
        groups = group_by_shape(images)
        resized = [self._preprocess(self._staging.upload([images[i] for i in group])) for group in groups]
        image_sizes: list[tuple[int, int]] = [(0, 0)] * len(images)
        for tensor, group in zip(resized, groups):
            for index in group:
                image_sizes[index] = (tensor.shape[-2], tensor.shape[-1])
        order = [index for group in groups for index in group]
        return ImageList(pad_batch(resized, order, self.model.transform.size_divisible), image_sizes)

    def _to_detections(self, output: dict[str, torch.Tensor]) -> Detections:
        return self.filter(
            output["boxes"].float().cpu().numpy(),
            output["scores"].float().cpu().numpy(),
            output["labels"].cpu().numpy(),
        )
