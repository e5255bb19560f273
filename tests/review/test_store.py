"""ReviewStore: records survive a restart, retention by age and size, a refused write is counted."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from surveil.review.store import CLIP, SNAPSHOT, ReviewStore, safe_id


class Events:
    def __init__(self) -> None:
        self.usages: list[tuple[int, int, float]] = []
        self.deletions: list[tuple[str, int]] = []
        self.failures: list[str] = []

    def usage(self, total_bytes, incidents, oldest_age_s):
        self.usages.append((total_bytes, incidents, oldest_age_s))

    def deleted(self, reason, count):
        self.deletions.append((reason, count))

    def write_failed(self, what):
        self.failures.append(what)

    def clip(self, result, clip_s=0.0, cpu_s=0.0):
        pass

    def buffered(self, camera, total_bytes):
        pass


def _record(incident_id: str, started: float, phase: str = "end", camera: str = "gate", rule: str = "door") -> dict:
    return {"incident_id": incident_id, "camera": camera, "rule": rule, "phase": phase, "started_ts": started,
            "updated_ts": started + 1}  # fmt: skip


def test_records_and_files_survive_a_restart(tmp_path):
    store = ReviewStore(tmp_path, 3600, 10**9, Events())
    store.put(_record("a", 100.0))
    assert store.write("a", SNAPSHOT, b"jpeg")
    again = ReviewStore(tmp_path, 3600, 10**9, Events())
    assert again.get("a") == _record("a", 100.0)
    assert again.file("a", SNAPSHOT) == tmp_path / "a" / SNAPSHOT
    assert again.file("a", CLIP) is None


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["c", "b", "a"]),
        ({"camera": "yard"}, ["c"]),
        ({"rule": "door"}, ["b", "a"]),
        ({"phase": "start"}, ["b"]),
        ({"camera": "gate", "phase": "end"}, ["a"]),
    ],
)
def test_incidents_newest_first_and_filtered(tmp_path, filters, expected):
    store = ReviewStore(tmp_path, 3600, 10**9, Events())
    store.put(_record("a", 1.0))
    store.put(_record("b", 2.0, phase="start"))
    store.put(_record("c", 3.0, camera="yard", rule="fence"))
    assert [r["incident_id"] for r in store.incidents(**filters)] == expected


def test_retention_by_age_then_size_keeps_open_incidents(tmp_path):
    events = Events()
    store = ReviewStore(tmp_path, max_age_s=600, max_bytes=2500, events=events)
    for name, started, phase in [
        ("old", 0.0, "end"),
        ("mid", 500.0, "end"),
        ("new", 900.0, "end"),
        ("open", 10.0, "start"),
    ]:
        recent = {"updated_ts": 990.0} if name == "open" else {}  # started long ago, still sending updates
        store.put({**_record(name, started, phase), **recent})
        store.write(name, SNAPSHOT, b"x" * 1000)
    store.retain(now=1000.0)
    # "old" is past 600 s; then the total (3 x ~1,1xx bytes) is above 2,500: "mid" goes; "open" is still going
    assert sorted(r["incident_id"] for r in store.incidents()) == ["new", "open"]
    assert events.deletions == [("age", 1), ("size", 1)]
    assert not (tmp_path / "old").exists() and not (tmp_path / "mid").exists()
    total, count, oldest = events.usages[-1]
    assert count == 2 and total == store.total_bytes() <= 2500 and oldest == 990.0


def test_a_full_disk_is_counted_not_raised(tmp_path, monkeypatch):
    events = Events()
    store = ReviewStore(tmp_path, 3600, 10**9, events)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    assert store.put(_record("a", 1.0)) is False
    assert store.write("a", SNAPSHOT, b"jpeg") is False
    assert events.failures == ["incident.json", "snapshot.jpg"]
    assert store.get("a") is not None  # still listed from memory
    assert not list((tmp_path / "a").glob(".*part"))


@pytest.mark.parametrize(
    ("incident_id", "ok"),
    [("0b7c2f4e-8a51-4f0e-b1b9-5d3c2e7a9f60", True), ("..", False), ("a/b", False), ("", False), (".hidden", False)],
)
def test_safe_id(incident_id, ok):
    assert safe_id(incident_id) is ok


def test_an_incident_a_crash_left_open_ages_out(tmp_path):
    store = ReviewStore(tmp_path, max_age_s=600, max_bytes=10**9, events=Events())
    store.put(_record("stuck", 0.0, phase="update"))  # no message since 1 s
    store.retain(now=1000.0)
    assert store.incidents() == []


@pytest.mark.parametrize(
    ("phase", "clip", "clip_file", "expected"),
    [
        ("end", "pending", False, "none"),  # the run stopped before encoding it
        ("end", "recording", True, "ready"),
        ("end", "failed", False, "failed"),
        ("start", "recording", False, "recording"),  # a reload carries it on
    ],
)
def test_a_restart_settles_clips_the_previous_run_left_waiting(tmp_path, phase, clip, clip_file, expected):
    store = ReviewStore(tmp_path, 3600, 10**9, Events())
    store.put({**_record("a", 1.0, phase), "clip": clip})
    if clip_file:
        store.write("a", CLIP, b"mp4")
    (tmp_path / "a" / "clip.mp4.part").write_bytes(b"half")
    again = ReviewStore(tmp_path, 3600, 10**9, Events())
    assert again.get("a")["clip"] == expected
    assert not (tmp_path / "a" / "clip.mp4.part").exists()
