"""The operators' dashboard and alert rules, tested against the real thing.

- `promtool check rules` and `promtool test rules` pass on docs/prometheus/ (Debian's `prometheus`).
- A real Prometheus server (1 s scrapes, its own temporary storage) scrapes a running daemon (real
  clip, scripted detector, real mosquitto); every expression of docs/grafana/surveil.json and of
  docs/prometheus/surveil-rules.yml is evaluated through its HTTP API and must return data. Alert
  conditions are evaluated as `bool` comparisons (every series there, whether or not it fires), so a
  misspelt metric or a label that is never exported fails the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from surveil.config import Config
from tests.service.test_end_to_end import RunningDaemon
from tests.support.polling import free_port, wait_until
from tests.support.scene import RIGHT_HALF, BlobDetector, make_scene_clip

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "docs" / "prometheus" / "surveil-rules.yml"
RULE_TESTS = REPO / "docs" / "prometheus" / "surveil-rules.test.yml"
DASHBOARD = REPO / "docs" / "grafana" / "surveil.json"
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool)\s*")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


def dashboard_expressions() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [
        (rule["alert"], COMPARISON.sub(lambda m: f"{m.group(1)} bool ", rule["expr"]))
        for g in groups
        for rule in g["rules"]
    ]


def test_promtool_check_and_unit_test_the_rules() -> None:
    promtool = tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, cwd=RULE_TESTS.parent
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in (
        "cameras up",
        "processed vs captured",
        "dropped",
        "inference",
        "alert latency",
        "alerts started by rule",
        "incidents open",
        "line crossings",
        "spool",
        "mqtt connected",
    ):
        assert needed in titles, needed
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"])


def daemon_config(clip: Path, broker, tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "cameras": [
                {
                    "name": "scene",
                    "url": str(clip),
                    "realtime": True,
                    "loop": True,
                    "fps_limit": 10,
                    "zones": [{"name": "right_half", "polygon": RIGHT_HALF}],
                    "lines": [
                        {"name": "middle", "a": [0.5, 0.0], "b": [0.5, 1.0], "forward": "east", "backward": "west"}
                    ],
                    "rules": [
                        {"id": "intrusion", "type": "zone_intrusion", "zone": "right_half", "classes": ["person"]},
                        {"id": "crossing", "type": "line_crossing", "line": "middle"},
                        {"id": "occupancy", "type": "zone_occupancy", "zone": "right_half"},
                    ],
                }
            ],
            "detector": {"batch_size": 2, "max_wait_ms": 10},
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "instance": "prom",
                "topic_prefix": "prom",
                "spool_path": str(tmp_path / "spool.sqlite3"),
            },
            "metrics": {"listen": "127.0.0.1:0"},
        }
    )


def query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.mark.slow
def test_every_dashboard_and_rule_expression_returns_data_from_a_live_daemon(tmp_path, mosquitto_broker) -> None:
    prometheus = tool("prometheus")
    clip = make_scene_clip(tmp_path / "scene.mp4")
    with RunningDaemon(daemon_config(clip.path, mosquitto_broker, tmp_path), BlobDetector()) as running:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {
                            "job_name": "surveil",
                            "static_configs": [{"targets": [f"127.0.0.1:{running.daemon.metrics_port}"]}],
                        }
                    ],
                }
            )
        )
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "w"),  # noqa: SIM115
        )
        try:

            def scraped() -> bool:
                try:
                    return (
                        len(query(port, "surveil_frames_processed_total")) > 0
                        and len(query(port, "rate(surveil_frames_processed_total[1m]) > 0")) > 0
                    )
                except OSError:
                    return False

            assert wait_until(scraped, 60, interval=0.5), (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(4)  # a few more scrapes for rate() and deriv-style windows
            expressions = dashboard_expressions() + rule_expressions()
            empty = [(name, expr) for name, expr in expressions if not query(port, expr)]
            rules = query(
                port, "ALERTS"
            )  # the rules loaded and evaluated (none should fire on a healthy daemon but spool ones)
        finally:
            server.terminate()
            server.wait(10)
    assert not empty, "expressions that return nothing:\n" + "\n".join(f"{name}: {expr}" for name, expr in empty)
    firing = {r["metric"]["alertname"] for r in rules if r["metric"].get("alertstate") == "firing"}
    assert not firing, firing
