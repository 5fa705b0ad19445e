"""The pose check in the page: every result scored against the pose it was asked for
(:mod:`cfld.metrics.pose_accuracy`: PCKh@0.5, PCK@0.1 and the joints found), shown as a line under it, with a
warning sentence when its PCK@0.1 is below :data:`~cfld.metrics.pose_accuracy.WARN_BELOW` (docs/pose-check.md)."""

from __future__ import annotations

import threading

from ..errors import MissingDependencyError
from ..metrics.pose_accuracy import WARN_BELOW, PoseScorer

NO_MEDIAPIPE_LINE = "pose check: not run, it needs MediaPipe (pip install 'cfld[detect]')"
NO_JOINTS_LINE = "pose check: not run, the target pose has no joint to check against"


class PoseScores:
    """One MediaPipe detector (made on first use, closed by :meth:`close`) that scores the app's results:
    :meth:`score` gives a :class:`~cfld.metrics.pose_accuracy.PoseScore`, or None without MediaPipe."""

    def __init__(self):
        self._scorer = None
        self.missing = False  # MediaPipe is not installed: every line says so
        self._lock = threading.Lock()  # MediaPipe is not thread safe (the page runs one generation at a time anyway)

    def score(self, image, target, name: str):
        """``image`` (a PIL image) scored against ``target`` (a Pose in any frame: stretched onto the image, as
        its pose image was drawn); None without MediaPipe or when the target has no joint."""
        if not target.visible.any():
            return None
        with self._lock:
            if self._scorer is None and not self.missing:
                try:
                    self._scorer = PoseScorer()
                except MissingDependencyError:
                    self.missing = True
            return None if self._scorer is None else self._scorer(image, target, name)

    def line(self, score, what: str = "the result") -> str:
        """A markdown line for one result: its numbers, with a warning sentence when it misses its pose."""
        if score is None:
            return NO_MEDIAPIPE_LINE if self.missing else NO_JOINTS_LINE
        text = f"pose check: {score.line()}"
        if score.misses(WARN_BELOW):
            text += f". **Warning: {what} misses its target pose** (PCK@0.1 {score.pck:.2f} < {WARN_BELOW}): look at " \
                    "it before using it."
        return text

    def lines(self, results) -> str:
        """A markdown list for several ``(name, image, target pose)``: a line each, then a warning sentence naming
        those that miss their pose."""
        scores = [(name, self.score(image, target, name)) for name, image, target in results]
        if all(score is None for _, score in scores):
            return self.line(None)
        rows = [f"- {name}: {'not checked' if score is None else score.line()}" for name, score in scores]
        missed = [name for name, score in scores if score is not None and score.misses(WARN_BELOW)]
        text = "pose check (PCKh@0.5, PCK@0.1, joints found):\n" + "\n".join(rows)
        if len(missed) == 1:
            text += (f"\n\n**Warning: {missed[0]} misses its target pose** (PCK@0.1 < {WARN_BELOW}): look at it "
                     "before using it.")
        elif missed:
            text += (f"\n\n**Warning: {', '.join(missed)} miss their target poses** (PCK@0.1 < {WARN_BELOW}): look "
                     "at them before using them.")
        return text

    def close(self) -> None:
        """Close the detector (a later score makes a new one)."""
        with self._lock:
            if self._scorer is not None:
                self._scorer.close()
                self._scorer = None
