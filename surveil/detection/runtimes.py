"""The exported-graph backends: the checkpoint's network as an ONNX graph, run by ONNX Runtime or OpenVINO on the CPU.

:class:`OnnxDetector` runs the graph of :mod:`surveil.detection.graph`: the network only (backbone, RPN,
RoI heads) on an image already resized and normalised here in numpy/OpenCV, boxes scaled back to the
frame here too. Nothing on this path imports torch. The graph comes from, in order (:func:`locate_graph`):

1. ``detector.weights`` itself when it names a ``.onnx`` graph (with its ``.onnx.json`` sidecar);
2. the graph beside the checkpoint (``models/X.pt`` -> ``models/X.onnx``) when its sidecar names the
   checkpoint's SHA-256 — the shipped model comes with one, so the daemon needs no export step;
3. the model cache (``<state_dir>/model-cache``), keyed by the checkpoint's SHA-256 and the opset;
4. exported into that cache now (about 10 s; needs torch) — else a ModelLoadError naming the fix.

The post-processing (:class:`surveil.detection.protocol.DetectionFilter`) is shared with the torch backend.

A graph's ``embedding`` output (each detection's appearance, for re-identification) becomes
``Detections.embedding``. A graph built before it (no such output) still loads, with ``embedding``
None and a warning to rebuild: a custom graph keeps detecting, and trackers ignore a missing
embedding, so refusing it would stop a camera for a feature it can live without.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from surveil.config import DetectorConfig
from surveil.detection.graph import GraphSpec, file_sha256, graph_beside, graph_path_for, read_graph_spec
from surveil.detection.isa import bf16_allowed
from surveil.detection.protocol import DetectionFilter, ModelLoadError
from surveil.types import Detections

log = logging.getLogger(__name__)

ONNX_BACKENDS = ("onnxruntime", "openvino")
DEFAULT_OPSET = 17


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "surveil" / "models"


def backend_available(backend: str) -> bool:
    """Whether ``backend``'s package is installed; asked by ``resolve_backend`` and :class:`OnnxDetector`."""
    return importlib.util.find_spec(backend) is not None


