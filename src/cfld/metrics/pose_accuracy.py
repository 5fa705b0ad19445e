"""Did it work? The pose check: find the person in a generated image and count the target joints it hits.

Pose-guided synthesis exists to put a person in a given pose, yet FID, LPIPS, SSIM and PSNR never look at
the pose: a sharp person in the wrong pose can score well. The pose-transfer literature (PG2, Deformable
GANs, PATN and their successors) also reports **PCKh**; we compute it, and two companions, for every image:

``pckh``
    PCKh@0.5 as the pose-transfer papers compute it (PATN's ``tool/calPCKH_fashion.py``, used by its
    successors): the *head size* is the box of the target's head joints among nose, neck, eyes and ears
    (OpenPose-18 joints 0, 1, 14-17; at least two of them), of width ``w`` and height ``h``; a target joint
    is hit when a joint of the same name was found with ``|dx| < 0.5 w`` and ``|dy| < 0.5 h``. Targets with
    fewer than two head joints have no head size: the papers skip them, and their ``pckh`` is None here.
    Over a set, the papers pool the joints (hits over target joints of every image with a head size):
    :func:`summarize` reports that pooled number beside the per-image mean.
``pck``
    PCK@0.1 of the target joints' box diagonal: hit when the found joint lies within 0.1 x the diagonal of
    the box of the target's joints. Defined for every target with a joint, and the one the warning reads.
``found``
    The share of target joints the detector found at all, wherever it put them.

Joints the target does not have are not counted. An image in which no person is found scores 0 on all three
and is counted (the papers' detector, too, returns no joints there). The detector is ours (MediaPipe's
BlazePose mapped onto OpenPose-18, :mod:`cfld.pose.detect`), not the papers' OpenPose: its neck is the
shoulders' midpoint, its hips sit a little higher and wider than OpenPose's, and it never returns a joint it
places outside the image. ``benchmarks/pose_accuracy.py`` measures what this does to real photos (the
detector's own ceiling) and to two published methods' outputs; docs/pose-check.md has the table.

What the score cannot see: who the person is and what they wear. A photo of somebody else in the target pose
scores as high as a perfect result; use LPIPS/FID/SSIM (``cfld evaluate``) for appearance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..pose import Pose, PoseDetector

#: OpenPose-18 joints whose box is the head size of PCKh: nose, neck, eyes, ears.
HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)
PCKH_ALPHA = 0.5  # hit within half the head box's width and height
PCK_ALPHA = 0.1  # hit within a tenth of the target joints' box diagonal
#: The default warning threshold on PCK@0.1: a result scoring below it "misses the target pose". Chosen on
#: ``benchmarks/pose_accuracy.py`` (docs/pose-check.md): it flags few real photos and published results and
#: most wrong-pose images.
WARN_BELOW = 0.5
METRICS = ("pckh", "pck", "found")


@dataclass(frozen=True)
class PoseScore:
    """How well the person found in one image holds the target pose (counts; the shares are properties).

    ``joints``: target joints counted; ``found``/``pck_hits``/``pckh_hits``: of them, found at all, within
    PCK@0.1, within PCKh@0.5 (None when the target has no head size); ``person``: whether anybody was found.
    """

    joints: int
    found_joints: int
    pck_hits: int
    pckh_hits: int | None
    person: bool

    @property
    def pck(self) -> float:
        return self.pck_hits / self.joints if self.joints else 0.0

    @property
    def pckh(self) -> float | None:
        return None if self.pckh_hits is None or not self.joints else self.pckh_hits / self.joints

    @property
    def found(self) -> float:
        return self.found_joints / self.joints if self.joints else 0.0

    def misses(self, threshold: float = WARN_BELOW) -> bool:
        """Whether the result misses the target pose: its PCK@0.1 is below ``threshold``."""
        return self.pck < threshold

    def to_dict(self, threshold: float | None = None) -> dict:
        """The three shares (rounded to 4 places), the counts, and with ``threshold`` the ``misses`` flag."""
        pckh = self.pckh
        row = {"pckh": None if pckh is None else round(pckh, 4), "pck": round(self.pck, 4),
               "found": round(self.found, 4), "person_found": self.person, "joints": self.joints}
        if threshold is not None:
            row["misses_pose"] = self.misses(threshold)
        return row

    def line(self) -> str:
        """``PCKh 0.93, PCK 0.88, 15/16 joints found`` (or ``no person found``), for a terminal."""
        if not self.person:
            return f"no person found (0 of {self.joints} target joints)"
        pckh = "n/a (no head in the target)" if self.pckh is None else f"{self.pckh:.2f}"
        return f"PCKh {pckh}, PCK {self.pck:.2f}, {self.found_joints}/{self.joints} joints found"


def head_size(target: Pose) -> tuple[float, float] | None:
    """``(w, h)`` of the box of the target's head joints (nose, neck, eyes, ears), or None with fewer than two."""
    head = [j for j in HEAD_JOINTS if target.visible[j]]
    if len(head) < 2:
        return None
    points = target.xy[head]
    w, h = points.max(0) - points.min(0)
    return float(w), float(h)


def stretch(pose: Pose, frame: tuple[int, int]) -> Pose:
    """The pose stretched from its frame onto ``frame`` = (H, W), as :func:`cfld.pose.pose_image` draws it."""
    if tuple(pose.frame) == tuple(frame):
        return pose
    (h, w), (new_h, new_w) = pose.frame, frame
    xy = (pose.xy + 0.5) * [new_w / w, new_h / h] - 0.5
    return pose.replace(xy=xy, frame=(int(new_h), int(new_w)))


