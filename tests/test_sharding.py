"""Issue 9: rendezvous sharding — assignment properties, pins, and where the shard comes from."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveil.config import Config, ConfigError, load_config
from surveil.service import sharding
from surveil.service.daemon import load_shard
from surveil.service.sharding import Shard, ShardError, apply, assign, default_instance_name, instance_name, owner

CAMERAS = [f"site{i // 40:02d}-cam{i:04d}" for i in range(1000)]


@pytest.mark.parametrize("instances", range(1, 17))
def test_every_camera_assigned_exactly_once(instances):
    table = assign(CAMERAS, instances)
    assert sorted(table) == list(range(instances))
    flat = [c for cameras in table.values() for c in cameras]
    assert sorted(flat) == sorted(CAMERAS)
    # and evenly enough: no instance gets more than 1.5x its fair share of 1,000 cameras
    assert max(len(c) for c in table.values()) <= 1.5 * len(CAMERAS) / instances


@pytest.mark.parametrize("instances", range(1, 16))
def test_growing_moves_only_the_new_instances_cameras(instances):
    before = {c: owner(c, instances) for c in CAMERAS}
    after = {c: owner(c, instances + 1) for c in CAMERAS}
    moved = [c for c in CAMERAS if before[c] != after[c]]
    assert all(after[c] == instances for c in moved), "a camera moved between two old instances"
    assert len(moved) <= 1.5 * len(CAMERAS) / (instances + 1)


@settings(max_examples=100, deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True), min_size=1, max_size=40, unique=True
    ),
    instances=st.integers(1, 16),
    data=st.data(),
)
def test_pins_honoured_and_hashing_deterministic(names, instances, data):
    pinned = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    pins = {name: data.draw(st.integers(0, instances - 1)) for name in pinned}
    table = assign(names, instances, pins)
    for name in names:
        expected = pins.get(name, owner(name, instances))
        assert name in table[expected]
        assert sum(name in cameras for cameras in table.values()) == 1
    # order-independent: the same camera goes to the same instance whatever else is in the list
    assert assign(list(reversed(names)), instances, pins) == {i: list(reversed(c)) for i, c in table.items()}


def test_weights_are_stable_across_processes():
    """SHA-256, not Python's salted hash(): another interpreter (another PYTHONHASHSEED) agrees."""
    code = "from surveil.service.sharding import assign; print(assign(['a', 'b', 'c', 'd', 'e', 'f'], 3))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {str(assign(["a", "b", "c", "d", "e", "f"], 3)) + "\n"}


def _config(**sharding_section) -> Config:
    cameras = [{"name": f"cam{i}", "url": "x.mp4"} for i in range(9)]
    return Config.model_validate({"cameras": cameras, "sharding": sharding_section})


def test_enabled_cameras_are_the_shards():
    owned = [{c.name for c in _config(instances=3, index=i, pin={"cam0": 2}).enabled_cameras} for i in range(3)]
    assert set().union(*owned) == {f"cam{i}" for i in range(9)}
    assert sum(len(o) for o in owned) == 9
    assert "cam0" in owned[2]
    assert {c.name for c in _config().enabled_cameras} == {f"cam{i}" for i in range(9)}


