"""Opening a camera as the daemon does: a stream (FFmpeg, RTSP over TCP, open/read timeouts), a file or a device.

:func:`open_video_capture` raises :class:`CaptureOpenError` with a message that names the camera,
its masked URL and the cause (:func:`surveil.video.diagnose.diagnose_stream` for streams). FFmpeg's
own log stays silent (``surveil.redact.quiet_native_logs``), so logs stay one record per line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import cv2

from surveil.config import CameraConfig
from surveil.redact import redact_url
from surveil.video.diagnose import PROBE_TIMEOUT_S, diagnose_stream

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_DEFAULT_OPTIONS = (("rtsp_transport", "tcp"), ("analyzeduration", "500000"))

_env_lock = threading.Lock()


class CaptureOpenError(RuntimeError):
    """A camera could not be opened; the message names the camera and its (masked) URL."""


def mask_url(url: str | int) -> str:
    """The URL as it may be shown: passwords, secret parameters and known secrets masked (surveil.redact)."""
    return redact_url(url)


def ensure_ffmpeg_capture_options(environ: Any = None) -> str:
    """Make sure ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` asks for RTSP over TCP and a short probe.

    Options already set (by the operator) win; only missing keys are added. OpenCV reads the
    variable at every FFmpeg open, and uses TCP by default only while it is unset.
    """
    env = os.environ if environ is None else environ
    with _env_lock:
        current = env.get(FFMPEG_OPTIONS_ENV, "")
        pairs = [p for p in current.split("|") if p]
        keys = {p.split(";", 1)[0] for p in pairs}
        pairs += [f"{k};{v}" for k, v in FFMPEG_DEFAULT_OPTIONS if k not in keys]
        value = "|".join(pairs)
        if value != current:
            env[FFMPEG_OPTIONS_ENV] = value
            log.debug("%s=%s", FFMPEG_OPTIONS_ENV, value)
        return value


def open_video_capture(config: CameraConfig) -> cv2.VideoCapture:
    """Open a camera's stream, file or device; raise ``CaptureOpenError`` when it will not open."""
    kind = config.kind
    if kind == "stream":
        cap = _open_stream(config)
    elif kind == "file":
        if not Path(str(config.url)).is_file():
            raise CaptureOpenError(f"camera {config.name}: file not found: {mask_url(config.url)}")
        cap = cv2.VideoCapture(str(config.url))
    else:
        cap = _open_device(config.url)
    if not cap.isOpened():
        cap.release()
        if kind == "file":
            why = "not a video OpenCV can decode (no video stream)"
        elif kind == "stream":
            why = diagnose_stream(
                str(config.url), min(config.open_timeout_s, PROBE_TIMEOUT_S), allow_basic=config.allow_basic_auth
            )
        else:
            why = "no such device, or it is busy"
        raise CaptureOpenError(f"camera {config.name}: cannot open {mask_url(config.url)}: {why}")
    return cap


def _open_stream(config: CameraConfig) -> cv2.VideoCapture:
    ensure_ffmpeg_capture_options()
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _ms(config.open_timeout_s),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, _ms(config.read_timeout_s),
    ]  # fmt: skip
    return cv2.VideoCapture(str(config.url), cv2.CAP_FFMPEG, params)


def _open_device(url: str | int) -> cv2.VideoCapture:
    source: str | int = int(url) if isinstance(url, int) or str(url).isdigit() else str(url)
    api = cv2.CAP_V4L2 if sys.platform.startswith("linux") and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
    return cv2.VideoCapture(source, api)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
