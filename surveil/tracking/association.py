"""Association helpers shared by the trackers: Hungarian matching and the centre-distance score."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def centres(xyxy: np.ndarray) -> np.ndarray:
    """(N, 2) box centres of (N, 4) xyxy boxes."""
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2], axis=1)


def center_closeness(
    a: np.ndarray, b: np.ndarray, max_distance: float | np.ndarray, max_size_ratio: float = 1.5
) -> np.ndarray:
    """1 - centre distance / (max_distance x the larger box height), clipped at 0.

    0 also where the box heights differ by more than ``max_size_ratio``. ``max_distance`` may be one
    number or one per row of ``a`` (a lost track's gate grows with the time it has been lost).
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    distance = np.linalg.norm(centres(a)[:, None, :] - centres(b)[None, :, :], axis=2)
    height_a, height_b = (a[:, 3] - a[:, 1])[:, None], (b[:, 3] - b[:, 1])[None, :]
    scale = np.maximum(np.maximum(height_a, height_b), 1.0)
    gate = np.reshape(np.asarray(max_distance, np.float64), (-1, 1)) if np.ndim(max_distance) else max_distance
    reach = gate * scale  # the distance at which closeness falls to 0
    # Divide only where the ratio is below 1 (elsewhere closeness is 0 anyway): a tiny reach (ByteTrack's
    # gate ramps up from 0 with the time since a track's last match, so a subnormal time gives a subnormal
    # gate) would overflow ``distance / reach``, and a reach of 0 would give inf or NaN.
    near = distance < reach
    ratio = np.divide(distance, reach, out=np.ones(near.shape, np.result_type(distance, reach)), where=near)
    closeness = 1.0 - ratio
    similar_size = np.maximum(height_a, height_b) <= max_size_ratio * np.maximum(np.minimum(height_a, height_b), 1e-6)
    return np.where(similar_size, closeness, 0.0).astype(np.float32)


def hungarian(
    score: np.ndarray, rows: list[int], cols: list[int], minimum: float, ranking: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Best one-to-one pairs by total score, keeping pairs scoring at least ``minimum``.

    ``ranking`` (same shape), if given, replaces ``score`` in the assignment among the pairs that
    ``score`` admits: it can reorder who gets whom (appearance breaking a tie) but never admits a pair.
    """
    if score.size == 0:
        return []
    admitted = score >= minimum
    objective = score if ranking is None else np.where(admitted, ranking, -1.0)
    r, c = linear_sum_assignment(-objective)
    return [(rows[i], cols[j]) for i, j in zip(r, c) if admitted[i, j]]


def cosine(tracks: list[np.ndarray | None], embedding: np.ndarray | None) -> np.ndarray | None:
    """(T, N) cosine similarity of unit track appearances and unit detection rows; NaN where a track has
    no appearance (or one of another size); None when the detections carry no embedding."""
    if embedding is None:
        return None
    out = np.full((len(tracks), len(embedding)), np.nan, np.float32)
    known = [(i, a) for i, a in enumerate(tracks) if a is not None and a.shape[0] == embedding.shape[1]]
    if known and len(embedding):
        out[[i for i, _ in known]] = np.stack([a for _, a in known]) @ embedding.T
    return out


def nearest_cosine(galleries: list, embedding: np.ndarray | None) -> np.ndarray | None:
    """(T, N) for each track the best cosine similarity of any unit embedding in its gallery (a sequence of
    (D,) rows) with each unit detection row; NaN where a gallery is empty (or of another size); None when
    the detections carry no embedding."""
    if embedding is None:
        return None
    out = np.full((len(galleries), len(embedding)), np.nan, np.float32)
    if not len(embedding):
        return out
    for i, gallery in enumerate(galleries):
        rows = [g for g in gallery if g.shape[0] == embedding.shape[1]]
        if rows:
            out[i] = (np.stack(rows) @ embedding.T).max(axis=0)
    return out
