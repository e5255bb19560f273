"""What the detection embedding (issue 17) costs per frame on the CPU, every backend, in one run.

    .venv/bin/python -m bench.embedding_cost [--isa native|avx2] [--frames 40] [--rounds 4] [--threads 2]
        [--kind crop] [--models s8]

For each shipped model at its operating input (pedestrian-mnv2 at 800, the demo's pedestrian-mnv2-s8
at 360) and each backend (torch eager as trained, torch as the `torch` backend runs it, ONNX Runtime,
OpenVINO fp32, OpenVINO bf16 where the CPU computes bf16 natively), the same detector is built twice:
with the embedding (the default) and without (``TorchDetector(embedding_kind=None)``; for the ONNX
backends a graph exported without the embedding output). Every frame goes through every detector in
turn, so a shared machine's load changes hit all alike; the frames are split into ``--rounds``
sampling rounds and each figure is printed as the mean and range over rounds: ms per frame with and
without, the difference, and the ratio with / without (the machine-independent figure), in wall time
and in this process's CPU time (all its threads; less disturbed by other jobs on a busy machine).

``--graphs-only``: only the graph backends, CPU time only, one detector of each kind per process
step (the isolated check of docs/benchmarks.md): each frame through the graph without and with the
embedding, ``--rounds`` passes; min / median CPU ms and the ratio of the medians.

``--kind K``: "with" is the embedding kind K (default: the default kind); ``--models s8``: only the
demo's model.

``--isa avx2`` limits oneDNN (torch, OpenVINO) and ATen to AVX2 (:mod:`surveil.detection.isa`; the
process re-executes itself); ONNX Runtime's MLAS ignores the limit and runs what CPUID offers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from surveil.detection.embedding import DEFAULT_KIND, EMBEDDING_KINDS
from surveil.detection.isa import ISA_CHOICES, apply_isa_limit, bf16_allowed, cpu_flags, flags_summary, requested_isa

REPO = Path(__file__).resolve().parents[1]
MODELS = (("models/pedestrian-mnv2.pt", 800), ("models/pedestrian-mnv2-s8.pt", 360))
VIDEO = Path("video/vtest_pets2009-s2l1-view001_480x360.avi")


def frames(shared: Path, count: int) -> list[np.ndarray]:
    from surveil.video.clips import read_clip

    path = shared / VIDEO
    if not path.is_file():
        path = REPO / "configs/media/pets2009-s2l1.mp4"
    every = max(1, 795 // count)
    return [f.image for f in read_clip(path, every=every, limit=count)]


def plain_graph(weights: str, folder: Path) -> Path:
    """The checkpoint's graph without the embedding output, as graphs were before issue 17."""
    from surveil.detection.graph_export import build_graph

    return build_graph(weights, folder / f"{Path(weights).stem}-plain.onnx", embedding_kind=None)


def detectors(
    weights: str, min_size: int, threads: int, folder: Path, kind: str = DEFAULT_KIND
) -> Iterator[tuple[str, Callable, Callable]]:
    """(backend, make with embedding of ``kind``, make without)."""
    from surveil.config import DetectorConfig
    from surveil.detection.graph_export import build_graph
    from surveil.detection.runtimes import OnnxDetector
    from surveil.detection.torch_detector import TorchDetector

    config = DetectorConfig(weights=weights, device="cpu", min_size=min_size, batch_size=1, threads=threads)
    for name, optimize in (("torch eager (as trained)", False), ("torch (backend)", True)):
        yield (
            name,
            lambda o=optimize: TorchDetector(config, optimize=o, embedding_kind=kind),
            lambda o=optimize: TorchDetector(config, optimize=o, embedding_kind=None),
        )
    plain = plain_graph(weights, folder)
    if kind != DEFAULT_KIND:
        graph = build_graph(weights, folder / f"{Path(weights).stem}-{kind}.onnx", embedding_kind=kind)
        config = config.model_copy(update={"weights": str(graph)})
    precisions = (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))
    for backend, precision in precisions:
        if importlib.util.find_spec(backend) is None:
            print(f"({backend} not installed: skipped)")
            continue
        if precision == "bf16" and not ("avx512_bf16" in cpu_flags() and bf16_allowed()):
            print("(OpenVINO bf16: no native bf16 under this ISA: skipped)")
            continue
        with_cfg = config.model_copy(update={"openvino_precision": precision})
        without_cfg = with_cfg.model_copy(update={"weights": str(plain)})
        yield (
            f"{backend} {precision}",
            lambda c=with_cfg, b=backend: OnnxDetector(c, b, folder),
            lambda c=without_cfg, b=backend: OnnxDetector(c, b, folder),
        )


