"""Sinks: where alerts, camera status and counts go.

``base`` (the protocols the pipeline calls), ``outputs`` (the one place that opens the concrete
sinks from the config), ``jsonl`` (JSON-lines alert log), ``spool`` (the durable SQLite spool)
and ``mqtt/`` (publisher, delivery, retained state, Home Assistant discovery, topics, fleet).
"""
