"""docs/metrics.md lists every metric the daemon exports, and nothing it does not."""

import re
from pathlib import Path

from surveil.service.metrics import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def exported_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        if not family.name.startswith("surveil_"):
            continue  # process_* and python_info: prometheus-client's own collectors
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def test_every_metric_is_documented():
    documented = set(re.findall(r"^\| `(surveil_[a-z_]+)`", DOC.read_text(), re.M))
    assert exported_names() == documented
