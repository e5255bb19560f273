"""Issue 18, item 6: every input path is bounded.

Classes, each table-driven through the real command line (`surveil.cli.main`, in-process):
- a path that is not a regular file (FIFO, directory, character device, a symlink to one) is
  refused before it is opened, for every path option: check-config, shards, snapshot -c/-o,
  analyse -c/VIDEO/--out; exit 2 with a message, no traceback, never blocking (a FIFO with no
  writer would block ``open()`` forever; the subprocess timeout is the hang guard);
- an output that is one of the inputs (same path, another spelling, symlink, hard link);
- float options that are not finite or not sane (analyse --start-time, snapshot --grid);
- snapshot -o with a name OpenCV cannot write;
- alert JSON never holds NaN or Infinity.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from surveil.config.inputs import InputPathError, check_output, open_regular_file
from surveil.types import AlertUpdate
from tests.support.surveil_cli import REPO

SECRET = "pw-that-must-not-show"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    camera = {"name": "cam", "url": f"rtsp://user:{SECRET}@127.0.0.1:1/stream", "open_timeout_s": 0.1}
    path.write_text(yaml.safe_dump({"cameras": [camera], "mqtt": {"enabled": False}}))
    return path


def _surveil(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command in a subprocess; the timeout is only a hang guard (a blocked open never returns)."""
    return subprocess.run(
        [sys.executable, "-m", "surveil", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "folder.yaml"
        path.mkdir()
    elif kind == "char-device":
        path = Path("/dev/zero")
    elif kind == "symlink-to-fifo":
        target = tmp_path / "hidden-pipe"
        os.mkfifo(target)
        path = tmp_path / "link.yaml"
        path.symlink_to(target)
    else:
        raise AssertionError(kind)
    return path


KINDS = ["fifo", "directory", "char-device", "symlink-to-fifo"]
# (label, argv builder(config, special, tmp_path)) - the special path in each path option
PATH_OPTIONS = [
    ("check-config", lambda c, s, t: ["check-config", s]),
    ("check-config, among good files", lambda c, s, t: ["check-config", c, s]),
    ("shards -c", lambda c, s, t: ["shards", "-c", s]),
    ("snapshot -c", lambda c, s, t: ["snapshot", "-c", s, "cam", "-o", t / "x.jpg"]),
    ("analyse -c", lambda c, s, t: ["analyse", "-c", s, t / "v.mp4", "--out", t / "a.jsonl"]),
    ("analyse VIDEO", lambda c, s, t: ["analyse", "-c", c, s, "--out", t / "a.jsonl"]),
]


RUN = ("run -c", lambda c, s, t: ["run", "-c", s])
PATH_CASES = [pytest.param(*p, id=p[0]) for p in PATH_OPTIONS] + [pytest.param(*RUN, id=RUN[0], marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("label", "argv"), PATH_CASES)
def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path, kind, label, argv):
    config = _config(tmp_path)
    (tmp_path / "v.mp4").write_bytes(b"not really a video")
    special = _special(tmp_path, kind)
    result = _surveil(*argv(config, special, tmp_path))
    assert result.returncode == 2, f"{label} {kind}: {result.stdout}{result.stderr}"
    assert "not a regular file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr


def _config_naming(tmp_path: Path, option: str, special: Path) -> Path:
    """A config whose detector weights or file camera is ``special`` (every other path a real file)."""
    config = {
        "cameras": [{"name": "cam", "url": str(REPO / "configs/media/pets2009-s2l1.mp4")}],
        "mqtt": {"enabled": False},
    }
    if option == "detector.weights":
        config["detector"] = {"weights": str(special)}
    else:
        config["cameras"].append({"name": "yard", "url": str(special)})
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


CONFIG_PATHS = ["detector.weights", "a file camera's url"]
COMMANDS = [pytest.param("check-config", id="check-config"), pytest.param("run", id="run", marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", CONFIG_PATHS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_model_or_video_path_that_is_not_a_regular_file_is_refused(tmp_path, kind, option, command):
    config = _config_naming(tmp_path, option, _special(tmp_path, kind))
    result = _surveil(command, *(["-c"] if command == "run" else []), config)
    assert result.returncode == 2, f"{command} {option} {kind}: {result.stdout}{result.stderr}"
    assert "not a regular file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


OUTPUTS = [  # (label, out builder(tmp_path, video) -> --out path)
    ("same path", lambda t, v: v),
    ("another spelling", lambda t, v: t / "sub" / ".." / v.name),
    ("relative ./", lambda t, v: Path(os.path.relpath(v, REPO))),
    ("symlink to the input", lambda t, v: _link(t / "out-link.jsonl", v, hard=False)),
    ("hard link to the input", lambda t, v: _link(t / "out-hard.jsonl", v, hard=True)),
    ("a FIFO", lambda t, v: _fifo(t / "out.fifo")),
    ("a directory", lambda t, v: t),
]


def _link(path: Path, target: Path, hard: bool) -> Path:
    if hard:
        os.link(target, path)
    else:
        path.symlink_to(target)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(("label", "out"), OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_analyse_refuses_an_output_that_is_an_input_or_not_a_file(tmp_path, label, out):
    (tmp_path / "sub").mkdir()
    video = tmp_path / "recording.mp4"
    content = b"precious recording" * 100
    video.write_bytes(content)
    result = _surveil("analyse", "-c", _config(tmp_path), video, "--out", out(tmp_path, video))
    assert result.returncode == 2, f"{label}: {result.stdout}{result.stderr}"
    assert "--out" in result.stderr and "Traceback" not in result.stderr
    assert video.read_bytes() == content, f"{label}: the input was changed"


FLOATS = [  # (argv tail, expected words in the message)
    (["analyse", "--start-time", "nan"], "finite"),
    (["analyse", "--start-time", "inf"], "finite"),
    (["analyse", "--start-time=-inf"], "finite"),
    (["analyse", "--start-time", "1e300"], "finite"),
    (["analyse", "--start-time=-5"], "finite"),
    (["analyse", "--start-time", "99999-01-01"], "ISO 8601"),
    (["snapshot", "--grid", "nan"], "--grid"),
    (["snapshot", "--grid", "inf"], "--grid"),
    (["snapshot", "--grid", "0"], "--grid"),
]


@pytest.mark.parametrize(("argv", "words"), FLOATS, ids=[" ".join(f[0]) for f in FLOATS])
def test_float_options_must_be_finite_and_sane(tmp_path, argv, words):
    config = _config(tmp_path)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    command, *options = argv
    if command == "analyse":
        args = ["analyse", "-c", config, video, "--out", tmp_path / "a.jsonl", *options]
    else:
        args = ["snapshot", "-c", config, "cam", "-o", tmp_path / "x.jpg", *options]
    result = _surveil(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.parametrize("name", ["x.txt", "x", "x.jpg.yaml", "x.mp4", "x.JPEG.gz"])
def test_snapshot_refuses_a_name_opencv_cannot_write_before_grabbing(tmp_path, name):
    result = _surveil("snapshot", "-c", _config(tmp_path), "cam", "-o", tmp_path / name)
    assert result.returncode == 2
    assert ".jpg" in result.stderr and "Traceback" not in result.stderr and "cv2" not in result.stderr
    assert "open_timeout_s" not in result.stderr, "the camera was opened before the name was checked"
    assert SECRET not in result.stderr


@pytest.mark.parametrize("name", ["x.jpg", "x.JPEG", "x.png", "x.bmp", "x.webp"])
def test_snapshot_accepts_the_picture_extensions(tmp_path, name):
    from surveil.tools.snapshot import check_output_path

    assert check_output_path(tmp_path / name) == tmp_path / name


@pytest.mark.parametrize("kind", KINDS)
def test_open_regular_file_never_blocks(tmp_path, kind):
    with pytest.raises(InputPathError, match="not a regular file"):
        open_regular_file(_special(tmp_path, kind)).close()


def test_open_regular_file_reads_a_file_blocking(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with open_regular_file(path) as handle:
        assert os.get_blocking(handle.fileno())
        assert handle.read() == b"abc"


def test_a_new_output_next_to_the_inputs_is_fine(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    check_output(tmp_path / "alerts.jsonl", [video])


@pytest.mark.alert_schema_exempt  # a deliberately broken alert: the boundary must refuse it
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_alert_json_never_holds_nan_or_infinity(value):
    alert = AlertUpdate(
        id="a",
        incident_id="i",
        phase="start",
        camera="cam",
        rule="r",
        rule_type="zone_intrusion",
        severity="warning",
        ts=value if value == value else 1.0,
        ts_mono=0.0,
        started_ts=0.0,
        details={"value": value},
    )
    with pytest.raises(ValueError, match="NaN or infinite"):
        alert.to_json(published_at=1.0)