def measure(
    pairs: list[tuple[str, object, object]], images: list[np.ndarray], rounds: int
) -> dict[str, dict[str, np.ndarray]]:
    """{clock: {backend: (rounds, 2) ms per frame with / without}} for the wall and the CPU clock: each frame
    runs with, without, without, with (the faster of each pair counts: a busy machine only ever adds
    time), every detector in turn; per round the median over its frames."""
    clocks = {"wall": time.perf_counter, "CPU": time.process_time}
    per_round: dict[str, dict[str, list[tuple[float, float]]]] = {
        clock: {name: [] for name, _, _ in pairs} for clock in clocks
    }
    for chunk in np.array_split(np.arange(len(images)), rounds):
        times: dict[str, dict[str, tuple[list[float], list[float]]]] = {
            clock: {name: ([], []) for name, _, _ in pairs} for clock in clocks
        }
        for index in chunk:
            for name, with_embedding, without in pairs:
                runs: dict[str, tuple[list[float], list[float]]] = {clock: ([], []) for clock in clocks}
                for slot in (0, 1, 1, 0):
                    started = {clock: read() for clock, read in clocks.items()}
                    (with_embedding, without)[slot].detect([images[index]])  # type: ignore[attr-defined]
                    for clock, read in clocks.items():
                        runs[clock][slot].append(1000 * (read() - started[clock]))
                for clock in clocks:
                    times[clock][name][0].append(min(runs[clock][0]))
                    times[clock][name][1].append(min(runs[clock][1]))
        for clock in clocks:
            for name, (a, b) in times[clock].items():
                per_round[clock][name].append((float(np.median(a)), float(np.median(b))))
    return {clock: {n: np.asarray(v) for n, v in by_name.items()} for clock, by_name in per_round.items()}


def embedding_step(
    weights: str, min_size: int, threads: int, images: list[np.ndarray], kind: str = DEFAULT_KIND
) -> tuple[float, float, int]:
    """The torch backend's embedding step alone: (ms for the step, ms for the whole detect, boxes embedded),
    medians over frames of the fastest of 5 (a busy machine only ever adds time)."""
    import torch

    from surveil.config import DetectorConfig
    from surveil.detection.embedding import box_embeddings
    from surveil.detection.torch_detector import TorchDetector

    config = DetectorConfig(weights=weights, device="cpu", min_size=min_size, batch_size=1, threads=threads)
    detector = TorchDetector(config, embedding_kind=kind)
    model: Any = detector.model
    step, whole, boxes = [], [], []
    for image in images:
        with torch.inference_mode():
            batch = detector.preprocess([image])
            features = model.backbone(batch.tensors)
            proposals, _ = model.rpn(batch, features)
            found = [d["boxes"] for d in model.roi_heads(features, proposals, batch.image_sizes)[0]]
            embed = partial(box_embeddings, model, features, batch.tensors, found, batch.image_sizes, kind)
            step.append(_fastest(embed))
        whole.append(_fastest(partial(detector.detect, [image]), 3))
        boxes.append(len(found[0]))
    return float(np.median(step)), float(np.median(whole)), int(np.median(boxes))


def _fastest(call: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, 1000 * (time.perf_counter() - started))
    return best


