"""Configuration: the pydantic schema, the hardened YAML loader and the reference generator."""

from surveil.config.schema import *  # noqa: F403
