"""The alert contract (docs/alert.schema.json) as test helpers.

In-process alerts are checked by the session-wide autouse fixture in ``tests/conftest.py``
(it wraps ``AlertUpdate.to_dict``). Tests that receive alerts from a daemon running in another
process (over MQTT or from the JSON-lines log) call :func:`validate_alert` on each payload.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "alert.schema.json"


class AlertSchemaError(AssertionError):
    """A payload that breaks docs/alert.schema.json (an AssertionError, so pytest reports it as a failure)."""


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator(definition: str | None):
    import jsonschema  # the test extra; imported here so that a missing package fails one test, not the collection

    root = schema()
    jsonschema.Draft202012Validator.check_schema(root)
    target = root if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]}
    return jsonschema.Draft202012Validator(target, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def schema_errors(payload: Any, definition: str | None = None) -> list[str]:
    """Every violation of the alert schema (or of ``$defs/<definition>``), as readable lines; [] when valid."""
    errors = sorted(_validator(definition).iter_errors(payload), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def _check(payload: Any, definition: str | None, what: str) -> dict[str, Any]:
    if isinstance(payload, (bytes, bytearray, str)):
        payload = json.loads(payload)
    errors = schema_errors(payload, definition)
    if errors:
        raise AlertSchemaError(
            f"{what} breaks docs/alert.schema.json:\n  " + "\n  ".join(errors) + f"\npayload: {payload!r}"[:4000]
        )
    return payload


def validate_alert(payload: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Check one alert payload (a dict, or its JSON text/bytes as received from MQTT); return it as a dict."""
    return _check(payload, None, "alert")


def validate_camera_status(payload: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Check a retained ``<prefix>/<camera>/status`` payload."""
    return _check(payload, "camera_status", "camera status")


def validate_counts(kind: str, payload: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Check a retained ``<prefix>/<camera>/lines/<line>`` (kind ``lines``) or ``.../zones/<zone>`` payload."""
    definitions = {"lines": "line_counts", "zones": "zone_counts"}
    if kind not in definitions:
        raise ValueError(f"kind must be lines or zones, got {kind!r}")
    return _check(payload, definitions[kind], f"{kind} counts")
