"""Batched object detection with a torchvision Faster R-CNN in PyTorch (the GPU path).

:class:`TorchDetector` implements :class:`surveil.detection.protocol.Detector`; its batched
preprocessing is in :mod:`surveil.detection.preprocessing`. ``Detector``, ``DevicePreprocess`` and
``frames_to_tensors`` are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# torchvision ships no type information (no py.typed): its names are Any to mypy
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops.misc import FrozenBatchNorm2d

from surveil.config import DetectorConfig
from surveil.detection.checkpoints import ModelLoadError, load_checkpoint_model, load_coco_model
from surveil.detection.embedding import DEFAULT_KIND, EMBEDDING_KINDS, box_embeddings, kind_for
from surveil.detection.preprocessing import (
    DevicePreprocess,
    HostStaging,
    frames_to_tensors,
    group_by_shape,
    pad_batch,
)
from surveil.detection.protocol import DetectionFilter, Detector
from surveil.types import Detections

__all__ = [  # Detector, DevicePreprocess, frames_to_tensors: re-exported for callers that import them from here
    "Detector",
    "DevicePreprocess",
    "TorchDetector",
    "fold_batchnorm",
    "frames_to_tensors",
    "select_device",
]

log = logging.getLogger(__name__)


def select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"detector.device is {spec!r} but CUDA is not available on this machine (use `auto` or `cpu`)"
        )
    return torch.device(spec)


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
            if isinstance(conv, torch.nn.Conv2d) and _is_inference_norm(norm) and _channels(norm) == conv.out_channels:
                _fold_into(conv, norm)
                setattr(module, norm_name, torch.nn.Identity())
                folded += 1
    return folded


def _is_inference_norm(norm: torch.nn.Module) -> bool:
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, torch.nn.BatchNorm2d) and not norm.training and norm.running_var is not None


def _channels(norm: Any) -> int:
    """The channel count of an inference norm (a FrozenBatchNorm2d, untyped, or a BatchNorm2d)."""
    return int(norm.weight.shape[0])


def _fold_into(conv: torch.nn.Conv2d, norm: Any) -> None:
    """Fold an inference norm (a FrozenBatchNorm2d, untyped, or a BatchNorm2d with running stats) into ``conv``."""
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

    Every detection carries an appearance embedding (``embedding_kind``, see
    :mod:`surveil.detection.embedding`) on both paths; :meth:`embed_boxes` embeds given boxes.
    ``embedding_kind=None`` leaves it out (bench/embedding_cost.py measures what it costs).
    """

    def __init__(
        self,
        config: DetectorConfig,
        optimize: bool = True,
        batched: bool | None = None,
        channels_last: bool | None = None,
        input_channels_last: bool = True,
        embedding_kind: str | None = DEFAULT_KIND,
    ):
        if embedding_kind is not None and embedding_kind not in EMBEDDING_KINDS:
            raise ValueError(f"embedding_kind must be one of {EMBEDDING_KINDS}, got {embedding_kind!r}")
        self.embedding_kind = embedding_kind
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
            if embedding_kind is not None:
                self.embedding_kind = kind_for(self.model, embedding_kind)
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
        # fp16 autocast on CUDA when asked for; the CPU always computes in fp32 here
        self.precision = "fp16" if self.device.type == "cuda" and config.half else "fp32"
        self.batched = (optimize if batched is None else batched) and isinstance(self.model, GeneralizedRCNN)
        self.warm_up_on_cuda = True  # see :meth:`warm_up`
        self._warmed: set[tuple[int, tuple[int, ...]]] = set()  # (thread, frame shape) already warmed up
        if self.batched:
            self._staging = HostStaging(self.device)
            self._preprocess = DevicePreprocess.of(
                self.model.transform,
                self.device,
                torch.float16 if self.precision == "fp16" else torch.float32,
                channels_last=input_channels_last,
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
        return [self.to_detections(output) for output in outputs]

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

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the model's parts run in: fp16 autocast on CUDA when ``precision`` is fp16."""
        return torch.autocast("cuda", dtype=torch.float16) if self.precision == "fp16" else contextlib.nullcontext()

    def _run_per_image(self, images: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """``GeneralizedRCNN.forward`` at inference (its own transform), plus the embeddings."""
        tensors = frames_to_tensors(images, self.device)
        if not isinstance(self.model, GeneralizedRCNN):
            with self.autocast():
                return self.model(tensors)
        model: Any = self.model
        with self.autocast():
            batch, _ = model.transform(tensors)
            features = self._features(batch)
            proposals, _ = model.rpn(batch, features)
            detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
            detections = self._with_embeddings(features, batch, detections)
        return model.transform.postprocess(detections, batch.image_sizes, [image.shape[:2] for image in images])

    def _features(self, batch: ImageList) -> OrderedDict[str, torch.Tensor]:
        features = self.model.backbone(batch.tensors)  # type: ignore[operator]
        return OrderedDict([("0", features)]) if isinstance(features, torch.Tensor) else features

    def _with_embeddings(
        self, features: dict[str, torch.Tensor], batch: ImageList, detections: list[dict[str, torch.Tensor]]
    ) -> list[dict[str, torch.Tensor]]:
        """Each detection dict (boxes in the network input's pixels) with its boxes' ``embedding``."""
        if self.embedding_kind is None:
            return detections
        boxes = [d["boxes"] for d in detections]
        rows = box_embeddings(self.model, features, batch.tensors, boxes, batch.image_sizes, self.embedding_kind)
        return [{**d, "embedding": e} for d, e in zip(detections, rows)]

    def _run_batched(self, images: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """``GeneralizedRCNN.forward`` at inference, its transform replaced by :meth:`_batch`."""
        batch = self.preprocess(images)
        model: Any = self.model  # a GeneralizedRCNN (``batched`` requires one): untyped torchvision
        with self.autocast():
            features = self._features(batch)
            proposals, _ = model.rpn(batch, features)
            detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
            detections = self._with_embeddings(features, batch, detections)
        return model.transform.postprocess(detections, batch.image_sizes, [image.shape[:2] for image in images])

    def preprocess(self, images: Sequence[np.ndarray]) -> ImageList:
        """Frames -> the padded network input: one upload and one batched preprocessing per frame size."""
        groups = group_by_shape(images)
        resized = [self._preprocess(self._staging.upload([images[i] for i in group])) for group in groups]
        image_sizes: list[tuple[int, int]] = [(0, 0)] * len(images)
        for tensor, group in zip(resized, groups):
            for index in group:
                image_sizes[index] = (tensor.shape[-2], tensor.shape[-1])
        order = [index for group in groups for index in group]
        model: Any = self.model  # a GeneralizedRCNN (``batched`` requires one): untyped torchvision
        return ImageList(pad_batch(resized, order, model.transform.size_divisible), image_sizes)

    def to_detections(self, output: dict[str, torch.Tensor]) -> Detections:
        """One image's model output, filtered by the operating thresholds (embeddings kept with their boxes)."""
        embedding = output.get("embedding")
        return self.filter(
            output["boxes"].float().cpu().numpy(),
            output["scores"].float().cpu().numpy(),
            output["labels"].cpu().numpy(),
            None if embedding is None else embedding.float().cpu().numpy(),
        )

    def embed_boxes(self, images: Sequence[np.ndarray], boxes_per_image: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Appearance embeddings of GIVEN boxes: one (N_i, D) float32 array of unit rows per image.

        ``boxes_per_image[i]`` is (N_i, 4) xyxy in image ``i``'s own pixels (e.g. public detections or
        ground truth); the embeddings are those :meth:`detect` gives a detection with that box.
        """
        if len(images) != len(boxes_per_image):
            raise ValueError(f"{len(images)} images but {len(boxes_per_image)} box arrays")
        if not isinstance(self.model, GeneralizedRCNN):
            raise ValueError(f"embed_boxes needs a torchvision Faster R-CNN, not {type(self.model).__name__}")
        if self.embedding_kind is None:
            raise ValueError("embed_boxes on a detector made with embedding_kind=None")
        if not images:
            return []
        model: Any = self.model
        with torch.inference_mode(), self.autocast():
            if self.batched:
                batch = self.preprocess(images)
            else:
                batch, _ = model.transform(frames_to_tensors(images, self.device))
            features = self._features(batch)
            boxes = [
                resize_boxes(
                    torch.as_tensor(np.asarray(b, np.float32).reshape(-1, 4), device=self.device), image.shape[:2], size
                )
                for b, image, size in zip(boxes_per_image, images, batch.image_sizes)
            ]
            rows = box_embeddings(model, features, batch.tensors, boxes, batch.image_sizes, self.embedding_kind)
        return [r.float().cpu().numpy() for r in rows]
