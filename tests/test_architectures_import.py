"""The daemon does not need ``surveil.training``: the shipped checkpoint's architecture lives in
``surveil.detection.architectures``, and nothing outside the training package imports it at module level."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "surveil"
SHIPPED_CHECKPOINTS = {
    "pedestrian-mnv2.pt": "fasterrcnn_mobilenet_v2_fpn",
    "pedestrian-mnv2-s8.pt": "fasterrcnn_mobilenet_v2_fpn_s8",  # configs/demo.yaml's default
}
TRAINING = "surveil.training"

# Modules the daemon (and `surveil run`) import; none may bring the training package along.
DAEMON_MODULES = (
    "surveil.detection.architectures",
    "surveil.detection.checkpoints",
    "surveil.detection.torch_detector",
    "surveil.service.pipeline",
    "surveil.service.daemon",
    "surveil.detection.export",
    "surveil.cli",
)

BLOCK_TRAINING = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTraining(importlib.abc.MetaPathFinder):
        attempts = []

        def find_spec(self, name, path, target=None):
            if name == "surveil.training" or name.startswith("surveil.training."):
                self.attempts.append(name)
                raise ModuleNotFoundError(f"{name} is blocked: the daemon must not need it", name=name)
            return None

    sys.meta_path.insert(0, BlockTraining())
    """
)


def _run_python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("name", "architecture"), SHIPPED_CHECKPOINTS.items())
def test_shipped_checkpoint_loads_and_runs_without_the_training_package(name: str, architecture: str) -> None:
    code = BLOCK_TRAINING + textwrap.dedent(
        """
        import torch
        from surveil.detection.checkpoints import load_checkpoint_model

        torch.manual_seed(0)
        model, payload = load_checkpoint_model(sys.argv[1])
        model.eval()
        with torch.inference_mode():
            (out,) = model([torch.rand(3, 96, 128)])
        assert sorted(out) == ["boxes", "labels", "scores"], sorted(out)
        assert out["boxes"].shape[1:] == (4,), out["boxes"].shape
        print(payload["architecture"], ",".join(BlockTraining.attempts) or "-")
        """
    )
    assert _run_python(code, str(REPO_ROOT / "models" / name)).split() == [architecture, "-"]


def test_daemon_modules_do_not_import_the_training_package() -> None:
    code = textwrap.dedent(
        """
        import importlib, sys

        for name in sys.argv[1:]:
            importlib.import_module(name)
            loaded = sorted(m for m in sys.modules if m == "surveil.training" or m.startswith("surveil.training."))
            print(name, ",".join(loaded) or "-")
        """
    )
    lines = _run_python(code, *DAEMON_MODULES).splitlines()
    assert lines == [f"{name} -" for name in DAEMON_MODULES]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(node: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import that runs when ``module`` is imported: function
    bodies are skipped (they import lazily), class bodies and if/try blocks are not."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, ast.Import):
            yield from ((child.lineno, alias.name) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - child.level + 1]) if child.level else ""
            source = ".".join(p for p in (base, child.module or "") if p)
            yield child.lineno, source
            yield from ((child.lineno, f"{source}.{alias.name}") for alias in child.names)
        else:
            yield from _module_level_imports(child, module, is_package)


def _training_imports(source: str, module: str, is_package: bool = False) -> list[int]:
    found = _module_level_imports(ast.parse(source), module, is_package)
    return sorted({line for line, name in found if name == TRAINING or name.startswith(TRAINING + ".")})


@pytest.mark.parametrize(
    "source, module, lines",
    [
        ("import surveil.training.train", "surveil.cli", [1]),
        ("from surveil.training.transforms import train_transforms", "surveil.cli", [1]),
        ("from surveil import training", "surveil.cli", [1]),
        ("from ..training import datasets", "surveil.evaluation.cli", [1]),
        ("from . import training", "surveil", [1]),
        ("try:\n    import surveil.training\nexcept ImportError:\n    pass", "surveil.cli", [2]),
        ("class A:\n    from surveil.training import train", "surveil.cli", [2]),
        ("def f():\n    from surveil.training import train", "surveil.cli", []),
        ("import surveil.trainingwheels\nfrom surveil import models", "surveil.cli", []),
        ("from .models import build_model", "surveil.evaluation.cli", []),
    ],
)
def test_the_static_check_finds_module_level_training_imports(source: str, module: str, lines: list[int]) -> None:
    assert _training_imports(source, module, is_package=module == "surveil") == lines


def test_no_module_outside_the_training_package_imports_it_at_module_level() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "training") in path.parents:
            continue
        lines = _training_imports(path.read_text(), _module_name(path), path.name == "__init__.py")
        if lines:
            offenders[str(path.relative_to(REPO_ROOT))] = lines
    assert offenders == {}, f"module-level imports of {TRAINING} (line numbers): {offenders}"
