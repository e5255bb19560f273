"""Issue 7, class 1: any config input gives exit 0 or 2 with a message, never a traceback: in
`check-config`, at `surveil run`, and on reload (SIGHUP with a bad file is logged and ignored).

One funnel: load_config turns every problem with the file into a ConfigError, read_checkpoint
every problem with the model file into a ModelLoadError; the CLI prints them and exits 2."""

from __future__ import annotations

import signal
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from tests.support.polling import wait_until
from tests.support.surveil_cli import SHIPPED_MODEL, check_config, run_surveil, start_surveil, stop_surveil

GOOD = b"cameras:\n  - name: a\n    url: x.mp4\n"

# (id, file bytes, exit status, fragments of the message)
INPUTS = [
    ("non-utf8-byte", b"cameras:\n  - name: a\xff\n    url: x.mp4\n", 2, ["line 2, column 12", "not UTF-8", "0xff"]),
    ("latin1-comment", b"# Kamera \xe4u\xdferer Zaun\n" + GOOD, 2, ["line 1", "not UTF-8"]),
    ("utf16-file", GOOD.decode().encode("utf-16"), 2, ["not UTF-8"]),
    ("utf8-bom", b"\xef\xbb\xbf" + GOOD, 0, ["OK"]),
    ("zero-bytes", b"", 2, ["YAML mapping"]),
    ("only-comments", b"# nothing here\n", 2, ["YAML mapping"]),
    ("nul-byte", b"cameras:\n  - name: a\x00\n", 2, ["not valid YAML"]),
    ("control-chars", b"cameras: \x07\x1b[31m\n", 2, ["not valid YAML"]),
    ("binary-garbage", bytes(range(256)) * 4, 2, ["not UTF-8"]),
    ("tab-indent", b"cameras:\n\t- name: a\n", 2, ["line 2", "not valid YAML"]),
    ("top-level-scalar", b"42\n", 2, ["YAML mapping"]),
    ("top-level-list", b"- a\n- b\n", 2, ["YAML mapping"]),
    ("unhashable-key", b"? [a, b]\n: c\n", 2, ["line 1", "unhashable"]),
    ("python-tag", b"cameras: !!python/object/apply:os.system [echo hi]\n", 2, ["line 1", "not valid YAML"]),
    ("unknown-tag", b"cameras: !camera {name: a}\n", 2, ["line 1", "not valid YAML"]),
    ("bad-merge", b"cameras:\n  - <<: 5\n    name: a\n", 2, ["not valid YAML"]),
    ("undefined-alias", b"cameras: *nowhere\n", 2, ["not valid YAML"]),
    ("duplicate-anchor-use", b"a: &x 1\ncameras: [*x]\n", 2, ["unknown option"]),
    (
        "huge-integer",
        b"cameras:\n  - name: a\n    url: x.mp4\n    fps_limit: " + b"9" * 5000 + b"\n",
        2,
        ["cannot be read", "digits"],
    ),
    ("float-overflow", b"cameras:\n  - name: a\n    url: x.mp4\n    fps_limit: 1e400\n", 2, ["fps_limit", "finite"]),
    ("date-as-url", b"cameras:\n  - name: a\n    url: 2024-01-01\n", 2, ["line 3", "cameras[0].url"]),
    (
        "binary-as-name",
        b"cameras:\n  - name: !!binary aGVsbG8=\n    url: x.mp4\n",
        0,
        ["OK"],
    ),  # bytes b"hello": a valid name
    ("mapping-for-list", b"cameras: {name: a, url: x.mp4}\n", 2, ["line 1", "cameras", "list"]),
    ("list-for-mapping", b"cameras:\n  - [a, x.mp4]\n", 2, ["line 2", "cameras[0]"]),
    ("null-everywhere", b"cameras:\n  - name: ~\n    url: ~\n    zones: ~\n", 2, ["cameras[0].name", "cameras[0].url"]),
    ("unicode-name", "cameras:\n  - name: Kämera\n    url: x.mp4\n".encode(), 2, ["cameras[0].name", "pattern"]),
    (
        "emoji-everywhere",
        "cameras:\n  - name: a\n    url: 📷.mp4\n    zones: [{name: 🚪, polygon: [[0,0],[1,0],[1,1]]}]\n".encode(),
        2,
        ["zones[0].name"],
    ),
    ("very-long-value", b"cameras:\n  - name: a\n    url: " + b"x" * 200_000 + b"\n", 2, ["cameras[0].url", "4096"]),
    ("deep-flow", b"cameras: " + b"[" * 5000 + b"]" * 5000 + b"\n", 2, ["line 1", "nest"]),
    ("deep-block", b"".join(b"  " * i + b"k:\n" for i in range(200)), 2, ["line 33", "nested more than 32"]),
    ("windows-newlines", GOOD.replace(b"\n", b"\r\n"), 0, ["OK"]),
]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / f"{name}.yaml"
    path.write_bytes(data)
    return path


