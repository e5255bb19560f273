"""Issue 7, class 2: validation is bounded in time and size. Any file up to 1 MB validates (or is
rejected with a message) in under a second, and a reload of a hostile file does not hold up the
systemd watchdog.

Mechanism (surveil/config.py, "loading"): a 1 MB cap on the file; YAML values and nesting are
counted on the event stream before anything is built (MAX_YAML_NODES, MAX_YAML_DEPTH); the
composed graph's alias expansion is counted with memoisation before construction; pydantic
caps cameras, zones, lines, rules and polygon vertices; at most 20 errors are formatted."""

from __future__ import annotations

import itertools
import math
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from surveil.config import MAX_CAMERAS, MAX_CONFIG_BYTES, MAX_YAML_NODES, ConfigError, load_config
from tests.support.polling import wait_until
from tests.support.surveil_cli import SHIPPED_MODEL, NotifyListener, check_config, start_surveil, stop_surveil


def _circle(n: int, r: float = 0.4) -> list[list[float]]:
    return [
        [round(0.5 + r * math.cos(2 * math.pi * i / n), 6), round(0.5 + r * math.sin(2 * math.pi * i / n), 6)]
        for i in range(n)
    ]


def _flow(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()


def _camera(name: str, zones: list[dict] | str = "[]") -> str:
    zones_text = zones if isinstance(zones, str) else _flow(zones)
    return f"  - name: {name}\n    url: x.mp4\n    zones: {zones_text}\n"


def polygon_10000() -> str:
    return "cameras:\n" + _camera("a", [{"name": "z", "polygon": _circle(10_000)}])


def alias_bomb() -> str:
    """~19 KB: a 256-point polygon, zones that repeat it 64 times, 256 cameras that repeat the zones."""
    lines = [f"p: &p {_flow(_circle(256))}", "zs: &zs ["]
    lines += [f"  {{name: z{i}, polygon: *p}}," for i in range(64)]
    lines += ["]", "cameras:"]
    lines += [f"  - {{name: c{i}, url: x.mp4, zones: *zs}}" for i in range(256)]
    return "\n".join(lines) + "\n"


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 10)]
    return "\n".join(lines) + "\ncameras: *a9\n"


def alias_chain() -> str:
    """Each level nests the previous one: deep through aliases, shallow in the text."""
    lines = ["l0: &l0 [1]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, 200)]
    return "\n".join(lines) + "\ncameras: *l199\n"


def deep_block() -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(500))