@pytest.mark.parametrize(
    "section, message",
    [
        ({"instances": 3, "index": 3}, "index must be 0-2"),
        ({"instances": 2, "pin": {"cam1": 2}}, "pinned to an index beyond 1: cam1"),
        ({"instances": 2, "pin": {"nocam": 0}}, "sharding.pin names no camera: nocam"),
        ({"instances": 0}, "greater than or equal to 1"),
        ({"instances": 1025}, "less than or equal to 1024"),
        ({"index": "first"}, "auto"),
        ({"replicas": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_section_rejects(section, message):
    with pytest.raises(ValueError, match=message):
        _config(**section)


# flag, SURVEIL_SHARD, config index, host name -> (index, instances) or the error's text
SOURCES = [
    ("1/3", None, 0, "host", (1, 3)),
    ("1/3", "2/3", 0, "host", (1, 3)),  # the flag wins over the environment
    (None, "2/3", 0, "host", (2, 3)),  # the environment wins over the config
    (None, " 2 / 4 ", 0, "host", (2, 4)),
    (None, None, 1, "host", (1, 3)),
    (None, None, "auto", "surveil-2", (2, 3)),
    (None, None, "auto", "surveil-0.surveil.cams.svc.cluster.local", (0, 3)),
    (None, None, "auto", "my-pod-name-1", (1, 3)),
    (None, None, "auto", "surveil", (0, 1)),  # one instance: no ordinal needed (instances=1 below)
    ("3/3", None, 0, "host", "--shard: the index must be 0-2"),
    ("0/0", None, 0, "host", "--shard: the number of instances must be 1-1024"),
    ("1", None, 0, "host", "--shard: expected INDEX/INSTANCES"),
    ("-1/3", None, 0, "host", "--shard: expected INDEX/INSTANCES"),
    ("a/b", None, 0, "host", "--shard: expected INDEX/INSTANCES"),
    (None, "1/3/5", 0, "host", "SURVEIL_SHARD: expected INDEX/INSTANCES"),
    (None, "5/3", 0, "host", "SURVEIL_SHARD: the index must be 0-2"),
    (None, None, "auto", "surveil", "does not end in -<ordinal>"),
    (None, None, "auto", "surveil-3", "the index must be 0-2"),
]


@pytest.mark.parametrize("flag, env, index, hostname, expected", SOURCES)
def test_where_the_shard_comes_from(flag, env, index, hostname, expected):
    environ = {} if env is None else {sharding.ENV_VAR: env}
    if isinstance(expected, tuple):
        instances = expected[1] if flag is None and env is None else 3
        assert sharding.resolve(instances, index, flag, environ, hostname) == Shard(*expected)
    else:
        with pytest.raises(ShardError, match=expected):
            sharding.resolve(3, index, flag, environ, hostname)


def test_apply_checks_pins_against_the_new_fleet():
    config = _config(instances=3, pin={"cam0": 2})
    assert sharding.apply(config, "1/3", {}).sharding.index == 1
    with pytest.raises(ShardError, match="pinned to an index beyond 1: cam0"):
        sharding.apply(config, "0/2", {})


def _write(tmp_path, sharding_yaml: str = "") -> str:
    path = tmp_path / "site.yaml"
    cameras = "".join(f"  - {{name: cam{i}, url: x.mp4}}\n" for i in range(9))
    path.write_text(f"cameras:\n{cameras}{sharding_yaml}")
    return str(path)


def test_load_shard_turns_a_bad_shard_into_a_config_error(tmp_path, monkeypatch):
    path = _write(tmp_path)
    monkeypatch.setenv(sharding.ENV_VAR, "7/3")
    with pytest.raises(ConfigError, match="SURVEIL_SHARD: the index must be 0-2"):
        load_shard(path)
    assert load_shard(path, "2/3").sharding.index == 2


def _surveil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "surveil", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--shard", "3/3"], None, "--shard: the index must be 0-2"),
        (["--shard", "x"], None, "--shard: expected INDEX/INSTANCES"),
        ([], {"SURVEIL_SHARD": "1/"}, "SURVEIL_SHARD: expected INDEX/INSTANCES"),
    ],
)
@pytest.mark.slow
def test_run_exits_2_on_a_malformed_shard(tmp_path, args, env, message):
    result = _surveil("run", "-c", _write(tmp_path), *args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


@pytest.mark.slow
def test_run_with_auto_index_and_no_ordinal_exits_2(tmp_path):
    result = _surveil("run", "-c", _write(tmp_path, "sharding: {instances: 3, index: auto}\n"))
    hostname = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    if hostname.rsplit("-", 1)[-1].isdigit():
        pytest.skip(f"this host's name {hostname} ends in an ordinal")
    assert result.returncode == 2
    assert "does not end in -<ordinal>" in result.stderr


def test_shards_command_prints_the_assignment(tmp_path):
    path = _write(tmp_path, "sharding: {instances: 2, pin: {cam4: 1}}\n")
    result = _surveil("shards", "-c", path, "--instances", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["0/3", "1/3", "2/3"]
    expected = assign([f"cam{i}" for i in range(9)], 3, {"cam4": 1})
    for line, (index, cameras) in zip(lines, expected.items()):
        assert line.startswith(f"{index}/3: {len(cameras)} camera(s): ")
    assert "cam4 (pinned)" in lines[1]
    bad = _surveil("shards", "-c", path, "--instances", "1")
    assert bad.returncode == 2 and "pinned beyond index 0: cam4" in bad.stderr


# ---------------------------------------------------------------- issue 18.5: the instance name carries the shard


@pytest.mark.parametrize(
    ("hostname", "shard", "expected"),
    [
        ("cam-host", None, "cam-host"),
        ("cam-host", Shard(0, 1), "cam-host"),
        ("cam-host", Shard(0, 3), "cam-host-shard0of3"),
        ("cam-host", Shard(2, 3), "cam-host-shard2of3"),
        ("odd/host #1", Shard(1, 2), "odd_host__1-shard1of2"),
        ("", None, "surveil"),
    ],
)
def test_default_instance_name(hostname, shard, expected):
    assert default_instance_name(hostname, shard) == expected


def _site(tmp_path, extra=""):
    return load_config(_write(tmp_path, extra))


@pytest.mark.parametrize(
    ("extra", "flag", "expected"),
    [
        ("", None, "box"),
        ("sharding: {instances: 3, index: 1}\n", None, "box-shard1of3"),
        ("", "2/4", "box-shard2of4"),
        ("mqtt: {instance: mine}\nsharding: {instances: 3, index: 1}\n", None, "mine"),
    ],
)
def test_instance_name_of_a_config(tmp_path, extra, flag, expected):
    config = apply(_site(tmp_path, extra), flag, environ={}, hostname="box")
    assert instance_name(config, hostname="box") == expected


def test_two_shards_of_one_config_on_one_host_have_distinct_names(tmp_path):
    config = _site(tmp_path, "sharding: {instances: 2}\n")
    names = {instance_name(apply(config, f"{i}/2", environ={}), hostname="box") for i in range(2)}
    assert names == {"box-shard0of2", "box-shard1of2"}