def test_every_input_exits_0_or_2_with_a_message(tmp_path):
    """All files through one real `check-config` run; each gets its own verdict and message."""
    paths = {case_id: _write(tmp_path, case_id, data) for case_id, data, _, _ in INPUTS}
    (tmp_path / "x.mp4").touch()  # check-config requires a file camera's video to exist
    paths["a-folder"] = tmp_path / "folder.yaml"
    paths["a-folder"].mkdir()
    paths["missing"] = tmp_path / "missing.yaml"
    result = check_config(*paths.values())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    for case_id, _data, status, fragments in [
        *INPUTS,
        ("a-folder", b"", 2, ["cannot read"]),
        ("missing", b"", 2, ["cannot read"]),
    ]:
        message = result.message_for(paths[case_id])
        assert message, f"{case_id}: no message in\n{result.stderr}"
        assert ("OK" in message) == (status == 0), f"{case_id}: {message}"
        for fragment in fragments:
            assert fragment in message, f"{case_id}: {fragment!r} not in {message!r}"


@pytest.mark.parametrize(
    ("case_id", "data", "status", "fragments"),
    [c for c in INPUTS if c[0] in ("non-utf8-byte", "deep-flow", "zero-bytes")],
)
@pytest.mark.slow
def test_run_exits_2_on_the_same_inputs(tmp_path, case_id, data, status, fragments):
    result = run_surveil(_write(tmp_path, case_id, data))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# ---------------------------------------------------------------- checkpoints (detector.weights)


def _zip_not_torch(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")


def _truncated_checkpoint(path: Path) -> None:
    data = SHIPPED_MODEL.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _dict_without_labels(path: Path) -> None:
    torch.save({"format": "surveil-detector", "format_version": 1, "architecture": "fasterrcnn_mobilenet_v2_fpn"}, path)


def _wrong_tensors(path: Path) -> None:
    torch.save(
        {
            "format": "surveil-detector",
            "format_version": 1,
            "architecture": "fasterrcnn_mobilenet_v2_fpn",
            "labels": ["__background__", "person"],
            "state_dict": {"backbone.body.0.0.weight": torch.zeros(3)},
        },
        path,
    )


CHECKPOINTS = [
    ("zero-bytes", lambda p: p.write_bytes(b""), ["is empty (0 bytes)"]),
    ("text-file", lambda p: p.write_text("101 this is a text file\n"), ["is not a PyTorch checkpoint", "a text file"]),
    (
        "random-bytes",
        lambda p: p.write_bytes(bytes(range(256)) * 64),
        ["is not a PyTorch checkpoint", "not a zip archive"],
    ),
    ("truncated", _truncated_checkpoint, ["is not a PyTorch checkpoint", "truncated"]),
    ("zip-not-torch", _zip_not_torch, ["cannot be loaded safely"]),
    ("dict-without-labels", _dict_without_labels, ["is damaged", "labels"]),
    ("wrong-tensors", _wrong_tensors, ["does not fit architecture"]),
]


@pytest.mark.parametrize(("case_id", "make", "fragments"), CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
@pytest.mark.slow
def test_damaged_checkpoint_is_named_and_exits_2(tmp_path, case_id, make, fragments):
    weights = tmp_path / "model.pt"
    make(weights)
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"name": "a", "url": "x.mp4"}],
                "detector": {"weights": str(weights), "device": "cpu"},
                "mqtt": {"enabled": False},
                "metrics": {"enabled": False},
                "web": {"enabled": False},
            }
        )
    )
    result = run_surveil(config, timeout=180)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(weights) in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# ---------------------------------------------------------------- reload


@pytest.mark.slow
def test_sighup_with_any_bad_file_is_logged_and_ignored(tmp_path):
    """The daemon keeps running through a reload of every bad input above, and still reloads a good file."""
    config = tmp_path / "site.yaml"

    def good(name: str) -> bytes:
        return yaml.safe_dump(
            {
                "cameras": [{"name": name, "url": str(tmp_path / "missing.mp4")}],
                "detector": {"weights": str(SHIPPED_MODEL), "device": "cpu", "threads": 1},
                "mqtt": {"enabled": False},
                "metrics": {"enabled": False},
                "web": {"enabled": False},
            }
        ).encode()

    config.write_bytes(good("a"))
    log_path = tmp_path / "daemon.log"
    process = start_surveil(config, log_path=log_path)
    try:
        assert wait_until(lambda: "surveil running" in log_path.read_text(), 120), log_path.read_text()
        bad = [c for c in INPUTS if c[2] == 2]
        for case_id, data, _status, _fragments in bad:
            config.write_bytes(data)
            before = log_path.read_text().count("reload rejected")
            process.send_signal(signal.SIGHUP)
            assert wait_until(lambda: log_path.read_text().count("reload rejected") > before, 20), (  # noqa: B023
                f"{case_id}: {log_path.read_text()[-2000:]}"
            )
            assert process.poll() is None, f"{case_id}: the daemon exited"
        config.write_bytes(good("b"))
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload done" in log_path.read_text(), 60)
        time.sleep(0.5)
        assert process.poll() is None
    finally:
        status = stop_surveil(process)
    text = log_path.read_text()
    assert status == 0, text[-3000:]
    assert "Traceback" not in text
