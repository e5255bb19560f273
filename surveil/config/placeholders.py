"""Placeholder credentials shipped in examples: a daemon that starts with one is refused (exit 2).

The one list of them. deploy/kubernetes/base/secret.yaml and configs/site-example.yaml ship
these values on purpose, so that an unedited copy cannot run with a password anyone can read.
"""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from surveil.config.schema import Config
from surveil.redact import url_secrets

# compared case-insensitively, after stripping spaces
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change-me-to-16-or-more-characters",
        "replace-me",
        "replaceme",
        "your-password",
        "your-token",
    }
)


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


def placeholder_options(config: Config) -> list[tuple[str | int, ...]]:
    """Where a secret is a known placeholder: ``("mqtt", "password")``, ``("cameras", 0, "url")``, ..."""
    found: list[tuple[str | int, ...]] = [
        ("cameras", index, "url")
        for index, camera in enumerate(config.cameras)
        if any(is_placeholder(secret) for secret in url_secrets(camera.url))
    ]
    for name in type(config).model_fields:
        section = getattr(config, name)
        if not isinstance(section, BaseModel):
            continue
        for field in type(section).model_fields:
            value = getattr(section, field)
            if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
                found.append((name, field))
    return found
