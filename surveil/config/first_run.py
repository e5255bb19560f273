"""What `surveil check-config` checks beyond the schema: the files a config names and the classes
its model knows, all in one pass, each problem at its option's YAML line.

A config that passes the schema can still fail at start (a misspelt weights or video path) or
never alert (a rule watching `person` with a model whose class is `pedestrian`). These checks
read only local files: the checkpoint's classes come from the graph sidecar shipped beside it
(``models/X.onnx.json``) or, where there is none, from a reader the caller passes (the CLI reads
the checkpoint with PyTorch when it is installed).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from surveil.config.inputs import InputPathError, check_regular_file
from surveil.config.loader import line_of
from surveil.config.schema import Config

# Names people write for a class that a model calls otherwise (the shipped models say `pedestrian`).
# Not an alias the daemon applies: a rule watches exactly the classes it names (docs/config.md).
SYNONYMS = {"person": ("pedestrian",), "people": ("person", "pedestrian"), "pedestrian": ("person",)}

Loc = tuple[str | int, ...]
LabelReader = Callable[[str], list[str] | None]


def did_you_mean(word: str, choices: list[str] | set[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (synonyms first), or ``""``."""
    options = sorted(choices)
    close = [s for s in SYNONYMS.get(word.lower(), ()) if s in options]
    close += difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def first_run_problems(config: Config, root: yaml.Node, read_labels: LabelReader | None = None) -> list[str]:
    """Every problem found, as ``line N: option: what is wrong``; empty when the config can start."""
    problems = list(_weights(config)) + list(_video_files(config)) + list(_classes(config, read_labels))
    located = sorted(((line_of(root, loc) or 0, loc, message) for loc, message in problems), key=lambda p: p[0])
    return [f"line {line or '?'}: {_dotted(loc)}: {message}" for line, loc, message in located]


def _weights(config: Config) -> Iterator[tuple[Loc, str]]:
    weights = config.detector.weights
    if weights == "coco":
        return
    try:
        check_regular_file(weights, "detector weights")
    except InputPathError as exc:
        yield ("detector", "weights"), f"{exc.reason}: {weights}{_sibling_hint(Path(weights))}"


def _video_files(config: Config) -> Iterator[tuple[Loc, str]]:
    for index, camera in enumerate(config.cameras):
        if camera.kind != "file" or not camera.enabled:
            continue
        try:
            check_regular_file(str(camera.url), "video file")
        except InputPathError as exc:
            yield ("cameras", index, "url"), f"{exc.reason}: {camera.url}{_sibling_hint(Path(str(camera.url)))}"


def _sibling_hint(path: Path) -> str:
    """A did-you-mean from the files beside a missing path (a typo in the name, not the folder)."""
    try:
        names = [p.name for p in path.parent.iterdir() if p.is_file()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f" (did you mean {str(path.parent / close[0])!r}?)" if close else ""


def checkpoint_labels(weights: str, read_labels: LabelReader | None = None) -> list[str] | None:
    """The classes of a local checkpoint (without background), from its graph sidecar or ``read_labels``."""
    sidecar = Path(weights).with_suffix(".onnx.json")
    labels: list[str] | None = None
    if weights.endswith(".onnx") or sidecar.is_file():
        try:
            labels = list(json.loads(Path(weights).with_suffix(".onnx.json").read_text())["labels"])
        except (OSError, ValueError, KeyError, TypeError):
            labels = None
    if labels is None and read_labels is not None:
        labels = read_labels(weights)
    return None if labels is None else [name for name in labels[1:] if name != "N/A"]


def _class_options(config: Config) -> Iterator[tuple[Loc, list[str]]]:
    yield ("detector", "classes"), list(config.detector.classes)
    yield ("detector", "class_score_thresholds"), list(config.detector.class_score_thresholds)
    for c, camera in enumerate(config.cameras):
        for r, rule in enumerate(camera.rules):
            for field in ("classes", "person_classes"):
                if field in type(rule).model_fields and field in rule.model_fields_set:
                    yield ("cameras", c, "rules", r, field), list(getattr(rule, field))


def _classes(config: Config, read_labels: LabelReader | None) -> Iterator[tuple[Loc, str]]:
    weights = config.detector.weights
    if weights == "coco" or not Path(weights).is_file():
        return  # COCO's 80 names come with torchvision; a missing file is reported once, above
    known = checkpoint_labels(weights, read_labels)
    if known is None:
        return
    for loc, names in _class_options(config):
        for name in names:
            if name not in known:
                yield (
                    loc,
                    (
                        f"{name!r} is not a class of {Path(weights).name} (its classes: {', '.join(known)})"
                        f"{did_you_mean(name, known)}"
                    ),
                )


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out
