"""A CPU server's install has no PyTorch, and the daemon's path still works there.

Builds a fresh virtual environment with only ``pip install '<this checkout>[runtime]'`` (OpenVINO + ONNX
Runtime; pip downloads from the package index, about a minute), checks that ``import torch`` fails in
it, and analyses the demo clip with the demo config there: the shipped graph beside the demo's
checkpoint (models/pedestrian-mnv2-s8.onnx) must give real alerts with no export step and no torch.

In-process checks (fast) make sure the runtime modules do not import torch when it is installed either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs/demo.yaml"
CLIP = ROOT / "configs/media/pets2009-s2l1.mp4"

RUNTIME_MODULES = (
    "surveil.cli",
    "surveil.service.daemon",
    "surveil.service.pipeline",
    "surveil.tools.analyse",
    "surveil.tools.snapshot",
    "surveil.detection.factory",
    "surveil.detection.runtimes",
    "surveil.detection.graph",
)


def test_runtime_modules_do_not_import_torch():
    code = f"import sys\nfor m in {RUNTIME_MODULES!r}: __import__(m)\nprint(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_auto_backend_on_a_cpu_machine_does_not_import_installed_torch(tmp_path):
    """Where no GPU driver shows, `backend: auto` picks OpenVINO / ONNX Runtime without importing torch to ask about CUDA."""
    pytest.importorskip("onnxruntime")
    code = (
        "import sys\n"
        "from surveil.config import DetectorConfig\n"
        "from surveil.detection import factory\n"
        "factory._may_have_gpu = lambda: False\n"
        f"detector = factory.create_detector(DetectorConfig(weights={str(ROOT / 'models/pedestrian-mnv2.pt')!r}, backend='auto'), sys.argv[1])\n"
        "print(type(detector).__name__, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model-cache")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["OnnxDetector", "False"]


def _copy_package(target: Path) -> Path:
    """The installable part of this checkout (a copy: the install must not write into the working tree)."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "surveil", target / "surveil", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_demo_alerts_in_a_venv_without_torch(tmp_path):
    (tmp_path / "src").mkdir()
    source = _copy_package(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{source}[runtime]"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, f"pip install failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}"

    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    environment = {**os.environ, "SURVEIL_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": ""}
    surveil = str(env_dir / "bin" / "surveil")
    check = subprocess.run([surveil, "check-config", str(DEMO)], capture_output=True, text=True, env=environment)
    assert check.returncode == 0, check.stderr

    out = tmp_path / "alerts.jsonl"
    analyse = subprocess.run(
        [surveil, "analyse", "-c", str(DEMO), str(CLIP), "--every", "10", "--out", str(out)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    assert analyse.returncode == 0, analyse.stderr[-3000:]
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    starts = [a for a in alerts if a["phase"] == "start"]
    assert len(starts) >= 3, f"only {len(starts)} alert starts:\n{analyse.stdout}"
    assert {a["rule"] for a in starts} & {"lawn-intrusion", "north-path-intrusion", "midline-crossing"}
    assert not list((tmp_path / "state").glob("**/*.onnx")), "exported a graph although the shipped one matches"
