"""Frames to network input for the torch backend: per-image conversion, and the torch detector's batched path on the device.

:func:`frames_to_tensors` (the torch backend's per-image path) turns BGR uint8 frames into RGB float tensors
(the ONNX backends do their own numpy/OpenCV preprocessing: :mod:`surveil.detection.graph`). The batched
path of :class:`surveil.detection.torch_detector.TorchDetector` stacks frames of one size into reused
host buffers (:class:`HostStaging`), uploads them in one copy, resizes and normalises them on the
device (:class:`DevicePreprocess`) and pads the groups into one batch (:func:`pad_batch`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DevicePreprocess", "HostStaging", "frames_to_tensors", "group_by_shape", "pad_batch"]


def frames_to_tensors(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """BGR uint8 HWC frames -> RGB float CHW tensors in [0, 1] on ``device`` (the torch backend, per image).

    Frames of one size (the usual case for a camera fleet) are stacked once and moved in
    one (pinned, asynchronous) copy; the conversion to float happens on the device.
    """
    if len({image.shape for image in images}) == 1:
        batch = [torch.from_numpy(np.stack(images))]
    else:
        batch = [torch.from_numpy(np.ascontiguousarray(image))[None] for image in images]
    tensors: list[torch.Tensor] = []
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
    def of(cls, transform: Any, device: torch.device, dtype: torch.dtype, channels_last: bool) -> DevicePreprocess:
        """From a model's ``GeneralizedRCNNTransform`` (torchvision ships no type information: Any)."""
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