def score_pose(found: Pose | None, target: Pose, *, pck_alpha: float = PCK_ALPHA,
               pckh_alpha: float = PCKH_ALPHA) -> PoseScore:
    """Score the pose ``found`` in an image (None: nobody found) against the ``target`` it was asked for.

    Both are taken in the image's frame: ``target`` is stretched onto ``found``'s frame when they differ. The
    alphas are the standard 0.1 and 0.5 unless given (the benchmark tries tighter ones).
    """
    annotated = target.visible
    joints = int(annotated.sum())
    if joints == 0:
        raise InputError(target.name or "target pose", "has no joint to score against")
    if found is not None:
        target = stretch(target, found.frame)
    head = head_size(target)
    if found is None:
        return PoseScore(joints, 0, 0, None if head is None else 0, person=False)
    hit = annotated & found.visible
    error = np.abs(np.where(hit[:, None], found.xy, np.inf) - target.xy)
    points = target.xy[annotated]
    diagonal = float(np.hypot(*(points.max(0) - points.min(0))))
    pck = hit & (np.hypot(error[:, 0], error[:, 1]) <= pck_alpha * diagonal)
    pckh_hits = None
    if head is not None:
        w, h = head
        pckh_hits = int((hit & (error[:, 0] < pckh_alpha * w) & (error[:, 1] < pckh_alpha * h)).sum())
    return PoseScore(joints, int(hit.sum()), int(pck.sum()), pckh_hits, person=True)


class PoseScorer:
    """The pose check with one detector kept open: ``scorer(image, target)`` -> :class:`PoseScore`.

        with PoseScorer() as scorer:
            score = scorer("result.png", target_pose)
            if score.misses():
                print("result.png misses the target pose:", score.line())

    ``image``: a path, PIL image or HxWx3 uint8 array; ``target``: a :class:`~cfld.pose.Pose` in any frame
    (stretched onto the image as the pose image was). Needs MediaPipe (``pip install 'cfld[detect]'``).
    """

    def __init__(self, detector: PoseDetector | None = None):
        self._own = detector is None
        self.detector = PoseDetector() if detector is None else detector

    def __call__(self, image, target: Pose, source: str | None = None) -> PoseScore:
        detection = self.detector.detect(image, source)
        found = None if detection is None else detection.pose(self.detector.min_confidence)
        if found is not None and not found.visible.any():
            found = None
        return score_pose(found, target)

    def close(self) -> None:
        if self._own:
            self.detector.close()

    def __enter__(self) -> PoseScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summarize(scores: Iterable[PoseScore], threshold: float = WARN_BELOW) -> dict:
    """A set of scores in one dict: ``pckh`` pooled as the papers pool it (hits over joints of the images with
    a head size), ``pck`` and ``found`` pooled likewise over all, each image's mean and standard deviation
    (``*_mean``, ``*_std``), ``images``, ``no_person`` and ``misses_pose`` (images with PCK below ``threshold``)."""
    scores = list(scores)
    if not scores:
        raise InputError("pose scores", "no image to summarize")
    headed = [s for s in scores if s.pckh_hits is not None]
    result = {
        "pckh": _ratio(sum(s.pckh_hits for s in headed), sum(s.joints for s in headed)),
        "pck": _ratio(sum(s.pck_hits for s in scores), sum(s.joints for s in scores)),
        "found": _ratio(sum(s.found_joints for s in scores), sum(s.joints for s in scores)),
    }
    for metric in METRICS:
        values = [getattr(s, metric) for s in scores if getattr(s, metric) is not None]
        result[f"{metric}_mean"] = round(float(np.mean(values)), 4) if values else None
        result[f"{metric}_std"] = round(float(np.std(values)), 4) if values else None
    result.update(images=len(scores), no_person=sum(not s.person for s in scores),
                  misses_pose=sum(s.misses(threshold) for s in scores), threshold=threshold)
    return result


SCORES_FILE = "scores.csv"  # the name the commands give it beside their results
#: The columns of ``scores.csv``, one row per result (commands write it beside their outputs).
SCORE_COLUMNS = ("file", "pckh", "pck", "found", "person_found", "joints", "misses_pose")


def scores_csv(rows: Iterable[tuple[str, PoseScore | None]], threshold: float = WARN_BELOW) -> str:
    """``scores.csv``'s text: a header of :data:`SCORE_COLUMNS`, then per ``(file, score)`` its numbers
    (a score of None, a result not checked, leaves the numbers empty)."""
    lines = [",".join(SCORE_COLUMNS)]
    for file, score in rows:
        if "," in file or '"' in file or "\n" in file:
            file = '"' + file.replace('"', '""') + '"'
        if score is None:
            lines.append(file + "," * (len(SCORE_COLUMNS) - 1))
            continue
        row = score.to_dict(threshold)
        cells = ["" if row[k] is None else str(row[k]).lower() if isinstance(row[k], bool) else str(row[k])
                 for k in SCORE_COLUMNS[1:]]
        lines.append(",".join([file, *cells]))
    return "\n".join(lines) + "\n"


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def check_threshold(value: float, source: str = "--pose-threshold") -> float:
    """The warning threshold, checked: a share in [0, 1]."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
        raise InputError(source, f"must be a share in [0, 1], got {value!r}")
    return float(value)


__all__ = ["HEAD_JOINTS", "METRICS", "PCKH_ALPHA", "PCK_ALPHA", "SCORE_COLUMNS", "SCORES_FILE", "PoseScore",
           "PoseScorer", "WARN_BELOW", "check_threshold", "head_size", "score_pose", "scores_csv", "stretch",
           "summarize"]
