"""AlertSpool: a durable, ordered SQLite queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from surveil.sinks.spool import AlertSpool


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "spool.sqlite3"


def test_append_peek_ack_in_order(spool_path: Path) -> None:
    with AlertSpool(spool_path) as spool:
        ids = [spool.append(f"t/{i}", f"p{i}".encode(), qos=1, retain=(i == 2)) for i in range(5)]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert len(spool) == 5
        peeked = spool.peek(3)
        assert [m.id for m in peeked] == ids[:3]
        assert [m.topic for m in peeked] == ["t/0", "t/1", "t/2"]
        assert peeked[1].payload == b"p1" and peeked[1].qos == 1
        assert [m.retain for m in peeked] == [False, False, True]
        assert len(spool) == 5, "peek must not remove anything"

        spool.ack(ids[1])
        spool.ack(ids[1])  # acking twice is harmless
        assert len(spool) == 4
        assert [m.id for m in spool.peek(10)] == [ids[0], *ids[2:]]
        assert [m.id for m in spool.peek(10, after=ids[2])] == ids[3:]
        assert spool.ack_many(ids) == 4
        assert len(spool) == 0 and spool.peek(10) == []


def test_ids_are_never_reused(spool_path: Path) -> None:
    with AlertSpool(spool_path) as spool:
        first = spool.append("t", b"a", 1)
        spool.ack(first)
        assert spool.append("t", b"b", 1) > first


def test_survives_reopen(spool_path: Path) -> None:
    spool = AlertSpool(spool_path)
    ids = [spool.append("t", str(i).encode(), qos=1) for i in range(10)]
    spool.ack_many(ids[:4])
    spool.close()

    with AlertSpool(spool_path) as reopened:
        assert len(reopened) == 6
        assert [m.payload for m in reopened.peek(100)] == [str(i).encode() for i in range(4, 10)]
        assert reopened.append("t", b"new", 1) > ids[-1]


def test_over_max_items_drops_oldest_and_counts(spool_path: Path) -> None:
    with AlertSpool(spool_path, max_items=5) as spool:
        for i in range(8):
            spool.append("t", str(i).encode(), qos=1)
        assert len(spool) == 5
        assert spool.dropped == 3
        assert [m.payload for m in spool.peek(10)] == [b"3", b"4", b"5", b"6", b"7"]


def test_concurrent_appends_and_acks(spool_path: Path) -> None:
    with AlertSpool(spool_path) as spool:

        def writer(n: int) -> None:
            for i in range(200):
                spool.append(f"w{n}", str(i).encode(), qos=1)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(spool) == 800
        rows = spool.peek(1000)
        for n in range(4):  # each writer's messages keep their order
            assert [m.payload for m in rows if m.topic == f"w{n}"] == [str(i).encode() for i in range(200)]
        spool.ack_many(m.id for m in rows)
        assert len(spool) == 0


def test_closed_spool_refuses(spool_path: Path) -> None:
    spool = AlertSpool(spool_path)
    spool.close()
    spool.close()
    with pytest.raises(RuntimeError):
        spool.append("t", b"x", 1)


def test_rejects_bad_qos(spool_path: Path) -> None:
    with AlertSpool(spool_path) as spool, pytest.raises(ValueError):
        spool.append("t", b"x", 3)
