"""`surveil snapshot -c FILE CAMERA -o out.jpg`: one frame of a configured camera with its zones and
lines drawn over a labelled relative-coordinate grid, for placing polygons without guessing numbers.

The camera is opened as the daemon opens it (same URL handling, ``open_timeout_s`` and
``read_timeout_s``); drawing is the daemon's renderer (surveil/analysis/render.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2

from surveil.analysis.render import Overlay, draw, draw_grid
from surveil.config import CameraConfig, ConfigError, load_config
from surveil.config.inputs import InputPathError, check_output
from surveil.redact import redact
from surveil.rules import build_geometry
from surveil.video.opening import CaptureOpenError, open_video_capture

EXIT_USAGE = 2
PICTURE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class SnapshotError(Exception):
    """The camera gave no frame, or the picture could not be written (the message says why)."""


def grab_frame(camera: CameraConfig):
    """The first frame the camera delivers (BGR), or SnapshotError."""
    try:
        capture = open_video_capture(camera)
    except CaptureOpenError as exc:
        raise SnapshotError(f"{exc} (waited up to {camera.open_timeout_s:g} s: open_timeout_s)") from None
    try:
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        raise SnapshotError(
            f"camera {camera.name}: opened, but no frame arrived within {camera.read_timeout_s:g} s (read_timeout_s)"
        )
    return image


def annotate(image, camera: CameraConfig, step: float = 0.1):
    """The grid, then the camera's zones and lines with their names."""
    zones, lines = build_geometry(camera)
    return draw(draw_grid(image, step), Overlay(zones=list(zones.values()), lines=list(lines.values())))


def add_arguments(parser) -> None:
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("camera", metavar="CAMERA", help="name of a configured camera")
    parser.add_argument("-o", "--output", required=True, help=f"picture to write ({', '.join(PICTURE_EXTENSIONS)})")
    parser.add_argument("--grid", type=float, default=0.1, help="grid step in relative coordinates (default 0.1)")


def check_output_path(path: str | Path) -> Path:
    """The picture's path, if its extension is one OpenCV writes and it is not a FIFO/device/folder."""
    output = Path(path)
    if output.suffix.lower() not in PICTURE_EXTENSIONS:
        raise SnapshotError(
            f"-o {output}: the name must end in one of {', '.join(PICTURE_EXTENSIONS)} (it picks the format)"
        )
    try:
        check_output(output, what="-o")  # a FIFO would block the write
    except InputPathError as exc:
        raise SnapshotError(str(exc)) from None
    return output


def main(args) -> int:
    try:
        output = check_output_path(args.output)  # before the camera is opened: a bad name costs no wait
    except SnapshotError as exc:
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    if not (math.isfinite(args.grid) and 0.01 <= args.grid <= 0.5):
        print(f"surveil: --grid must be between 0.01 and 0.5, got {args.grid:g}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)  # a backstop: the sources mask too
        return EXIT_USAGE
    camera = next((c for c in config.cameras if c.name == args.camera), None)
    if camera is None:
        names = ", ".join(c.name for c in config.cameras)
        print(f"surveil: no camera named {args.camera!r} in {args.config} (cameras: {names})", file=sys.stderr)
        return EXIT_USAGE
    try:
        picture = annotate(grab_frame(camera), camera, args.grid)
        try:
            written = cv2.imwrite(str(output), picture)
        except cv2.error:
            written = False
        if not written:
            raise SnapshotError(f"cannot write {output} (is its folder there and writable?)")
    except SnapshotError as exc:
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)  # a backstop: the sources mask too
        return EXIT_USAGE
    height, width = picture.shape[:2]
    print(
        f"{output}: camera {camera.name}, {width}x{height}, {len(camera.zones)} zone(s), {len(camera.lines)} line(s), "
        f"grid every {args.grid:g}"
    )
    return 0
