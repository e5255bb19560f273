"""surveil: real-time multi-camera surveillance detection daemon."""

__version__ = "0.2.0"