def flat_numbers_1mb() -> str:
    head = "cameras: [{name: a, url: x.mp4}]\nx: ["
    return head + ",".join(["0"] * ((MAX_CONFIG_BYTES - len(head) - 2) // 2)) + "]\n"


def long_string_1mb() -> str:
    head = "cameras:\n  - name: a\n    url: "
    return head + "x" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n"


def too_large() -> str:
    return "cameras: [{name: a, url: x.mp4}]\n# " + "x" * MAX_CONFIG_BYTES + "\n"


def many_cameras() -> str:
    return "cameras:\n" + "".join(f"  - {{name: c{i}, url: x.mp4}}\n" for i in range(MAX_CAMERAS + 1))


def many_zones() -> str:
    zones = [{"name": f"z{i}", "polygon": [[0, 0], [1, 0], [1, 1]]} for i in range(65)]
    return "cameras:\n" + _camera("a", zones)


def many_errors() -> str:
    """Thousands of out-of-range points: every one an error, 20 formatted."""
    polygons = [{"name": f"z{i}", "polygon": [[2, 2]] * 256} for i in range(20)]
    return "cameras:\n" + _camera("a", polygons)


def largest_valid() -> str:
    """Close to the value budget and valid: 60 cameras with a 256-point zone each (every self-intersection check runs)."""
    return "cameras:\n" + "".join(_camera(f"c{i}", [{"name": "z", "polygon": _circle(256)}]) for i in range(60))


# (id, generator, exit status, fragments)
HOSTILE = [
    ("polygon-10000-points", polygon_10000, 2, ["at most 256"]),
    ("alias-bomb-19kb", alias_bomb, 2, ["expands (through aliases) to more than"]),
    ("billion-laughs", billion_laughs, 2, ["expands (through aliases) to more than"]),
    ("alias-chain-200-deep", alias_chain, 2, ["aliases nest more than"]),
    ("deep-block-nesting", deep_block, 2, ["nested more than"]),
    ("flat-numbers-1mb", flat_numbers_1mb, 2, [f"more than {MAX_YAML_NODES:,} YAML values"]),
    ("long-string-1mb", long_string_1mb, 2, ["cameras[0].url", "4096"]),
    ("over-1mb", too_large, 2, ["larger than 1,000,000 bytes"]),
    ("257-cameras", many_cameras, 2, ["cameras", f"at most {MAX_CAMERAS}"]),
    ("65-zones", many_zones, 2, ["zones", "at most 64"]),
    ("thousands-of-errors", many_errors, 2, ["... and", "more"]),
    ("largest-valid", largest_valid, 0, ["OK (60 camera(s)"]),
]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "x.mp4").touch()  # check-config requires a file camera's video to exist
    files = {}
    for case_id, make, _, _ in HOSTILE:
        files[case_id] = folder / f"{case_id}.yaml"
        files[case_id].write_text(make())
    return files


def _load_and_count(path: Path) -> tuple[int, int]:
    """(exit status, function calls made) of loading ``path``: the calls count the work done, the
    same on any machine however busy (a wall-clock or CPU-time bound would not be)."""
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        load_config(path, environ={})
        outcome = 0
    except ConfigError:
        outcome = 2
    finally:
        sys.setprofile(None)
    return outcome, calls


@pytest.fixture(scope="module")
def largest_valid_work(hostile_files) -> int:
    """The work budget: what the largest valid config costs."""
    outcome, calls = _load_and_count(hostile_files["largest-valid"])
    assert outcome == 0
    return calls


@pytest.mark.parametrize(("case_id", "make", "status", "fragments"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_no_file_up_to_1mb_costs_more_than_the_largest_valid_one(
    hostile_files, largest_valid_work, case_id, make, status, fragments
):
    path = hostile_files[case_id]
    assert path.stat().st_size <= MAX_CONFIG_BYTES + 100_000
    if case_id == "alias-bomb-19kb":
        assert 15_000 < path.stat().st_size < 25_000
    outcome, calls = _load_and_count(path)
    assert outcome == status
    assert calls <= 1.1 * largest_valid_work, (
        f"{case_id}: {calls:,} calls, the largest valid file {largest_valid_work:,}"
    )


def test_valid_configs_cost_in_proportion_to_their_size(tmp_path, largest_valid_work):
    """Half the cameras, about half the work: validation is linear in what the file holds."""
    half = tmp_path / "half.yaml"
    half.write_text(
        "cameras:\n" + "".join(_camera(f"c{i}", [{"name": "z", "polygon": _circle(256)}]) for i in range(30))
    )
    outcome, calls = _load_and_count(half)
    assert outcome == 0
    assert largest_valid_work <= 2.2 * calls, f"60 cameras cost {largest_valid_work:,} calls, 30 cost {calls:,}"


def test_check_config_on_every_hostile_file(hostile_files):
    """The real command, all files in one run: right verdict, a message naming the problem, no traceback."""
    result = check_config(*hostile_files.values())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for case_id, _make, status, fragments in HOSTILE:
        message = result.message_for(hostile_files[case_id])
        assert ("OK" in message) == (status == 0), f"{case_id}: {message[:500]}"
        for fragment in fragments:
            assert fragment in message, f"{case_id}: {fragment!r} not in {message[:800]!r}"
        assert len(message) < 5000, f"{case_id}: a {len(message)}-character message"


@pytest.mark.slow
def test_reload_of_hostile_files_keeps_the_watchdog_fed(tmp_path, hostile_files):
    """WatchdogSec=2 (pings every second): no gap over 2 s while every hostile file is reloaded."""
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"name": "a", "url": str(tmp_path / "missing.mp4")}],
                "detector": {"weights": str(SHIPPED_MODEL), "device": "cpu", "threads": 1},
                "mqtt": {"enabled": False},
                "metrics": {"enabled": False},
                "web": {"enabled": False},
            }
        )
    )
    listener = NotifyListener(tmp_path / "notify.sock")
    log_path = tmp_path / "daemon.log"
    process = start_surveil(
        config, env={"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "2000000"}, log_path=log_path
    )
    try:
        assert listener.wait_for("READY=1", 120), log_path.read_text()
        assert listener.wait_for("WATCHDOG=1", 5)
        started = time.monotonic()
        for case_id, _make, status, _fragments in HOSTILE:
            if status == 0:
                continue
            config.write_bytes(hostile_files[case_id].read_bytes())
            process.send_signal(signal.SIGHUP)
            listener.poll(1.0)
        listener.poll(2.0)
        assert process.poll() is None, log_path.read_text()[-3000:]
        pings = [t for t in listener.times("WATCHDOG=1") if t >= started - 1.0]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert pings and max(gaps) < 2.0, f"watchdog gaps {gaps}"
        # signals that arrive within one supervision tick make one reload (of the newest file)
        assert wait_until(
            lambda: log_path.read_text().count("reload rejected") == log_path.read_text().count("reloading"), 10
        )
        assert log_path.read_text().count("reload rejected") >= len(HOSTILE) // 2
        assert "reload done" not in log_path.read_text()
    finally:
        status = stop_surveil(process)
        listener.close()
    assert status == 0
    assert "Traceback" not in log_path.read_text()
