"""The OpenPose-18 (COCO-18) skeleton and the :class:`Pose` type every other pose function works on.

Coordinates follow the pixel convention of the DeepFashion / Market-1501 annotations that CFLD was
trained on: ``x`` is the column and ``y`` the row of a pixel, pixel centres sit on integers, so a
frame of ``(height, width)`` spans ``[-0.5, width - 0.5] x [-0.5, height - 0.5]``. Mirroring is then
``x -> width - 1 - x`` and maps pixel centres onto pixel centres.

Joints outside the frame
    Real annotations contain them: 19 rows of the DeepFashion test split have one joint (an elbow, a
    shoulder or a knee) up to 31 pixels beyond the image border, e.g. ``x = -18`` in a 176 wide
    frame. The original renderer draws such joints anyway: the bones towards them are clipped at the
    border and the visible tail of their Gaussian appears at the edge of the heatmap. We keep them
    unchanged so that our pose images stay identical to the original's (:attr:`Pose.outside` and
    :meth:`Pose.outside_note` name them; the command line prints that note). A joint more than one
    whole frame size outside the frame, or a pose whose every visible joint is outside, is rejected
    with an :class:`~cfld.errors.InputError`: that is a wrong frame size or wrong units, not an
    annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError

#: The 18 joints in OpenPose COCO-18 order; "right" is the person's right (the image's left side
#: for a person facing the camera).
JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)

#: The 17 bones (limbs) as (from, to) joint indices, in the order they are drawn: arms, legs, then
#: the head. Bone ``i`` is drawn in ``BONE_COLORS[i]``.
BONES: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

#: RGB colour of each joint: the OpenPose hue wheel, from red (nose) round to pink (left ear).
JOINT_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip

#: RGB colour of each bone: the first 17 joint colours at 60 % brightness.
BONE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    (r * 3 // 5, g * 3 // 5, b * 3 // 5) for r, g, b in JOINT_COLORS[: len(BONES)]
)

#: Joint index after a horizontal flip: every left joint trades places with its right twin.
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    JOINT_NAMES.index(name.replace("right_", "@").replace("left_", "right_").replace("@", "left_"))
    for name in JOINT_NAMES
)

Size = tuple[int, int]  # (height, width)

#: The benchmark frames, as (height, width): DeepFashion's 256x176 (the paper's Table 2; 512x352 is the other)
#: and Market-1501's 128x64. The frames of their annotation files, and our default output, framing and
#: evaluation size.
DEEPFASHION_SIZE: Size = (256, 176)
MARKET1501_SIZE: Size = (128, 64)


def parse_size(value: int | tuple[int, int] | list[int], source: object = "size") -> Size:
    """Return ``(height, width)`` from an int (a square) or a pair, refusing anything but positive ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise InputError(source, f"a frame size must be two whole numbers [height, width], got {value!r}")
    if min(pair) <= 0:
        raise InputError(source, f"a frame size must be positive, got {pair[0]}x{pair[1]} (height x width)")
    return int(pair[0]), int(pair[1])


