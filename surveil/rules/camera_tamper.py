"""``camera_tamper``: the view goes dark, loses focus or changes abruptly (moved, covered, sprayed).

Read from the frames themselves, never from the detector. Each frame is reduced to a small grey
image. Three symptoms:
- dark: mean brightness below ``dark_level`` (0-255);
- blurred: sharpness (variance of the Laplacian) below ``blur_ratio`` x the learned baseline;
- changed: more than ``changed_fraction`` of the pixels differ by over 40 grey levels from the
  learned reference view (people walking by change a small fraction; a moved or covered camera
  changes most of it).
The baseline and the reference are learned (slow running averages) only while the view is
healthy, after ``learn_s`` seconds of warm-up. A symptom that lasts ``for_s`` seconds makes the
condition; it ends after ``recover_s`` seconds without symptoms. A view that stays changed for
``relearn_s`` seconds is accepted as the new normal (the camera was deliberately moved).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from surveil.rules.base import Condition, FrameContext, IncidentPolicy, RuleBase

_SMALL = (96, 72)
_CHANGED_LEVEL = 40.0


def small_grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, _SMALL, interpolation=cv2.INTER_AREA).astype(np.float32)


def sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    width = 320
    if grey.shape[1] > width:
        grey = cv2.resize(grey, (width, max(1, grey.shape[0] * width // grey.shape[1])), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class CameraTamperRule(RuleBase):
    type = "camera_tamper"

    def __init__(
        self,
        rule_id: str,
        class_names: Sequence[str] = (),
        *,
        for_s: float = 5.0,
        recover_s: float = 3.0,
        learn_s: float = 5.0,
        relearn_s: float = 300.0,
        dark_level: float = 20.0,
        blur_ratio: float = 0.25,
        changed_fraction: float = 0.6,
        severity: str = "critical",
        policy: IncidentPolicy = IncidentPolicy(),
    ):
        super().__init__(rule_id, severity, policy, class_names)
        self.for_s, self.recover_s, self.learn_s, self.relearn_s = for_s, recover_s, learn_s, relearn_s
        self.dark_level, self.blur_ratio, self.changed_fraction = dark_level, blur_ratio, changed_fraction
        self._reference: np.ndarray | None = None
        self._sharpness: float | None = None
        self._started: float | None = None
        self._symptom_since: float | None = None
        self._clear_since: float | None = None
        self._active = False
        self._symptoms: tuple[str, ...] = ()

    def evaluate(self, ctx: FrameContext) -> list[Condition]:
        if ctx.image is None:
            return self._report()
        small, sharp = small_grey(ctx.image), sharpness(ctx.image)
        self._started = ctx.now if self._started is None else self._started
        symptoms = self._symptoms_of(small, sharp)
        if symptoms:
            self._symptoms = symptoms
            self._clear_since = None
            self._symptom_since = ctx.now if self._symptom_since is None else self._symptom_since
            if ctx.now - self._symptom_since >= self.for_s:
                self._active = True
            if symptoms == ("changed",) and ctx.now - self._symptom_since >= self.relearn_s:
                self._reference, self._symptom_since = small, None  # the new view is the normal one now
        else:
            self._symptom_since = None
            self._clear_since = ctx.now if self._clear_since is None else self._clear_since
            if not self._active or ctx.now - self._clear_since >= self.recover_s:
                self._active = False
                self._learn(small, sharp, ctx.now)
        return self._report()

    def _symptoms_of(self, small: np.ndarray, sharp: float) -> tuple[str, ...]:
        found = []
        if float(small.mean()) < self.dark_level:
            found.append("dark")
        if self._sharpness is not None and sharp < self.blur_ratio * self._sharpness and "dark" not in found:
            found.append("blurred")
        if (
            self._reference is not None
            and float((np.abs(small - self._reference) > _CHANGED_LEVEL).mean()) > self.changed_fraction
        ):
            found.append("changed")
        return tuple(found)

    def _learn(self, small: np.ndarray, sharp: float, now: float) -> None:
        rate = 0.5 if now - (self._started or now) < self.learn_s else 0.05
        self._reference = small if self._reference is None else (1 - rate) * self._reference + rate * small
        self._sharpness = sharp if self._sharpness is None else (1 - rate) * self._sharpness + rate * sharp

    def _report(self) -> list[Condition]:
        if not self._active:
            return []
        return [Condition(key=("view",), details={"symptoms": list(self._symptoms)})]
