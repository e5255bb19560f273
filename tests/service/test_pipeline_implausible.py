"""A detector runtime's implausible boxes reach Prometheus: ``surveil_detector_implausible_boxes_total``."""

from __future__ import annotations

import pytest

from surveil.service.metrics import Metrics
from surveil.service.pipeline import Pipeline
from tests.support.polling import wait_until
from tests.support.scene import BlobDetector, make_scene_clip, right_half_config

METRIC = "surveil_detector_implausible_boxes_total"


class DroppingBlobs(BlobDetector):
    """Blobs, and ``per_batch`` boxes a faulty runtime returned and the detector dropped, every batch."""

    def __init__(self, per_batch: int, already: int = 0):
        super().__init__()
        self.per_batch = per_batch
        self.implausible_boxes = already
        self.calls = 0

    def detect(self, images):
        self.implausible_boxes += self.per_batch
        self.calls += 1
        return super().detect(images)


def exported(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["worker"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == METRIC
    }


@pytest.mark.parametrize(("per_batch", "already"), [(0, 0), (3, 0), (2, 500)])
def test_the_metric_counts_the_boxes_dropped_while_this_pipeline_ran(tmp_path, per_batch, already):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    detector = DroppingBlobs(per_batch, already)  # ``already``: a detector handed over from before a reload
    metrics = Metrics()
    pipeline = Pipeline(right_half_config(clip.path, tmp_path), metrics, detector=detector)
    assert exported(metrics) == {"worker-0": 0.0}  # the series exists at 0 before any batch
    pipeline.start()
    try:
        assert wait_until(lambda: detector.calls >= 3, 10), "the detector ran no batches"
    finally:
        pipeline.stop()
    assert exported(metrics) == {"worker-0": float(per_batch * detector.calls)}
