"""What incident review costs per camera on the CPU: the JPEG of each analysed frame kept in the
ring buffer, and the H.264 clip encoding (surveil.review.encoder, the ffmpeg binary with libx264,
one thread, preset veryfast), in one run.

    .venv/bin/python -m bench.clip_encode [--rounds 4] [--seconds 10 30] [--fps 5]

Frames: the shipped PETS 2009 clip (480x360), annotated by the renderer (a zone, a line, 8 tracks).
Each round encodes every clip length once with x264's full SIMD (AVX-512 here) and once limited to
AVX2 (``-x264-params asm=AVX2``), interleaved, so the machine's load hits both alike; figures are
the mean and range over rounds: CPU ms (ffmpeg's user + system) per clip-second, wall ms per
clip-second, and the AVX2 / native ratio (machine-independent). libjpeg-turbo (the ring's JPEG)
has no AVX-512 code: its figure is the same under both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from surveil.analysis.render import Overlay, draw, encode_jpeg
from surveil.detection.isa import cpu_flags, flags_summary
from surveil.review.encoder import encode_clip, find_ffmpeg
from surveil.review.ring import RingFrame
from surveil.rules.base import Line, Zone
from surveil.types import Track

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "configs/media/pets2009-s2l1.mp4"
ISAS = (("native", ""), ("avx2", "AVX2"))


def annotated_frames(count: int) -> tuple[list[np.ndarray], list[float]]:
    """The clip's first ``count`` frames with a zone, a line and eight tracks drawn; ms each drawing took."""
    from surveil.video.clips import read_clip

    tracks = tuple(
        Track(i, "plaza", 0, (40.0 * i, 120.0, 40.0 * i + 18, 170.0), 0.9, 0.0, 1.0, 5, 0,
              tuple((40.0 * i + k, 170.0) for k in range(12)))
        for i in range(1, 9)
    )  # fmt: skip
    overlay = Overlay(
        zones=(Zone("east_side", np.array([[0.6, 0.25], [1.0, 0.25], [1.0, 0.75], [0.6, 0.75]])),),
        lines=(Line("midline", (0.5, 0.2), (0.5, 0.95), "westbound", "eastbound"),),
        tracks=tracks,
        class_names=["pedestrian"],
        timestamp="2026-12-05 01:02:03",
    )
    drawn, ms = [], []
    for frame in read_clip(CLIP, every=1, limit=count):
        started = time.perf_counter()
        drawn.append(draw(frame.image, overlay))
        ms.append((time.perf_counter() - started) * 1000)
    return drawn, ms


def spread(values: list[float], digits: int = 1) -> str:
    mean, low, high = statistics.mean(values), min(values), max(values)
    return f"{mean:8.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--fps", type=float, default=5.0, help="analysed frames a second, and the clips' rate")
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise SystemExit("no ffmpeg with libx264 on PATH")
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")  # fmt: skip
    print(f"CPU: {model}, {os.cpu_count()} cores; flags: {flags_summary(cpu_flags())}")
    print(f"load (uptime): {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("a shared, busy machine: compare the ratios, not the absolute milliseconds")
    count = int(max(args.seconds) * args.fps) + 1
    images, draw_ms = annotated_frames(count)
    print(f"\ndrawing the overlay (zone, line, 8 tracks, time): {spread(draw_ms, 2)} ms/frame")
    jpeg_ms, sizes = [], []
    for image in images:
        started = time.perf_counter()
        data = encode_jpeg(image, 80)
        jpeg_ms.append((time.perf_counter() - started) * 1000)
        sizes.append(len(data or b""))
    jpegs = [encode_jpeg(i, 80) or b"" for i in images]
    kb = statistics.mean(sizes) / 1024
    print(f"\nring JPEG (q80, 480x360 annotated): {statistics.mean(jpeg_ms):.2f} ms/frame "
          f"({min(jpeg_ms):.2f}-{max(jpeg_ms):.2f}), {kb:.1f} KiB/frame; at {args.fps:g} fps analysed: "
          f"{statistics.mean(jpeg_ms) * args.fps / 10:.2f} % of a core, ring of 35 s = "
          f"{kb * args.fps * 35 / 1024:.1f} MiB")  # fmt: skip
    cpu: dict[tuple[str, float], list[float]] = {}
    wall: dict[tuple[str, float], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for seconds in args.seconds:
                frames = [RingFrame(i / args.fps, jpegs[i]) for i in range(int(seconds * args.fps) + 1)]
                for name, asm in ISAS if round_ % 2 == 0 else ISAS[::-1]:
                    before, started = os.times(), time.perf_counter()
                    clip_s = encode_clip(frames, args.fps, Path(folder) / "clip.mp4", ffmpeg, x264_asm=asm)
                    after = os.times()
                    used = (after.children_user - before.children_user) + (
                        after.children_system - before.children_system
                    )
                    cpu.setdefault((name, seconds), []).append(used * 1000 / clip_s)
                    wall.setdefault((name, seconds), []).append((time.perf_counter() - started) * 1000 / clip_s)
    print(f"\nclip encoding, {args.fps:g} fps, per clip-second, mean (range) over {args.rounds} rounds:")
    print(f"{'clip':>6} {'x264 SIMD':>10} {'CPU ms':>22} {'wall ms':>22}")
    for seconds in args.seconds:
        for name, _ in ISAS:
            print(f"{seconds:5.0f}s {name:>10} {spread(cpu[(name, seconds)]):>22} {spread(wall[(name, seconds)]):>22}")
        ratios = [a / n for a, n in zip(cpu[("avx2", seconds)], cpu[("native", seconds)])]
        print(f"{seconds:5.0f}s  CPU ratio avx2/native: {spread(ratios, 2)}")
    per_s = statistics.mean(cpu[("native", max(args.seconds))]) / 1000
    print(f"\nper camera: a clip of L s costs {per_s:.3f} x L CPU-seconds once (e.g. 60 incidents an hour "
          f"with 20 s clips: {per_s * 20 * 60 / 3600 * 100:.2f} % of one core on average)")  # fmt: skip
    print(f"load (uptime): {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