class OnnxDetector:
    """The checkpoint's exported graph run by ONNX Runtime or OpenVINO on the CPU (no torch)."""

    def __init__(self, config: DetectorConfig, backend: str, cache_dir: str | Path | None = None):
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"unknown ONNX backend {backend!r}")
        if not backend_available(backend):
            raise ModelLoadError(
                f"detector.backend is {backend} but the `{backend}` package is not installed "
                f"(pip install 'surveil[runtime]' (or -e '.[runtime]'), or use `backend: torch`)"
            )
        if config.device.startswith("cuda"):
            raise ModelLoadError(
                f"detector.backend {backend} runs on the CPU; use `backend: torch` for {config.device}"
            )
        self.config = config
        self.backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.spec = locate_graph(config, self.cache_dir).with_input_size(config.min_size, config.max_size)
        self.onnx_path = self.spec.graph
        self.class_names = list(self.spec.labels)
        self.filter = DetectionFilter(config, self.class_names, self.spec.score_thresholds)
        self.operating_thresholds = self.filter.operating_thresholds
        self.precision = "fp32"
        self.has_embedding = False  # set when the graph is opened
        self.implausible_boxes = 0  # boxes the runtime returned that the graph cannot have made (dropped)
        self._run = self._open_onnxruntime() if backend == "onnxruntime" else self._open_openvino()
        log.info(
            "detector ready: %s on %s (%s, %s, input %d/%d), %d classes",
            config.weights,
            backend,
            self.onnx_path,
            self.precision,
            self.spec.min_size,
            self.spec.max_size,
            len(self.class_names) - 1,
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            network_input = self.spec.preprocess(image)
            boxes, labels, scores, *embedding = self._run(network_input)
            plausible = self.spec.plausible_boxes(boxes, network_input.shape[2:])
            if not plausible.all():
                self._drop_implausible(int((~plausible).sum()))
                boxes, labels, scores = (np.asarray(a)[plausible] for a in (boxes, labels, scores))
                embedding = [np.asarray(rows)[plausible] for rows in embedding]
            boxes = self.spec.boxes_to_frame(boxes, network_input.shape[2:], image.shape[:2])
            out.append(self.filter(boxes, scores, labels, embedding[0] if embedding else None))
        return out

    def _drop_implausible(self, count: int) -> None:
        """Count boxes the runtime returned outside the picture or not finite; say so at the first and at
        every power of ten, so that a runtime fault is visible without flooding the log."""
        before, self.implausible_boxes = self.implausible_boxes, self.implausible_boxes + count
        if before == 0 or len(str(before)) < len(str(self.implausible_boxes)):
            log.warning(
                "detector: %s returned %d box(es) outside the picture or not finite so far (dropped); if this "
                "keeps growing with openvino_precision bf16, try `detector.openvino_precision: fp32`",
                self.backend,
                self.implausible_boxes,
            )

    def _open_onnxruntime(self) -> Callable[[np.ndarray], tuple]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # the graph's shape-inference warnings are noise
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
        session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        names = self._output_names([output.name for output in session.get_outputs()])
        return lambda image: session.run(names, {"image": image})

    def _output_names(self, available: Sequence[str]) -> list[str]:
        """The outputs to read: the embedding too when the graph has it (else a warning to rebuild)."""
        self.has_embedding = "embedding" in available
        if not self.has_embedding:
            log.warning(
                "detector graph %s has no embedding output (built before appearance re-identification): "
                "detections carry no embedding; rebuild it with `python -m surveil.detection.graph build <checkpoint.pt>`",
                self.onnx_path,
            )
        return ["boxes", "labels", "scores"] + (["embedding"] if self.has_embedding else [])

    def _open_openvino(self) -> Callable[[np.ndarray], tuple]:
        import openvino as ov

        core = ov.Core()
        compiled_cache = self.cache_dir / "openvino"
        try:
            compiled_cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(compiled_cache)})
        except OSError as exc:  # a read-only state folder: compile at every start instead
            log.warning("detector: no OpenVINO compile cache (%s: %s)", compiled_cache, exc.strerror or exc)
        self.precision = openvino_precision(
            self.config.openvino_precision, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        )
        properties: dict[str, str | int] = {
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.config.threads:
            properties["INFERENCE_NUM_THREADS"] = self.config.threads
        compiled = core.compile_model(core.read_model(str(self.onnx_path)), "CPU", properties)
        self.compiled_model = compiled  # its execution graph says which kernels ran (surveil bench)
        request = compiled.create_infer_request()
        names = self._output_names([name for output in compiled.outputs for name in output.get_names()])
        outputs = [compiled.output(name) for name in names]

        def run(image: np.ndarray) -> tuple:
            result = request.infer({"image": image})
            return tuple(result[output] for output in outputs)

        return run


def openvino_precision(requested: str, capabilities: Sequence[str]) -> str:
    """``detector.openvino_precision`` on this CPU: bf16 only where the CPU computes it natively."""
    # an ISA limit below AVX512_CORE_BF16 (ONEDNN_MAX_CPU_ISA) still reports BF16, then fails to run it
    native = "BF16" in capabilities and bf16_allowed()
    if requested == "bf16" and not native:
        log.warning("detector.openvino_precision bf16: this CPU has no native bf16; using fp32")
    return "bf16" if requested in ("auto", "bf16") and native else "fp32"


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def cache_key(config: DetectorConfig, opset: int = DEFAULT_OPSET) -> str:
    """What a cached graph depends on: the weights and the opset (not the input size: the resize is outside)."""
    if config.weights == "coco":
        import torchvision

        source = f"coco-{config.architecture}-{torchvision.__version__}"
    else:
        source = file_sha256(config.weights)
    return hashlib.sha256(f"{source}|graph|{opset}".encode()).hexdigest()[:20]


def locate_graph(config: DetectorConfig, cache_dir: Path, opset: int = DEFAULT_OPSET) -> GraphSpec:
    """The graph that serves ``detector.weights`` (see the module docstring for the order)."""
    weights = config.weights
    if weights.endswith(".onnx"):
        return read_graph_spec(weights)
    why = ""
    if weights != "coco":
        if not Path(weights).is_file():
            raise ModelLoadError(f"checkpoint {weights} does not exist")
        spec, why = graph_beside(weights)
        if spec is not None:
            log.debug("detector: using the graph beside the checkpoint, %s", spec.graph)
            return spec
    return cached_graph(config, cache_dir, opset, why)


def cached_onnx(config: DetectorConfig, cache_dir: Path, opset: int = DEFAULT_OPSET) -> Path:
    """The checkpoint's graph in ``cache_dir`` (exported once when torch is installed); its path."""
    return cached_graph(config, cache_dir, opset).graph


def cached_graph(config: DetectorConfig, cache_dir: Path, opset: int = DEFAULT_OPSET, why: str = "") -> GraphSpec:
    stem = Path(config.weights).stem if config.weights != "coco" else config.architecture
    path = cache_dir / f"{stem}-{cache_key(config, opset)}.onnx"
    if path.is_file():
        log.debug("detector: using the cached graph %s", path)
        return read_graph_spec(path)
    if not torch_installed():
        target = graph_path_for(config.weights) if config.weights != "coco" else path
        raise ModelLoadError(
            f"detector.weights {config.weights}: {why or 'no exported graph'}, and PyTorch is not installed to export "
            f"one. On a machine with PyTorch (pip install 'surveil[torch]') run "
            f"`python -m surveil.detection.graph build {config.weights}` and copy {target.name} and "
            f"{target.name}.json beside the checkpoint, or set detector.weights to an exported .onnx graph"
        )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot create the model cache folder {cache_dir}: {exc.strerror or exc}") from None
    from surveil.detection.graph_export import build_graph

    log.info("detector: exporting %s to %s (once; %s)", config.weights, path, why or "no graph yet")
    build_graph(config.weights, path, opset=opset, architecture=config.architecture)
    return read_graph_spec(path)
