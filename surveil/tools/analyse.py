"""`surveil analyse`: recorded files through the same analyser as the daemon, frame by frame.

    video file -> every (k-th) frame, none dropped -> detector (batches) -> CameraAnalyzer -> JSON lines

Unlike a ``loop: false`` file camera in the daemon, nothing is paced or dropped: every frame
(or every k-th) is analysed as fast as the detector allows, and the analyser's clock is the
media time (frame index / the file's fps), so dwell times and rule windows mean the same as in
the video. Each file is its own recording: a fresh analyser, whose open incidents end at the end
of the file (``end_reason: stopped``, as the alert schema documents for the end of a recording).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import cv2
import numpy as np

from surveil.config import Config
from surveil.config.inputs import InputPathError, check_output, open_regular_file
from surveil.redact import redact
from surveil.rules.base import StateReport, report_kind
from surveil.service.metrics import Metrics
from surveil.types import AlertUpdate, Frame
from surveil.video.source import file_fps

if TYPE_CHECKING:
    from surveil.detection.protocol import Detector


class RecordingError(Exception):
    """A file or camera that cannot be analysed (the message says which and why)."""


@dataclass
class Summary:
    camera: str
    files: int = 0
    frames_read: int = 0
    frames_analysed: int = 0
    media_s: float = 0.0
    wall_s: float = 0.0
    messages: Counter = field(default_factory=Counter)  # (rule, phase) -> alert messages
    counts: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)  # (kind, name, rule) -> values

    @property
    def fps(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        out = [
            f"camera {self.camera}: {self.files} file(s), {self.frames_analysed} of {self.frames_read} frames analysed "
            f"({self.media_s:.1f} s of video) in {self.wall_s:.1f} s: {self.fps:.2f} frames/s",
        ]
        rules = sorted({rule for rule, _ in self.messages})
        if rules:
            out.append("alerts (rule: start / update / end):")
            out += [
                f"  {rule}: {self.messages[rule, 'start']} / {self.messages[rule, 'update']} / {self.messages[rule, 'end']}"
                for rule in rules
            ]
        else:
            out.append("alerts: none")
        for (kind, name, rule), values in sorted(self.counts.items()):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "0"
            out.append(f"{report_kind(kind).subject} {name} ({rule}): {shown}")
        return out


def check_camera(config: Config, camera: str | None) -> str:
    names = [c.name for c in config.enabled_cameras]
    if camera is None:
        return names[0]
    if camera not in names:
        raise RecordingError(f"no enabled camera named {camera!r} in the config (cameras: {', '.join(names)})")
    return camera


def check_files(videos: Sequence[str | Path]) -> list[Path]:
    """The videos as paths; RecordingError for a missing file or anything that is not a regular file
    (a FIFO or device would block or never end: opened non-blocking and checked with fstat)."""
    paths = [Path(v) for v in videos]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RecordingError(f"no such file: {', '.join(missing)}")
    for path in paths:
        try:
            open_regular_file(path, "video").close()
        except InputPathError as exc:
            raise RecordingError(str(exc)) from None
    return paths


def check_sampling(every: int, offset: int) -> None:
    """RecordingError unless ``every`` >= 1 and 0 <= ``offset`` < ``every`` (a phase of the sampling)."""
    if every < 1:
        raise RecordingError(f"--every must be at least 1, got {every}")
    if not 0 <= offset < every:
        raise RecordingError(f"--offset must be between 0 and --every - 1 ({every - 1}), got {offset}")


# The earliest and latest --start-time: 1970 to 2100 in Unix seconds (finite, and far from float overflow).
START_TIME_RANGE = (0.0, 4_102_444_800.0)


def analyse_recordings(
    config: Config,
    videos: Sequence[str | Path],
    detector: Detector,
    *,
    camera: str | None = None,
    every: int = 1,
    offset: int = 0,
    on_alert: Callable[[AlertUpdate], None] = lambda alert: None,
    progress: Callable[[str], None] | None = None,
    start_time: float | None = 0.0,
) -> Summary:
    """Analyse every ``every``-th frame of each video, from frame ``offset`` + 1 (the sampling phase:
    0 to ``every`` - 1), with ``camera``'s zones and rules.

    Alert times (``ts``) are ``start_time`` (None: each file's modification time) + media time. Raises RecordingError for a missing or
    unreadable file or an unknown camera (before anything is analysed, as far as it can tell)."""
    from surveil.service.pipeline import build_analyzers

    check_sampling(every, offset)
    name = check_camera(config, camera)
    paths = check_files(videos)
    summary = Summary(camera=name)
    metrics = Metrics()
    started = time.monotonic()
    for path in paths:
        analyzer = build_analyzers(config, detector, metrics)[name]

        counts: dict[tuple[str, str, str], dict[str, int]] = {}  # this file's running counts

        def state(_camera: str, report: StateReport, _previous: dict[str, int]) -> None:
            counts[report.kind, report.name, report.rule] = dict(report.values)  # noqa: B023 (this file's loop)

        analyzer.on_state = state
        emit = _counting(summary, on_alert)
        media_now = 0.0
        reader = _Reader(path, name, every, path.stat().st_mtime if start_time is None else start_time, offset)
        for frames in reader.batches(config.detector.batch_size):
            for frame, detections in zip(frames, detector.detect([f.image for f in frames])):
                media_now = frame.ts_mono
                for update in analyzer.process(analyzer.context(frame, detections)):
                    emit(update)
                summary.frames_analysed += 1
            if progress is not None:
                progress(_progress_line(path, frames[-1].seq, reader.total, summary, started))
        summary.frames_read += reader.read
        end = max(reader.read / reader.fps, media_now)
        for update in analyzer.close(end, reader.start_time + end, reason="stopped"):
            emit(update)
        for key, values in counts.items():  # totals (line counts); each file counts from zero, the summary adds them up
            if not report_kind(key[0]).cumulative:
                continue
            total = summary.counts.setdefault(key, {})
            for k, v in values.items():
                total[k] = total.get(k, 0) + v
        summary.files += 1
        summary.media_s += end
    summary.wall_s = time.monotonic() - started
    return summary


def _counting(summary: Summary, on_alert: Callable[[AlertUpdate], None]) -> Callable[[AlertUpdate], None]:
    def emit(update: AlertUpdate) -> None:
        summary.messages[update.rule, update.phase] += 1
        on_alert(update)

    return emit


class _Reader:
    """Batches of every ``every``-th frame of one file from frame ``offset`` + 1; seq = 1-based frame
    number, ts_mono = media time (the frames skipped before the offset still count)."""

    def __init__(self, path: Path, camera: str, every: int, start_time: float, offset: int = 0):
        self.path, self.camera, self.every, self.start_time, self.offset = path, camera, every, start_time, offset
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise RecordingError(f"cannot open {path} as a video")
        self.fps = file_fps(self.capture)
        self.total = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.read = 0

    def batches(self, size: int) -> Iterator[list[Frame]]:
        try:
            batch: list[Frame] = []
            while self.capture.grab():
                self.read += 1
                if self.read - 1 < self.offset or (self.read - 1 - self.offset) % self.every:
                    continue
                ok, image = self.capture.retrieve()
                if not ok or image is None:
                    break
                media = (self.read - 1) / self.fps
                batch.append(Frame(self.camera, self.read, media, self.start_time + media, np.ascontiguousarray(image)))
                if len(batch) >= size:
                    yield batch
                    batch = []
            if self.read == 0:
                raise RecordingError(f"{self.path}: no frame could be read")
            if batch:
                yield batch
        finally:
            self.capture.release()


def _progress_line(path: Path, number: int, total: int, summary: Summary, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    share = f" ({100 * number / total:.0f}%)" if total else ""
    alerts = sum(n for (_, phase), n in summary.messages.items() if phase == "start")
    return f"{path.name}: frame {number}/{total or '?'}{share}, {summary.frames_analysed / elapsed:.1f} frames/s, {alerts} alert(s)"


class Progress:
    """Progress on stderr: one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, every_s: float = 0.25):
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else 5.0
        self._last = 0.0
        self._text = ""

    def __call__(self, text: str) -> None:
        self._text = text
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._write(text)

    def done(self) -> None:
        if self._text:
            self._write(self._text)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _write(self, text: str) -> None:
        self.stream.write(f"\r\x1b[K{text}" if self.tty else text + "\n")
        self.stream.flush()