def graphs_only(images: list[np.ndarray], threads: int, passes: int) -> None:
    """CPU ms per frame of the graph backends without / with the embedding: min / median, ratio of medians."""
    print("| model | backend | without: min / median | with: min / median | with / without (medians) |")
    print("|---|---|---|---|---|")
    for weights, min_size in MODELS:
        with tempfile.TemporaryDirectory() as folder:
            for name, make_with, make_without in detectors(str(REPO / weights), min_size, threads, Path(folder)):
                if name.startswith("torch"):
                    continue
                pair = (make_without(), make_with())
                for detector in pair:
                    detector.detect(images[:1])
                times: tuple[list[float], list[float]] = ([], [])
                for _ in range(passes):
                    for image in images:
                        for slot, detector in enumerate(pair):
                            started = time.process_time()
                            detector.detect([image])
                            times[slot].append(1000 * (time.process_time() - started))
                without, with_ = (np.asarray(t) for t in times)
                print(
                    f"| {Path(weights).stem} @{min_size} | {name} | {without.min():.0f} / {np.median(without):.0f} "
                    f"| {with_.min():.0f} / {np.median(with_):.0f} | {np.median(with_) / np.median(without):.3f} |",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", choices=ISA_CHOICES, default="native")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--graphs-only", action="store_true", help="the isolated CPU-time check of the graph backends")
    parser.add_argument("--kind", choices=EMBEDDING_KINDS, default=DEFAULT_KIND, help="the embedding measured")
    parser.add_argument("--models", choices=("all", "s8"), default="all", help="s8: only the demo's model")
    args = parser.parse_args()
    apply_isa_limit(args.isa)  # before torch / OpenVINO initialise (re-executes when needed)
    logging.basicConfig(level=logging.ERROR)
    images = frames(args.shared_data, args.frames)
    print(f"CPU: {flags_summary(cpu_flags())}; ISA limit: {requested_isa()} (ONNX Runtime: native regardless)")
    print(f"{os.cpu_count()} CPUs, shared and busy; load average at the start {_load()}")
    print(f"{len(images)} PETS09-S2L1 frames (480x360), {args.rounds} rounds, batch 1, {args.threads} threads")
    if args.graphs_only:
        graphs_only(images, args.threads, args.rounds)
        print(f"\nload average at the end {_load()}")
        return 0
    print(f"embedding kind: {args.kind}")
    for weights, min_size in MODELS if args.models == "all" else MODELS[1:]:
        with tempfile.TemporaryDirectory() as folder:
            made = detectors(str(REPO / weights), min_size, args.threads, Path(folder), args.kind)
            pairs = [(n, a(), b()) for n, a, b in made]
            for _, a, b in pairs:
                a.detect(images[:1])
                b.detect(images[:1])
            results = measure(pairs, images, args.rounds)
        step, whole, boxes = embedding_step(str(REPO / weights), min_size, args.threads, images, args.kind)
        print(
            f"\n{weights} at input {min_size}: the torch backend's embedding step alone {step:.2f} ms per frame "
            f"({boxes} boxes, the RoI head's output before the score floor) of {whole:.0f} ms per detect "
            f"({100 * step / whole:.2f} %; medians over frames of the fastest of 5 / 3 runs)"
        )
        print(f"{weights} at input {min_size}; ms/frame: median per round, mean (range over rounds)")
        print("| backend | clock | with embedding | without | difference | with / without |")
        print("|---|---|---|---|---|---|")
        for name in results["wall"]:
            for clock, by_name in results.items():
                rows = by_name[name]
                cells = [rows[:, 0], rows[:, 1], rows[:, 0] - rows[:, 1]]
                ratio = rows[:, 0] / rows[:, 1]
                print(
                    f"| {name} | {clock} | "
                    + " | ".join(f"{c.mean():.1f} ({c.min():.1f}–{c.max():.1f})" for c in cells)
                    + f" | {ratio.mean():.3f} ({ratio.min():.3f}–{ratio.max():.3f}) |",
                    flush=True,
                )
    print(f"\nload average at the end {_load()}")
    print(json.dumps({"isa": requested_isa(), "cpu": flags_summary(cpu_flags())}))
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
