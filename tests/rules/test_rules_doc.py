"""docs/rules.md cannot drift from the config: every ```yaml block in it is a valid camera (or a
whole config) whose rules can be built for the default COCO detector."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from surveil.config import RULE_CONFIGS, CameraConfig, Config
from surveil.rules import build_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def _blocks() -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1)) for m in re.finditer(r"```yaml\n(.*?)```", text, flags=re.S)
    ]


def _coco_names() -> list[str]:
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights

    return list(FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.DEFAULT.meta["categories"])


def _cameras(block: str) -> list[CameraConfig]:
    data = yaml.safe_load(block)
    assert isinstance(data, dict), "a YAML example is a camera or a whole config"
    if "cameras" in data:
        return Config.model_validate(data).cameras
    return [CameraConfig.model_validate(data)]


@pytest.mark.parametrize(("line", "block"), _blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else None)
def test_yaml_example_is_a_valid_config(line: int, block: str):
    class_names = _coco_names()
    for camera in _cameras(block):
        rules = build_rules(camera, class_names)
        assert len(rules) == len([r for r in camera.rules if r.enabled]), f"docs/rules.md line {line}"


def test_every_rule_type_has_a_section_and_an_example():
    text = DOC.read_text(encoding="utf-8")
    types = {model.model_fields["type"].annotation.__args__[0] for model in RULE_CONFIGS}
    shown = {rule.type for _, block in _blocks() for camera in _cameras(block) for rule in camera.rules}
    assert shown == types, f"rule types without a YAML example: {sorted(types - shown)}"
    for rule_type in types:
        assert f"## `{rule_type}`" in text, f"docs/rules.md has no section for {rule_type}"


def test_policy_options_are_documented():
    text = DOC.read_text(encoding="utf-8")
    for option in (
        "min_duration_s",
        "cooldown_s",
        "max_starts_per_minute",
        "update_interval_s",
        "merge_window_s",
        "merge_distance",
        "severity",
        "anchor",
        "schedule",
    ):
        assert f"`{option}`" in text, option
