"""Clips: a browser-playable H.264 MP4 of the right length; a full queue drops, never blocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import cv2
import numpy as np
import pytest

from surveil.review.encoder import ClipEncoder, ClipJob, encode_clip, find_ffmpeg, resample
from surveil.review.ring import RingFrame


def _frames(times: list[float]) -> tuple[RingFrame, ...]:
    out = []
    for i, ts in enumerate(times):
        image = np.zeros((121, 161, 3), np.uint8)  # odd sizes: the encoder must make them even
        image[:, (i * 10) % 140 : (i * 10) % 140 + 20] = (0, 200, 255)
        out.append(RingFrame(ts, cv2.imencode(".jpg", image)[1].tobytes()))
    return tuple(out)


@pytest.mark.parametrize(
    ("times", "fps", "picks"),
    [
        ([0.0, 1.0], 2, [0, 0, 1]),  # 0, 0.5, 1.0 s: the second tick still shows frame 0
        ([0.0, 0.1, 0.2, 1.0], 2, [0, 2, 3]),  # more frames than ticks: the newest at each tick
        ([5.0], 4, [0]),
    ],
)
def test_resample_picks_the_newest_frame_at_each_tick(times, fps, picks):
    frames = _frames(times)
    assert resample(frames, fps) == [frames[i].jpeg for i in picks]


def _probe(path) -> dict:
    out = subprocess.run(
        [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-show_entries",
         "format=duration,format_name:stream=codec_name,pix_fmt,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def test_encode_clip_writes_h264_mp4_a_browser_plays(tmp_path):
    ffmpeg = find_ffmpeg()
    if ffmpeg is None or shutil.which("ffprobe") is None:
        pytest.skip("no ffmpeg with libx264")
    path = tmp_path / "clip.mp4"
    seconds = encode_clip(_frames([10 + i * 0.5 for i in range(9)]), 4, path, ffmpeg)
    info = _probe(path)
    stream = info["streams"][0]
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert (stream["width"], stream["height"]) == (160, 120)
    assert "mp4" in info["format"]["format_name"]
    assert float(info["format"]["duration"]) == pytest.approx(seconds, abs=0.3)
    assert seconds == pytest.approx(4.25)  # 17 ticks at 4 fps over 4 s
    assert not list(tmp_path.glob("*.part"))


def test_a_full_queue_drops_instead_of_waiting(tmp_path):
    release = threading.Event()
    results = []

    def done(result):
        release.wait(10)
        results.append(result)

    encoder = ClipEncoder(done, max_queue=1, ffmpeg="/nonexistent/ffmpeg")
    jobs = [ClipJob(f"i{i}", _frames([0.0]), 2, tmp_path / f"{i}.mp4") for i in range(4)]
    accepted = [encoder.submit(job) for job in jobs]
    assert accepted[0] and not all(accepted)  # the thread holds one, the queue one more at most
    release.set()
    encoder.close(timeout=10)
    assert len(results) == sum(accepted)
    assert not any(r.ok for r in results)  # the missing binary is a failed clip, not an exception


def test_without_ffmpeg_clips_fail_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr("surveil.review.encoder.find_ffmpeg", lambda: None)
    results = []
    encoder = ClipEncoder(results.append)
    assert not encoder.available
    encoder.submit(ClipJob("x", _frames([0.0]), 2, tmp_path / "x.mp4"))
    encoder.close(timeout=5)
    assert [(r.ok, "libx264" in r.why) for r in results] == [(False, True)]


FAKE_FFMPEG = """#!{python}
import os, sys, time
open(os.environ["FAKE_FFMPEG_READY"], "w").close()
sys.stdin.buffer.read()
time.sleep(1.0)  # still encoding when the terminal's Ctrl-C arrives
open(sys.argv[-1], "wb").write(b"mp4")
"""

ENCODE_IN_A_DAEMON = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, lambda *_: None)  # the daemon handles Ctrl-C itself: a graceful stop
from surveil.review.encoder import encode_clip
from surveil.review.ring import RingFrame
print(encode_clip((RingFrame(0.0, b"jpeg"),), 4, Path(sys.argv[1]), sys.argv[2]))
"""


def test_a_clip_being_encoded_survives_ctrl_c_in_the_terminal(tmp_path):
    """Ctrl-C signals the terminal's whole process group; the daemon stops gracefully and finishes its
    queued clips, so its ffmpeg must not get the signal too (it used to exit 255: the clip was lost)."""
    import os
    import signal
    import sys
    import time

    fake = tmp_path / "ffmpeg"
    fake.write_text(FAKE_FFMPEG.format(python=sys.executable))
    fake.chmod(0o755)
    ready = tmp_path / "ready"
    daemon = subprocess.Popen(
        [sys.executable, "-c", ENCODE_IN_A_DAEMON, str(tmp_path / "clip.mp4"), str(fake)],
        env={**os.environ, "FAKE_FFMPEG_READY": str(ready)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, standing for the terminal's
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and daemon.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), daemon.communicate()
    os.killpg(daemon.pid, signal.SIGINT)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert float(out) == pytest.approx(0.25)
    assert (tmp_path / "clip.mp4").read_bytes() == b"mp4"
