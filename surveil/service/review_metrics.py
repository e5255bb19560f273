"""Prometheus metrics of the incident review (surveil.review); its ReviewEvents. Listed in docs/metrics.md."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

CLIP_RESULTS = ("written", "dropped", "failed")


class ReviewMetrics:
    def __init__(self, r: CollectorRegistry):
        self.bytes = Gauge(
            "surveil_review_bytes", "Disk used by stored incidents (records, snapshots, clips).", registry=r
        )
        self.incidents = Gauge("surveil_review_incidents", "Incidents stored for review.", registry=r)
        self.oldest_age = Gauge(
            "surveil_review_oldest_age_seconds", "Age of the oldest stored incident (0 when none).", registry=r
        )
        self.deleted_total = Counter(
            "surveil_review_deleted_total",
            "Incidents deleted by retention, by reason (age: review.max_age_h, size: review.max_size_mb).",
            ["reason"],
            registry=r,
        )
        self.write_errors = Counter(
            "surveil_review_write_errors_total",
            "Review files the disk refused (full, read-only); alerts go on regardless.",
            ["file"],
            registry=r,
        )
        self.clips = Counter(
            "surveil_review_clips_total",
            "Clips by result: written, dropped (the encoder queue was full) or failed.",
            ["result"],
            registry=r,
        )
        self.clip_seconds = Counter("surveil_review_clip_seconds_total", "Seconds of clip written.", registry=r)
        self.encode_cpu_seconds = Counter(
            "surveil_review_encode_cpu_seconds_total", "CPU seconds the clip encoder (ffmpeg) used.", registry=r
        )
        self.buffer_bytes = Gauge(
            "surveil_review_buffer_bytes", "Memory of the recent frames kept for clips.", ["camera"], registry=r
        )
        for reason in ("age", "size"):
            self.deleted_total.labels(reason)
        for result in CLIP_RESULTS:
            self.clips.labels(result)

    def usage(self, total_bytes: int, incidents: int, oldest_age_s: float) -> None:
        self.bytes.set(total_bytes)
        self.incidents.set(incidents)
        self.oldest_age.set(round(oldest_age_s, 1))

    def deleted(self, reason: str, count: int) -> None:
        self.deleted_total.labels(reason).inc(count)

    def write_failed(self, what: str) -> None:
        self.write_errors.labels(what).inc()

    def clip(self, result: str, clip_s: float = 0.0, cpu_s: float = 0.0) -> None:
        self.clips.labels(result).inc()
        self.clip_seconds.inc(clip_s)
        self.encode_cpu_seconds.inc(cpu_s)

    def buffered(self, camera: str, total_bytes: int) -> None:
        self.buffer_bytes.labels(camera).set(total_bytes)
