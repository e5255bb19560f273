"""The operators' dashboard and alert rules, tested against the real thing.

- `promtool check rules` and `promtool test rules` pass on docs/prometheus/ (Debian's `prometheus`).
- A real Prometheus server (1 s scrapes, its own temporary storage) scrapes a running daemon (real
  clip, scripted detector, real mosquitto); every expression of docs/grafana/surveil.json and of
  docs/prometheus/surveil-rules.yml is evaluated through its HTTP API and must return data. Alert
  conditions are evaluated as `bool` comparisons (every series there, whether or not it fires), so a
  misspelt metric or a label that is never exported fails the test. Dashboard variables take
  Grafana's "All" value.
- The shipped rules (only their `for:` cut to 2 s) on a live Prometheus scraping a daemon whose
  10 fps camera, without fps_limit, meets a detector that manages 1 frame a second and no broker:
  the processed-fps, drop-ratio and MQTT rules reach `firing` (GET /api/v1/alerts).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
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
    every = {"$job": ".+", "$instance": ".+", "$camera": ".+"}  # Grafana's "All" (allValue)
    return [
        (
            panel["title"],
            COMPARISON.sub(
                lambda m: f"{m.group(1)} bool ", re.sub(r"\$\w+", lambda v: every[v.group(0)], target["expr"])
            ),
        )
        for panel in panels
        for target in panel["targets"]
    ]


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
    for needed in ("zone occupancy", "stage errors", "detector ready", "process: cpu", "process: resident memory"):
        assert needed in titles, needed


def test_dashboard_is_scoped_by_job_instance_and_camera():
    """With several replicas (and Prometheus's own process in the same Prometheus) every panel must
    say whose series it plots: each selector carries the variables, legends name the instance."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["job", "instance", "camera"]
    assert all(v["includeAll"] and v["allValue"] == ".+" for v in variables.values())
    assert "surveil_build_info" in variables["job"]["query"]["query"]  # lists surveil targets only
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr, legend = target["expr"], target["legendFormat"]
            selectors = re.findall(r"\b(?:surveil|process)_\w+(\{[^}]*\})?", expr)
            assert selectors and all('job=~"$job"' in sel and 'instance=~"$instance"' in sel for sel in selectors), expr
            if "camera" in legend:
                assert all('camera=~"$camera"' in sel for sel in selectors), expr
            assert "{{instance}}" in legend or panel["title"] == "Cameras up", (panel["title"], legend)
    down = next(p for p in dashboard["panels"] if p["title"].startswith("Why cameras are down"))
    assert down["targets"][0]["expr"].endswith("== 1")  # only the active reason, not every reason at 0


def daemon_config(clip: Path, broker, tmp_path: Path, fps_limit: int | None = 10, batch_size: int = 2) -> Config:
    host, port = (broker.host, broker.port) if broker is not None else ("127.0.0.1", free_port())
    return Config.model_validate(
        {
            "cameras": [
                {
                    "name": "scene",
                    "url": str(clip),
                    "realtime": True,
                    "loop": True,
                    "fps_limit": fps_limit,
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
            "detector": {"batch_size": batch_size, "max_wait_ms": 10},
            "mqtt": {
                "host": host,
                "port": port,
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


@contextlib.contextmanager
def live_prometheus(tmp_path: Path, metrics_port: int, rules: Path, job: str) -> Iterator[int]:
    """The real Prometheus (1 s scrapes and evaluations, its own storage) scraping one daemon; yields its port."""
    prometheus = tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    with open(log, "w") as stderr:
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:

            def scraped() -> bool:
                try:
                    return len(query(port, "rate(surveil_frames_processed_total[1m]) > 0")) > 0
                except OSError:
                    return False

            assert wait_until(scraped, 60, interval=0.5), log.read_text()[-2000:]
            yield port
        finally:
            server.terminate()
            server.wait(10)


@pytest.mark.slow
def test_every_dashboard_and_rule_expression_returns_data_from_a_live_daemon(tmp_path, mosquitto_broker) -> None:
    clip = make_scene_clip(tmp_path / "scene.mp4")
    with RunningDaemon(daemon_config(clip.path, mosquitto_broker, tmp_path), BlobDetector()) as running:
        assert running.daemon.metrics_port is not None
        with live_prometheus(tmp_path, running.daemon.metrics_port, RULES, "surveil") as port:
            time.sleep(4)  # a few more scrapes for rate() and deriv-style windows
            expressions = dashboard_expressions() + rule_expressions()
            empty = [(name, expr) for name, expr in expressions if not query(port, expr)]
            rules = query(port, "ALERTS")  # none should fire on a healthy daemon
    assert not empty, "expressions that return nothing:\n" + "\n".join(f"{name}: {expr}" for name, expr in empty)
    firing = {r["metric"]["alertname"] for r in rules if r["metric"].get("alertstate") == "firing"}
    assert not firing, firing


class SlowBlobDetector(BlobDetector):
    """BlobDetector that takes ``seconds`` per batch: a detector too slow for its camera."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def detect(self, images):
        time.sleep(self.seconds)
        return super().detect(images)


def shipped_rules_with_short_for(path: Path) -> Path:
    """The shipped rules, expressions, labels and annotations unchanged, with each `for:` cut to 2 s
    (a test cannot wait 10 minutes; promtool's unit tests check the real durations)."""
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path


def alerts(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["alerts"]


# SurveilAlertSpoolGrowing needs alerts, and this scene gave none at 1 processed fps (tried for 30 s,
# with min_frames 1 too; not investigated further); promtool's unit tests cover that rule.
STARVED_EXPECTED = {"SurveilCameraProcessedFpsLow", "SurveilCameraFramesDropped", "SurveilMqttDisconnected"}


@pytest.mark.slow
def test_shipped_rules_fire_for_a_starved_camera_without_fps_limit(tmp_path, capsys) -> None:
    """The demo's situation: a 10 fps file camera, no fps_limit, a detector that manages 1 frame a second,
    and no broker. The PodMonitor-style job name shows that no rule depends on the job."""
    clip = make_scene_clip(tmp_path / "scene.mp4")
    config = daemon_config(clip.path, None, tmp_path, fps_limit=None, batch_size=1)
    rules = shipped_rules_with_short_for(tmp_path / "surveil-rules.yml")
    with RunningDaemon(config, SlowBlobDetector(1.0)) as running:
        assert running.daemon.metrics_port is not None
        with live_prometheus(tmp_path, running.daemon.metrics_port, rules, "surveil/surveil") as port:

            def firing() -> set[str]:
                return {a["labels"]["alertname"] for a in alerts(port) if a["state"] == "firing"}

            wait_until(lambda: firing() >= STARVED_EXPECTED, 90, interval=1)
            fired = alerts(port)
    with capsys.disabled():
        print("\nalerts on the starved camera (shipped rules, for: 2s):")
        for alert in sorted(fired, key=lambda a: a["labels"]["alertname"]):
            labels = alert["labels"]
            print(
                f"  {alert['state']:8} {labels['alertname']:30} {labels.get('camera', '')} {alert['annotations']['summary']}"
            )
    states = {a["labels"]["alertname"]: a["state"] for a in fired}
    assert {name: states.get(name) for name in STARVED_EXPECTED} == dict.fromkeys(STARVED_EXPECTED, "firing")
    assert all(a["labels"]["job"] == "surveil/surveil" for a in fired)
