"""JsonlAlertSink: one JSON object per line."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from surveil.sinks.jsonl import JsonlAlertSink
from surveil.types import ALERT_SCHEMA_VERSION
from tests.support.alerts import make_alert


def test_writes_one_line_per_alert_and_creates_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "alerts.jsonl"
    sink = JsonlAlertSink(path)
    alerts = [make_alert(i) for i in range(3)]
    for alert in alerts:
        sink.publish_alert(alert)
    # flushed per line: readable before close
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [a.id for a in alerts]
    first = json.loads(lines[0])
    assert first["schema_version"] == ALERT_SCHEMA_VERSION
    assert first["camera"] == "cam1" and first["rule"] == "door" and first["subjects"][0]["track_id"] == 0
    sink.close()
    sink.close()
    with pytest.raises(RuntimeError):
        sink.publish_alert(alerts[0])


def test_appends_to_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with JsonlAlertSink(path) as sink:
        sink.publish_alert(make_alert(1))
    with JsonlAlertSink(path) as sink:
        sink.publish_alert(make_alert(2))
    assert len(path.read_text().splitlines()) == 2


def test_thread_safe_lines_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    with JsonlAlertSink(path) as sink:

        def writer(n: int) -> None:
            for i in range(100):
                sink.publish_alert(make_alert(i, camera=f"cam{n}"))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 400
    for n in range(4):
        assert [r["subjects"][0]["track_id"] for r in records if r["camera"] == f"cam{n}"] == list(range(100))
