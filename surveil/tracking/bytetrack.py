"""Tracker kind ``surveil``: ByteTrack-class two-stage association in seconds, for any processed fps.

Each track carries a constant-velocity Kalman filter over box centre and size whose prediction step
uses the time since the previous update (``now`` in seconds), so the tracker predicts through frames
that were skipped or dropped. Once a track is lost (unmatched in an update, or unseen for a second)
its velocity decays with time constant ``velocity_decay_s``, so a long-lost track is looked for near where it vanished, not far beyond.

One frame's detections are associated in stages, each by the Hungarian algorithm and only within one
class, each stage taking only what the ones before left:

1. confirmed tracks (seen or lost) x high-score detections: IoU with the predicted boxes, then the
   centre distance relative to box height (with a size-similarity gate) for what IoU left. The
   second step keeps identities at 1-5 processed fps, where consecutive boxes barely overlap. The
   gate of a lost track widens with the time it has been lost; every gate also narrows in
   proportion to the time since the track's last match when that is under ``_GATE_RAMP_S`` (at
   7-25 fps a person moves a small fraction of their height between frames, and a wide gate there
   only lets a track take a neighbour's detection in a crowd). The detections scoring at least
   ``_SURE_SCORE`` go through this stage first, the other high-score ones after them, so an
   ambiguous mid-score box (often one box over two people) cannot take a track from a confident one.
   A track missed in the previous update (lost) takes nothing by centre distance that overlaps, at
   IoU >= ``_CROWD_IOU``, the predicted box of another confirmed track seen in the previous update:
   in a group, a lost track's widening gate otherwise reaches a live neighbour's detection (or a
   second box over that neighbour), and the lost identity jumps onto the wrong person.
2. tracks seen in the previous update x low-score detections (ByteTrack's rescue): IoU, then
   centre distance with the tighter gate of a track just seen.
3. tentative tracks x high-score detections left: IoU then centre distance.

A tentative track that misses an update is dropped; one matched ``min_hits`` times is confirmed. A
confirmed track that goes unmatched for more than ``lost_after_s`` seconds is dropped. So is, at
once, a lost track that walked out of the picture (only when the picture's size is known:
``set_frame_size``, which the analyser calls every frame): its last box lay within one box size of
a border, it was moving out across that border at ``_EXIT_SPEED`` box heights per second or more,
and at that velocity its centre would by now be past the border. At 1-5 processed fps, somebody who
walks in where a person walked out a second or two earlier is otherwise a fresh detection right
beside a lost track, and takes over that person's id, zone visit and loitering dwell. New tracks
start only from high-score detections left unmatched that score at least ``birth_score`` and
overlapping no confirmed track's box (matched box, or predicted box of a lost track) at IoU >=
``_BIRTH_IOU``: the detector often gives a walker two boxes, and a track born from the second one
later takes the walker's identity over (its prediction overlapping the walker's box better). Both
overlap rules hold within one class (a person beside a parked car is not a second box over the car).
Ids count up per tracker and are never reused.

Appearance (re-identification), only where the detections carry ``embedding`` rows: a track keeps an
exponential moving average of the unit embeddings of the high-score detections it matches
(``appearance_momentum``), and, where ``appearance_gallery`` > 1, that many of the latest such
embeddings themselves. In every stage above, among the pairs the motion score admits, the Hungarian
assignment ranks pairs by ``(1 - appearance_weight) x motion + appearance_weight x cosine``, the
cosine being with the average or, given a gallery, the detection's best match in it (DeepSORT's
nearest-neighbour metric: a person seen from the front and the back in turn is not matched to
somebody who looks like the average of the two), and a pair whose cosine is under
``appearance_veto`` is not admitted: appearance never
admits a pair, it decides who gets whom inside a walking group. A
confirmed track lost for longer than ``lost_after_s`` is not dropped but kept dormant (not
returned) until ``reid_window_s`` after its last match. A birth candidate (a high-score detection
left over, scoring at least ``birth_score``, overlapping no confirmed track) first tries the lost
and dormant tracks: one whose appearance has cosine similarity at least ``reid_similarity`` with it,
``reid_margin`` more than with any other candidate track, and whose last box lies within what a
person covers at ``reid_max_speed`` box heights per second over the gap, is re-attached under its
own id (its motion restarted at the new box) instead of starting a new track. Without embeddings
the tracker behaves exactly as motion-only.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from surveil.geometry import anchor_point, box_iou, box_tuple
from surveil.tracking.association import center_closeness, cosine, hungarian, nearest_cosine
from surveil.types import Detections, Track

_NDIM = 4  # cx, cy, w, h
_POS, _VEL = np.arange(_NDIM), np.arange(_NDIM) + _NDIM  # state indices of the coordinates and their velocities
_COAST_S = 1.0  # longest prediction at full velocity past a track's last match
_GATE_RAMP_S = 0.3  # centre-distance gates reach full width only this long after a track's last match
_SURE_SCORE = 0.6  # high-score detections scoring at least this are matched to confirmed tracks first
_CROWD_IOU = 0.2  # a lost track takes no detection by centre distance that overlaps a live track this much
_BIRTH_IOU = 0.3  # no new track from a detection overlapping a confirmed track's box this much
_EDGE_REACH = 1.0  # a lost box at most this many of its widths (heights) from a border may have walked out
_EXIT_SPEED = 0.2  # ... when it moved towards that border at this many box heights per second at least


def _xyxy_to_z(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])


def _z_to_xyxy(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = z[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


@dataclass
class _Motion:
    """Constant-velocity Kalman filter over (cx, cy, w, h) in pixels and pixels per second.

    Noises scale with the box height, like SORT/ByteTrack's, but per second instead of per frame.
    """

    mean: np.ndarray  # (8,) cx, cy, w, h, vcx, vcy, vw, vh
    cov: np.ndarray  # (8, 8)
    measurement_noise: float  # std of a measured coordinate, as a fraction of the height
    acceleration_noise: float  # std of the centre's acceleration, heights per s^2

    @classmethod
    def start(
        cls, xyxy: np.ndarray, measurement_noise: float, acceleration_noise: float, initial_speed: float
    ) -> _Motion:
        z = _xyxy_to_z(xyxy)
        h = z[3]
        std = np.array(
            [measurement_noise * h] * 2
            + [measurement_noise * h] * 2
            + [initial_speed * h] * 2
            + [0.1 * initial_speed * h] * 2
        )
        return cls(np.concatenate([z, np.zeros(4)]), np.diag(std**2), measurement_noise, acceleration_noise)

    def predict(self, dt: float, decay: float) -> None:
        """Move the state ``dt`` seconds on; ``decay`` (0-1] multiplies the velocity afterwards."""
        if dt > 0:
            f = np.eye(8)
            f[:_NDIM, _NDIM:] = np.eye(_NDIM) * dt
            h = max(self.mean[3], 1.0)
            q_centre = (self.acceleration_noise * h) ** 2
            q = np.array([q_centre, q_centre, 0.1 * q_centre, 0.1 * q_centre])
            noise = np.zeros((8, 8))  # per coordinate, the white-acceleration block over (position, velocity)
            noise[_POS, _POS] = q * dt**3 / 3
            noise[_POS, _VEL] = noise[_VEL, _POS] = q * dt**2 / 2
            noise[_VEL, _VEL] = q * dt
            self.mean = f @ self.mean
            self.cov = f @ self.cov @ f.T + noise
        if decay < 1.0:
            self.mean[_NDIM:] *= decay
            self.cov[_NDIM:, :] *= decay
            self.cov[:, _NDIM:] *= decay
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)

    def correct(self, xyxy: np.ndarray) -> None:
        z = _xyxy_to_z(xyxy)
        r = np.diag((self.measurement_noise * z[3] * np.ones(_NDIM)) ** 2)
        s = self.cov[:_NDIM, :_NDIM] + r
        gain = np.linalg.solve(s, self.cov[:_NDIM, :]).T
        self.mean = self.mean + gain @ (z - self.mean[:_NDIM])
        self.cov = self.cov - gain @ self.cov[:_NDIM, :]
        self.cov = (self.cov + self.cov.T) / 2

    def box(self) -> np.ndarray:
        return _z_to_xyxy(self.mean)


@dataclass
class _TrackState:
    track_id: int
    class_id: int
    motion: _Motion
    xyxy: np.ndarray  # the last matched detection's box, as given
    confidence: float
    first_seen: float  # caller's clock
    last_seen: float  # caller's clock
    last_seen_t: float  # tracker's own clock (never steps back)
    predicted_t: float  # tracker clock the motion state refers to
    coast_until: float = 0.0  # tracker clock until which it moves at full velocity
    hits: int = 1
    missed: int = 0
    history: deque = field(default_factory=deque)
    appearance: np.ndarray | None = None  # (D,) unit EMA of matched embeddings
    gallery: deque = field(default_factory=deque)  # the latest matched unit embeddings, newest last
    exit_velocity: tuple[float, float] | None = None  # centre velocity (px/s) when it was last lost

    def snapshot(self, camera: str) -> Track:
        box = self.xyxy if self.missed == 0 else self.motion.box()
        return Track(
            track_id=self.track_id,
            camera=camera,
            class_id=self.class_id,
            xyxy=box_tuple(box),
            confidence=self.confidence,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            hits=self.hits,
            missed=self.missed,
            history=tuple(self.history),
            embedding=None if self.appearance is None else self.appearance.copy(),
        )


class ByteTracker:
    """Tracks of one camera (kind ``surveil``). ``update`` takes one frame's detections, returns confirmed tracks."""

    def __init__(
        self,
        camera: str,
        high_score: float = 0.3,
        low_score: float = 0.1,
        birth_score: float = 0.4,
        iou_threshold: float = 0.3,
        low_iou_threshold: float = 0.4,
        max_center_distance: float = 0.6,
        lost_center_growth: float = 0.5,
        max_size_ratio: float = 1.5,
        min_hits: int = 2,
        lost_after_s: float = 3.0,
        velocity_decay_s: float = 1.0,
        measurement_noise: float = 0.05,
        acceleration_noise: float = 0.2,
        initial_speed: float = 1.0,
        history: int = 64,
        appearance_weight: float = 0.3,
        appearance_momentum: float = 0.9,
        appearance_gallery: int = 1,
        appearance_veto: float = 0.0,
        reid_window_s: float = 20.0,
        reid_similarity: float = 0.95,
        reid_margin: float = 0.03,
        reid_max_speed: float = 1.0,
    ):
        for name, value in (("high_score", high_score), ("low_score", low_score), ("birth_score", birth_score)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if low_score > high_score:
            raise ValueError(f"low_score ({low_score}) must not exceed high_score ({high_score})")
        for name, value in (("iou_threshold", iou_threshold), ("low_iou_threshold", low_iou_threshold)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        for name, value in (
            ("lost_after_s", lost_after_s),
            ("velocity_decay_s", velocity_decay_s),
            ("measurement_noise", measurement_noise),
            ("acceleration_noise", acceleration_noise),
            ("initial_speed", initial_speed),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if max_center_distance < 0 or lost_center_growth < 0:
            raise ValueError("max_center_distance and lost_center_growth must be >= 0")
        if max_size_ratio < 1.0:
            raise ValueError(f"max_size_ratio must be >= 1, got {max_size_ratio}")
        if appearance_gallery < 1:
            raise ValueError(f"appearance_gallery must be >= 1, got {appearance_gallery}")
        if min_hits < 1 or history < 2:
            raise ValueError(f"min_hits must be >= 1 and history >= 2, got {min_hits} and {history}")
        for name, value in (
            ("appearance_weight", appearance_weight),
            ("appearance_momentum", appearance_momentum),
            ("appearance_veto", appearance_veto),
            ("reid_similarity", reid_similarity),
            ("reid_margin", reid_margin),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not (math.isfinite(reid_window_s) and reid_window_s >= 0 and reid_max_speed >= 0):
            raise ValueError(f"reid_window_s and reid_max_speed must be >= 0, got {reid_window_s}, {reid_max_speed}")
        self.camera = camera
        self.high_score, self.low_score, self.birth_score = high_score, low_score, birth_score
        self.iou_threshold, self.low_iou_threshold = iou_threshold, low_iou_threshold
        self.max_center_distance, self.lost_center_growth = max_center_distance, lost_center_growth
        self.max_size_ratio = max_size_ratio
        self.min_hits, self.lost_after_s, self.velocity_decay_s = min_hits, lost_after_s, velocity_decay_s
        self.measurement_noise, self.acceleration_noise, self.initial_speed = (
            measurement_noise,
            acceleration_noise,
            initial_speed,
        )
        self.history = history
        self.appearance_weight, self.appearance_momentum = appearance_weight, appearance_momentum
        self.appearance_gallery = appearance_gallery
        self.appearance_veto = appearance_veto
        self.reid_window_s, self.reid_similarity = reid_window_s, reid_similarity
        self.reid_margin, self.reid_max_speed = reid_margin, reid_max_speed
        self.frame_size: tuple[int, int] | None = None  # (width, height); None: no border is known
        self._next_id = 1
        self.reset()

    def set_frame_size(self, width: int, height: int) -> None:
        """The picture's size, for telling a track that walked out of it from one that was lost."""
        self.frame_size = (int(width), int(height)) if width > 0 and height > 0 else None

    def reset(self) -> None:
        """Forget every track and the clock; ids keep counting up (never reused)."""
        self._tracks: list[_TrackState] = []
        self._similarity: np.ndarray | None = None  # this update's (tracks, detections) appearance cosine
        self._clock = 0.0  # the tracker's own time: sum of the non-negative steps of ``now``
        self._last_now: float | None = None

    def update(self, detections: Detections, now: float, confident: np.ndarray | None = None) -> list[Track]:
        """Associate ``detections`` (not modified) with the tracks at time ``now``; return confirmed tracks.

        ``confident`` (N,) marks the high-score detections; None: ``confidence >= high_score``.
        Confirmed tracks not matched now come back with ``missed > 0`` and their predicted box.
        """
        self._advance(now)
        high, low = self._split(detections, confident)
        was_seen = {id(t) for t in self._tracks if t.missed == 0}
        self._predict()
        confirmed = [i for i, t in enumerate(self._tracks) if t.hits >= self.min_hits and not self._dormant(t)]
        tentative = [i for i, t in enumerate(self._tracks) if t.hits < self.min_hits]
        self._similarity = self._appearance_similarity(detections)
        sure = [d for d in high if detections.confidence[d] >= _SURE_SCORE]
        matches, left_confirmed, left_sure = self._match(confirmed, sure, detections, self.iou_threshold, lost_ok=True)
        rest = [d for d in high if detections.confidence[d] < _SURE_SCORE]
        mid_matches, left_confirmed, left_rest = self._match(
            left_confirmed, rest, detections, self.iou_threshold, lost_ok=True
        )
        matches += mid_matches
        left_high = sorted(left_sure + left_rest)
        rescued = [i for i in left_confirmed if id(self._tracks[i]) in was_seen]
        low_matches, _, _ = self._match(rescued, low, detections, self.low_iou_threshold, lost_ok=False)
        tentative_matches, _, left_high = self._match(
            tentative, left_high, detections, self.iou_threshold, lost_ok=False
        )
        matches += low_matches + tentative_matches
        for t_index, d_index in matches:
            self._apply_match(self._tracks[t_index], detections, d_index, now)
        matched = {t for t, _ in matches}
        for i, track in enumerate(self._tracks):
            if i not in matched:
                if track.missed == 0:
                    track.exit_velocity = (float(track.motion.mean[_VEL[0]]), float(track.motion.mean[_VEL[1]]))
                track.missed += 1
                track.coast_until = min(track.coast_until, self._clock)
        self._tracks = [t for t in self._tracks if self._keep(t)]
        candidates = [d for d in self._unclaimed(detections, left_high) if detections.confidence[d] >= self.birth_score]
        self._births(detections, self._reattach(detections, candidates, now), now)
        return [t.snapshot(self.camera) for t in self._tracks if t.hits >= self.min_hits and not self._dormant(t)]

    def held_ids(self) -> frozenset[int]:
        """Ids of the confirmed tracks kept only to be re-identified (not returned by ``update``)."""
        return frozenset(t.track_id for t in self._tracks if t.hits >= self.min_hits and self._dormant(t))

    def _dormant(self, track: _TrackState) -> bool:
        """Lost for longer than ``lost_after_s``: kept only to be re-identified, never returned."""
        return track.missed > 0 and self._clock - track.last_seen_t > self.lost_after_s

    def _advance(self, now: float) -> None:
        step = 0.0 if self._last_now is None else now - self._last_now
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time in seconds, got {now}")
        self._clock += max(step, 0.0)  # a clock that steps back freezes time instead of reviving it
        self._last_now = now

    def _split(self, detections: Detections, confident: np.ndarray | None) -> tuple[list[int], list[int]]:
        scores = detections.confidence
        if confident is None:
            is_high = scores >= self.high_score
        else:
            is_high = np.asarray(confident, bool).reshape(-1)
            if is_high.shape != scores.shape:
                raise ValueError(f"confident has shape {is_high.shape}, detections {scores.shape}")
        is_low = ~is_high & (scores >= self.low_score)
        return [int(i) for i in np.flatnonzero(is_high)], [int(i) for i in np.flatnonzero(is_low)]

    def _predict(self) -> None:
        """Move every track to the clock: at full velocity until it first goes unmatched in an update,
        but at most ``_COAST_S`` past its last match (frames skipped between updates are predicted
        through); from then on with its velocity decaying (time constant ``velocity_decay_s``)."""
        for track in self._tracks:
            if self._dormant(track):
                continue  # never matched by motion: re-attaching restarts its motion where it is found
            steady = max(0.0, min(self._clock, track.coast_until) - track.predicted_t)
            damped = self._clock - track.predicted_t - steady
            track.motion.predict(steady, 1.0)
            if damped > 0:
                decay = math.exp(-damped / self.velocity_decay_s)
                track.motion.predict(self.velocity_decay_s * (1.0 - decay), decay)  # travel of a decaying velocity
            track.predicted_t = self._clock

    def _match(
        self, tracks: list[int], dets: list[int], detections: Detections, iou_min: float, lost_ok: bool
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """IoU stage then centre-distance stage; returns matches, tracks left, detections left."""
        if not tracks or not dets:
            return [], tracks, dets
        predicted = np.stack([self._tracks[t].motion.box() for t in tracks])
        boxes = detections.xyxy[dets]
        classes = np.array([self._tracks[t].class_id for t in tracks])
        same_class = classes[:, None] == detections.class_id[dets][None, :]
        similarity = None if self._similarity is None else self._similarity[tracks][:, dets]
        if similarity is not None:
            same_class &= ~(similarity < self.appearance_veto)  # NaN (no appearance) vetoes nothing
        iou = np.where(same_class, box_iou(predicted, boxes), 0.0)
        pairs = hungarian(
            iou, list(range(len(tracks))), list(range(len(dets))), iou_min, self._ranking(iou, similarity)
        )
        if self.max_center_distance > 0:
            taken_t, taken_d = {p[0] for p in pairs}, {p[1] for p in pairs}
            rows = [r for r in range(len(tracks)) if r not in taken_t]
            cols = [c for c in range(len(dets)) if c not in taken_d]
            since = np.array([self._clock - self._tracks[tracks[r]].last_seen_t for r in rows], np.float64).reshape(-1)
            lost_s = since if lost_ok else np.zeros(len(rows))
            gate = self.max_center_distance * (1.0 + self.lost_center_growth * np.minimum(lost_s, self.lost_after_s))
            gate = gate * np.clip(since / _GATE_RAMP_S, 0.0, 1.0)
            open_gate = gate > 0  # a track matched at this very time (the clock did not advance): IoU only
            rows, gate = [r for r, o in zip(rows, open_gate) if o], gate[open_gate]
            closeness = center_closeness(predicted[rows], boxes[cols], gate, self.max_size_ratio)
            closeness = np.where(same_class[np.ix_(rows, cols)], closeness, 0.0)
            closeness = self._crowd_gate(
                closeness, [tracks[r] for r in rows], boxes[cols], detections.class_id[dets][cols]
            )
            ranking = None if similarity is None else self._ranking(closeness, similarity[rows][:, cols])
            pairs += hungarian(closeness, rows, cols, 1e-6, ranking)
        matches = [(tracks[r], dets[c]) for r, c in pairs]
        used_t, used_d = {m[0] for m in matches}, {m[1] for m in matches}
        return matches, [t for t in tracks if t not in used_t], [d for d in dets if d not in used_d]

    def _appearance_similarity(self, detections: Detections) -> np.ndarray | None:
        """(tracks, detections) cosine similarity for this update; None when appearance takes no part."""
        if (
            (self.appearance_weight == 0 and self.appearance_veto == 0)
            or detections.embedding is None
            or len(detections) == 0
        ):
            return None
        if self.appearance_gallery == 1:
            return cosine([t.appearance for t in self._tracks], detections.embedding)
        return nearest_cosine([t.gallery for t in self._tracks], detections.embedding)

    def _ranking(self, motion: np.ndarray, similarity: np.ndarray | None) -> np.ndarray | None:
        """Motion fused with appearance where the track has one; None (motion alone) when nothing has."""
        if similarity is None or self.appearance_weight == 0 or np.isnan(similarity).all():
            return None
        fused = (1.0 - self.appearance_weight) * motion + self.appearance_weight * similarity
        return np.where(np.isnan(similarity), motion, fused)

    def _crowd_gate(self, closeness: np.ndarray, rows: list[int], boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Zero the centre-distance scores of lost tracks (``rows``: track indices) for the detections
        (``boxes``, ``classes``) that overlap a live track's predicted box of their class at IoU >=
        ``_CROWD_IOU``. Live: confirmed and seen in the previous update (``missed`` is only updated
        after all stages, so it still says that)."""
        lost = np.array([self._tracks[t].missed > 0 for t in rows], bool)
        live = [t for t in self._tracks if t.missed == 0 and t.hits >= self.min_hits]
        if not lost.any() or not live or closeness.size == 0:
            return closeness
        crowded = (
            self._overlap(boxes, classes, [t.motion.box() for t in live], [t.class_id for t in live]) >= _CROWD_IOU
        )
        return np.where(lost[:, None] & crowded[None, :], 0.0, closeness)

    def _unclaimed(self, detections: Detections, candidates: list[int]) -> list[int]:
        """The birth candidates overlapping no confirmed track's box of their class at IoU >= ``_BIRTH_IOU``."""
        claimed = [t for t in self._tracks if t.hits >= self.min_hits and not self._dormant(t)]
        if not candidates or not claimed:
            return candidates
        boxes = [t.xyxy if t.missed == 0 else t.motion.box() for t in claimed]
        overlap = self._overlap(
            detections.xyxy[candidates], detections.class_id[candidates], boxes, [t.class_id for t in claimed]
        )
        return [d for d, o in zip(candidates, overlap) if o < _BIRTH_IOU]

    @staticmethod
    def _overlap(boxes: np.ndarray, classes: np.ndarray, track_boxes: list, track_classes: list) -> np.ndarray:
        """(N,) largest IoU of each box with a track box of the same class."""
        iou = box_iou(boxes, np.stack(track_boxes))
        same = np.asarray(classes)[:, None] == np.asarray(track_classes)[None, :]
        return np.where(same, iou, 0.0).max(axis=1)

    def _apply_match(self, track: _TrackState, detections: Detections, index: int, now: float) -> None:
        box = np.array(detections.xyxy[index], np.float32)  # a copy: the caller's array stays untouched
        track.motion.correct(box)
        track.xyxy = box
        track.confidence = float(detections.confidence[index])
        track.last_seen, track.last_seen_t = now, self._clock
        track.coast_until = self._clock + _COAST_S
        track.hits += 1
        track.missed = 0
        track.history.append(anchor_point(box))
        if detections.embedding is not None and detections.confidence[index] >= self.high_score:
            self._learn(track, detections.embedding[index])

    def _learn(self, track: _TrackState, row: np.ndarray) -> None:
        """Blend one unit embedding into the track's appearance (low-score boxes, often occluded, are not)."""
        row = np.asarray(row, np.float32)
        if track.appearance is None or track.appearance.shape != row.shape:
            track.appearance = row.copy()
            track.gallery = deque(maxlen=self.appearance_gallery)
        else:
            blended = self.appearance_momentum * track.appearance + (1.0 - self.appearance_momentum) * row
            norm = math.sqrt(float(blended @ blended))
            track.appearance = blended / norm if norm > 0 else row.copy()
        if self.appearance_gallery > 1:
            track.gallery.append(row.copy())

    def _walked_out(self, track: _TrackState) -> bool:
        """A lost track that was moving out near the picture's border, and at that speed would by now be past it."""
        if self.frame_size is None or track.exit_velocity is None:
            return False
        width, height = self.frame_size
        x1, y1, x2, y2 = (float(v) for v in track.xyxy)
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        gone = self._clock - track.last_seen_t
        vx, vy = track.exit_velocity
        cx, cy = (x1 + x2) / 2 + vx * gone, (y1 + y2) / 2 + vy * gone
        outward = _EXIT_SPEED * h
        return (
            (x1 <= _EDGE_REACH * w and vx <= -outward and cx < 0)
            or (x2 >= width - _EDGE_REACH * w and vx >= outward and cx > width)
            or (y1 <= _EDGE_REACH * h and vy <= -outward and cy < 0)
            or (y2 >= height - _EDGE_REACH * h and vy >= outward and cy > height)
        )

    def _keep(self, track: _TrackState) -> bool:
        if track.missed == 0:
            return True
        if track.hits < self.min_hits or self._walked_out(track):
            return False  # a tentative track must be matched in every update; one that walked out is gone
        lost = self._clock - track.last_seen_t
        return lost <= self.lost_after_s or (track.appearance is not None and lost <= self.reid_window_s)

    def _reattach(self, detections: Detections, candidates: list[int], now: float) -> list[int]:
        """Re-identify lost and dormant tracks among the birth ``candidates``; returns the candidates left."""
        waiting = [t for t in self._tracks if t.missed > 0 and t.hits >= self.min_hits and t.appearance is not None]
        if not candidates or not waiting or detections.embedding is None:
            return candidates
        similarity = cosine([t.appearance for t in waiting], detections.embedding[candidates])
        assert similarity is not None
        score = np.nan_to_num(similarity, nan=-1.0) * self._plausible(waiting, detections, candidates)
        distinct = score - self._runner_up(score) >= self.reid_margin
        admitted = np.where(distinct, score, -1.0)
        pairs = hungarian(admitted, list(range(len(waiting))), candidates, self.reid_similarity)
        for row, d_index in pairs:
            track = waiting[row]
            track.motion = _Motion.start(
                np.array(detections.xyxy[d_index], np.float32),
                self.measurement_noise,
                self.acceleration_noise,
                self.initial_speed,
            )
            track.predicted_t = self._clock
            self._apply_match(track, detections, d_index, now)
        taken = {d for _, d in pairs}
        return [d for d in candidates if d not in taken]

    def _plausible(self, tracks: list[_TrackState], detections: Detections, candidates: list[int]) -> np.ndarray:
        """(T, N) 1 where the detection is of the track's class and within reach of its last box, else 0."""
        last = np.stack([t.xyxy for t in tracks])
        boxes = detections.xyxy[candidates]
        gap = np.array([self._clock - t.last_seen_t for t in tracks])[:, None]
        height = np.maximum((last[:, 3] - last[:, 1])[:, None], (boxes[:, 3] - boxes[:, 1])[None, :])
        centre = (last[:, None, :2] + last[:, None, 2:] - boxes[None, :, :2] - boxes[None, :, 2:]) / 2
        reach = (1.0 + self.reid_max_speed * gap) * height
        same = np.array([t.class_id for t in tracks])[:, None] == detections.class_id[candidates][None, :]
        return (same & (np.linalg.norm(centre, axis=2) <= reach)).astype(np.float32)

    @staticmethod
    def _runner_up(score: np.ndarray) -> np.ndarray:
        """(T, N) for each pair the best score of another pair sharing its track or its detection."""
        out = np.full(score.shape, -1.0, np.float32)
        for axis in (0, 1):
            if score.shape[axis] < 2:
                continue
            ordered = np.sort(score, axis=axis)
            first, second = np.take(ordered, -1, axis=axis), np.take(ordered, -2, axis=axis)
            first, second = np.expand_dims(first, axis), np.expand_dims(second, axis)
            other = np.where(score >= first, second, first)  # the best of the others on this row/column
            out = np.maximum(out, other)
        return out

    def _births(self, detections: Detections, candidates: list[int], now: float) -> None:
        for d_index in candidates:
            box = np.array(detections.xyxy[d_index], np.float32)
            state = _TrackState(
                track_id=self._next_id,
                class_id=int(detections.class_id[d_index]),
                motion=_Motion.start(box, self.measurement_noise, self.acceleration_noise, self.initial_speed),
                xyxy=box,
                confidence=float(detections.confidence[d_index]),
                first_seen=now,
                last_seen=now,
                last_seen_t=self._clock,
                predicted_t=self._clock,
                coast_until=self._clock + _COAST_S,
                history=deque([anchor_point(box)], maxlen=self.history),
            )
            self._next_id += 1
            if detections.embedding is not None:
                self._learn(state, detections.embedding[d_index])
            self._tracks.append(state)