def _joint_list(mask: np.ndarray) -> str:
    names = [JOINT_NAMES[i].replace("_", " ") for i in np.flatnonzero(mask)]
    return ", ".join(names)


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's 18 OpenPose keypoints in a frame of ``(height, width)`` pixels.

    Attributes:
        xy: ``(18, 2)`` float64 array of ``(x, y)`` pixel coordinates; NaN for missing joints.
        confidence: ``(18,)`` float64 array; 0 marks a missing joint. Annotation rows give 1 to every
            present joint, OpenPose files their detector score.
        frame: ``(height, width)`` of the image the coordinates refer to.
        name: where the pose came from (an annotation name or a file name), or None.

    The arrays are copied and made read-only, so a Pose can be shared freely. Construction checks
    shapes, finiteness and the frame (see the module docstring about joints outside the frame) and
    raises :class:`~cfld.errors.InputError` naming ``name``; a pose may have no visible joint at all
    (the DeepFashion test split has 619 such rows), use :meth:`require_visible` where that matters.
    """

    xy: np.ndarray
    confidence: np.ndarray
    frame: Size
    name: str | None = None

    def __post_init__(self) -> None:
        source = self.name or "pose"
        xy = np.array(self.xy, dtype=np.float64)
        confidence = np.array(self.confidence, dtype=np.float64)
        if xy.shape != (NUM_JOINTS, 2):
            raise InputError(source, f"expected {NUM_JOINTS} (x, y) keypoints (OpenPose COCO-18), got shape {xy.shape}")
        if confidence.shape != (NUM_JOINTS,):
            raise InputError(source, f"expected {NUM_JOINTS} confidences, got shape {confidence.shape}")
        if not np.isfinite(confidence).all() or (confidence < 0).any():
            raise InputError(source, "confidences must be finite and not negative")
        visible = confidence > 0
        bad = visible & ~np.isfinite(xy).all(axis=1)
        if bad.any():
            raise InputError(source, f"joint {_joint_list(bad)} has a non-finite coordinate but a confidence above 0")
        xy[~visible] = np.nan
        frame = parse_size(self.frame, source)
        _check_frame(xy[visible], visible, frame, source)
        xy.flags.writeable = False
        confidence.flags.writeable = False
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "frame", frame)

    # -- construction from the annotation convention -------------------------------------------

    @classmethod
    def from_yx(cls, ys, xs, frame: Size, name: str | None = None) -> Pose:
        """Build a pose from DeepFashion/Market-style ``y`` and ``x`` lists, ``-1`` marking a missing joint."""
        ys = np.asarray(ys, dtype=np.float64)
        xs = np.asarray(xs, dtype=np.float64)
        if ys.shape != (NUM_JOINTS,) or xs.shape != (NUM_JOINTS,):
            raise InputError(
                name or "pose", f"expected {NUM_JOINTS} y and {NUM_JOINTS} x values, got {ys.size} and {xs.size}"
            )
        visible = (ys != -1) & (xs != -1)
        return cls(np.stack([xs, ys], axis=1), visible.astype(np.float64), frame, name)

    # -- views ---------------------------------------------------------------------------------

    @property
    def visible(self) -> np.ndarray:
        """``(18,)`` bool mask of the joints that are present."""
        return self.confidence > 0

    @property
    def num_visible(self) -> int:
        return int(self.visible.sum())

    @property
    def outside(self) -> np.ndarray:
        """``(18,)`` bool mask of visible joints that lie outside the frame (kept, drawn clipped)."""
        height, width = self.frame
        x, y = self.xy[:, 0], self.xy[:, 1]
        with np.errstate(invalid="ignore"):
            inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
        return self.visible & ~inside

    def outside_note(self) -> str | None:
        """A one-line note naming the joints outside the frame, or None when there are none."""
        outside = self.outside
        if not outside.any():
            return None
        height, width = self.frame
        count = int(outside.sum())
        return (
            f"{self.name or 'pose'}: {count} joint{'s' if count > 1 else ''} ({_joint_list(outside)}) "
            f"outside the {height}x{width} frame, kept and drawn clipped at the border like the original renderer"
        )

    def require_visible(self, source: object | None = None) -> Pose:
        """Return self, or raise InputError if no joint is visible (nothing to draw or condition on)."""
        if self.num_visible == 0:
            raise InputError(source or self.name or "pose", "has no visible joint (every keypoint is missing)")
        return self

    def to_yx(self) -> tuple[list[float], list[float]]:
        """``(ys, xs)`` lists in the annotation convention, ``-1`` for missing joints."""
        ys = np.where(self.visible, self.xy[:, 1], -1.0)
        xs = np.where(self.visible, self.xy[:, 0], -1.0)
        return ys.tolist(), xs.tolist()

    def replace(self, **changes) -> Pose:
        """A copy with some fields changed (the dataclass is frozen)."""
        fields = {"xy": self.xy, "confidence": self.confidence, "frame": self.frame, "name": self.name}
        fields.update(changes)
        return Pose(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pose):
            return NotImplemented
        return (
            self.frame == other.frame
            and self.name == other.name
            and np.array_equal(self.xy, other.xy, equal_nan=True)
            and np.array_equal(self.confidence, other.confidence)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        height, width = self.frame
        return f"Pose(name={self.name!r}, frame={height}x{width}, visible={self.num_visible}/{NUM_JOINTS})"


def _check_frame(xy_visible: np.ndarray, visible: np.ndarray, frame: Size, source: str) -> None:
    """Refuse coordinates that cannot belong to this frame (see the module docstring)."""
    if xy_visible.size == 0:
        return
    height, width = frame
    x, y = xy_visible[:, 0], xy_visible[:, 1]
    far = (x < -width - 0.5) | (x > 2 * width - 0.5) | (y < -height - 0.5) | (y > 2 * height - 0.5)
    if far.any():
        names = np.flatnonzero(visible)[far]
        joint = JOINT_NAMES[names[0]].replace("_", " ")
        raise InputError(
            source,
            f"joint {joint} at (x={x[far][0]:g}, y={y[far][0]:g}) lies more than a frame size outside the "
            f"{height}x{width} (height x width) frame; is the frame size right?",
        )
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    if not inside.any():
        raise InputError(
            source,
            f"no visible joint lies inside the {height}x{width} (height x width) frame; is the frame size right?",
        )


# -- geometric operations ------------------------------------------------------------------------


def pck_counts(found: np.ndarray | None, truth: np.ndarray, annotated: np.ndarray,
               thresholds: tuple[float, ...] = (0.1,)) -> np.ndarray:
    """Percentage of correct keypoints, as counts: ``(len(thresholds), 2)`` of annotated joints found within
    ``threshold`` x the diagonal of the annotated joints' box, and of annotated joints.

    ``found`` and ``truth`` are ``(18, 2)`` (x, y) in one frame (NaN: not found); ``annotated`` is truth's
    ``(18,)`` bool mask; ``found`` None counts every joint as missed.
    """
    counts = np.zeros((len(thresholds), 2))
    counts[:, 1] = annotated.sum()
    if found is None or not annotated.any():
        return counts
    points = truth[annotated]
    diagonal = float(np.hypot(*(points.max(0) - points.min(0))))
    error = np.linalg.norm(np.asarray(found, float) - truth, axis=1)
    for i, threshold in enumerate(thresholds):
        counts[i, 0] = (annotated & np.isfinite(error) & (error <= threshold * diagonal)).sum()
    return counts


def flip(pose: Pose) -> Pose:
    """Mirror the pose left to right, as a horizontally flipped photo would show it.

    Besides mirroring ``x``, left and right joints swap labels, because the mirrored person's right
    hand is the original left hand. Flipping twice gives the pose back exactly.
    """
    width = pose.frame[1]
    perm = list(FLIP_PERMUTATION)
    xy = pose.xy[perm].copy()
    xy[:, 0] = (width - 1) - xy[:, 0]
    return pose.replace(xy=xy, confidence=pose.confidence[perm])


def retarget(
    pose: Pose, frame: Size | int, fit: Literal["frame", "body"] = "frame", padding: float = 0.1
) -> Pose:
    """Scale and centre the pose into another frame, keeping its aspect ratio.

    Args:
        pose: the pose to move.
        frame: the new ``(height, width)``, e.g. ``(256, 176)`` for DeepFashion.
        fit: ``"frame"`` maps the whole old frame into the new one, as resizing the photo to fit
            inside the new frame and centring it (letterboxing) would; ``"body"`` instead fits the
            bounding box of the visible joints, grown by ``padding`` of its size on every side, so a
            small person in a big photo fills the new frame.
        padding: margin around the joints for ``fit="body"``, as a fraction of the box size.
    """
    new_h, new_w = parse_size(frame, "retarget frame")
    if fit == "frame":
        old_h, old_w = pose.frame
        box_x0, box_y0, box_w, box_h = -0.5, -0.5, float(old_w), float(old_h)
    elif fit == "body":
        pose.require_visible()
        if not 0 <= padding <= 10:
            raise InputError("retarget", f"padding must lie in [0, 10], got {padding}")
        pts = pose.xy[pose.visible]
        (x0, y0), (x1, y1) = pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5
        box_x0, box_y0 = x0 - padding * (x1 - x0), y0 - padding * (y1 - y0)
        box_w, box_h = (x1 - x0) * (1 + 2 * padding), (y1 - y0) * (1 + 2 * padding)
    else:
        raise InputError("retarget", f"fit must be 'frame' or 'body', got {fit!r}")
    scale = min(new_h / box_h, new_w / box_w)
    offset = np.array([(new_w - box_w * scale) / 2, (new_h - box_h * scale) / 2])
    xy = (pose.xy - [box_x0, box_y0]) * scale + offset - 0.5
    return pose.replace(xy=xy, frame=(new_h, new_w))
