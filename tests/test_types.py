"""Detections: the embedding travels with the boxes it belongs to."""

from __future__ import annotations

import numpy as np
import pytest

from surveil.types import Detections


def _three(embedding: bool) -> Detections:
    vectors = np.eye(3, 4, dtype=np.float32) if embedding else None
    return Detections.from_arrays(np.arange(12).reshape(3, 4), [0.9, 0.5, 0.2], [1, 1, 2], vectors)


@pytest.mark.parametrize(
    "index, rows",
    [(np.array([True, False, True]), [0, 2]), (np.array([2, 0]), [2, 0]), (1, [1]), (slice(0, 0), [])],
)
def test_indexing_keeps_each_embedding_with_its_box(index, rows) -> None:
    full = _three(embedding=True)
    part = full[index]
    assert part.embedding is not None and part.embedding.shape == (len(rows), 4)
    picked = np.array(rows, np.int64)
    np.testing.assert_array_equal(part.embedding, np.eye(3, 4, dtype=np.float32)[picked])
    np.testing.assert_array_equal(part.xyxy, full.xyxy[picked])


def test_no_embedding_stays_none() -> None:
    assert _three(embedding=False)[np.array([0, 1])].embedding is None
    assert Detections.empty().embedding is None


@pytest.mark.parametrize("shape", [(2, 4), (3,), (4, 4)])
def test_an_embedding_of_the_wrong_shape_is_refused(shape) -> None:
    with pytest.raises(ValueError, match="embedding"):
        Detections(
            xyxy=np.zeros((3, 4), np.float32),
            confidence=np.zeros(3, np.float32),
            class_id=np.zeros(3, np.int64),
            embedding=np.zeros(shape, np.float32),
        )
