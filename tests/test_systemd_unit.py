"""The shipped unit file parses cleanly with systemd's own checker, and keeps its key settings."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "surveil.service"


def unit_settings() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "User", "surveil"),
        ("Service", "Restart", "on-failure"),
        ("Service", "RestartPreventExitStatus", "2"),
        ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "ProtectSystem", "strict"),
    ],
)
def test_unit_setting(section, key, value):
    assert unit_settings()[section][key] == value


def unit_list(key: str) -> list[str]:
    """Every value of a list setting, across repeated lines (systemd appends them)."""
    return [
        word
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
        for word in line.split("=", 1)[1].split()
    ]


def test_supplementary_groups_exist_on_every_host():
    """systemd has no "optional" group: one the host lacks fails the unit (status=216/GROUP). `video`
    has a fixed gid in Debian's base-passwd, on every Debian/Ubuntu host; `render` is not there."""
    groups = unit_list("SupplementaryGroups")
    assert groups == ["video"]
    master = Path("/usr/share/base-passwd/group.master")  # Debian's static groups
    if master.is_file():
        static = {line.split(":")[0] for line in master.read_text().splitlines()}
        assert set(groups) <= static


def test_watchdog_is_set():
    assert int(unit_settings()["Service"]["WatchdogSec"]) > 0


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    surveil = Path(sys.executable).with_name("surveil")
    text = UNIT.read_text().replace("/opt/surveil/.venv/bin/surveil", str(surveil))
    unit = tmp_path / "surveil.service"
    unit.write_text(text)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "surveil.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