# ---------------------------------------------------------------- the command


def add_arguments(parser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, help="YAML config file: its detector and the camera's zones, lines and rules"
    )
    parser.add_argument(
        "videos", nargs="+", metavar="VIDEO", help="recorded video file(s), each analysed as its own recording"
    )
    parser.add_argument("--camera", help="whose zones and rules apply (default: the first enabled camera)")
    parser.add_argument("--every", type=int, default=1, metavar="K", help="analyse every K-th frame (default 1: all)")
    parser.add_argument(
        "--offset",
        type=int,
        default=0,
        metavar="P",
        help="sampling phase with --every: start at frame P + 1, 0 <= P < K (default 0: frames 1, K+1, 2K+1, ...)",
    )
    parser.add_argument(
        "--out",
        default="alerts.jsonl",
        help="alerts as JSON lines, one message per line (default: alerts.jsonl; replaced)",
    )
    parser.add_argument(
        "--start-time",
        type=_start_time,
        default=None,
        metavar="TIME",
        help="wall time of the first frame, Unix seconds or ISO 8601 (alert `ts` = this + media time; "
        "default: each file's modification time, which a recorder sets about when the recording ended)",
    )


def _start_time(text: str) -> float:
    from datetime import datetime

    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            raise argparse.ArgumentTypeError(f"not Unix seconds or ISO 8601: {text!r}") from None
    low, high = START_TIME_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"must be a finite time between {low:.0f} and {high:.0f} Unix seconds (1970-2100), got {text!r}"
        )
    return value


def main(args) -> int:
    """`surveil analyse`: 0 when every file was analysed, 2 for a bad config, file, camera or model."""
    from surveil.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        check_camera(config, args.camera)
        check_files(args.videos)
        check_output(args.out, args.videos, "--out")
        check_sampling(args.every, args.offset)
    except (ConfigError, RecordingError, InputPathError) as exc:
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)
        return 2
    from surveil.service.pipeline import PipelineError, load_detector

    progress = Progress()
    try:
        detector = load_detector(config)
        with open(args.out, "w", encoding="utf-8") as out:

            def write(alert: AlertUpdate) -> None:
                out.write(alert.to_json(published_at=time.time()) + "\n")

            summary = analyse_recordings(
                config,
                args.videos,
                detector,
                camera=args.camera,
                every=args.every,
                offset=args.offset,
                on_alert=write,
                progress=progress,
                start_time=args.start_time,
            )
    except (PipelineError, RecordingError, OSError, ValueError) as exc:  # ValueError: a non-finite number in an alert
        progress.done()
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)
        return 2
    progress.done()
    print("\n".join(summary.lines()))
    print(f"alerts: {args.out}")
    return 0
