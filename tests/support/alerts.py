"""Alert updates for sink tests: realistic payloads without running the analyser."""

from __future__ import annotations

from surveil.types import AlertUpdate, Subject


def make_alert(i: int, camera: str = "cam1", rule: str = "door", phase: str = "start") -> AlertUpdate:
    return AlertUpdate(
        id=AlertUpdate.new_id(),
        incident_id=f"incident-{camera}-{i}",
        phase=phase,
        camera=camera,
        rule=rule,
        rule_type="zone_intrusion",
        severity="warning",
        ts=1_700_000_000.0 + i,
        ts_mono=1.0,
        started_ts=1_700_000_000.0 + i,
        frame_seq=i,
        zone="door",
        subjects=(Subject(track_id=i, class_name="person", score=0.87654, xyxy=(1.0, 2.0, 30.0, 40.0)),),
        details={"dwell_s": 0.0},
    )
