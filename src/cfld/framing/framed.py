"""What framing gives: :class:`Crop` (a box in the photo's own pixels) and :class:`Framed` (the framed picture, its
crop, the pose in it), with the pixel maths that carries things drawn on the photo into the framed picture; and
:class:`FramingError`, a photo that cannot be framed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError
from ..pose.detect import MIN_JOINTS, NO_PERSON, detect_pose, too_few_joints
from ..pose.formats import pose_to_json
from ..pose.skeleton import Pose, Size

RECORD_FORMAT = "cfld.framing/v1"  # the "format" of :meth:`Framed.to_json`'s record (what ``cfld frame`` writes)


class FramingError(InputError):
    """A photo that cannot be framed: the one sentence of :class:`InputError`, and :attr:`reason`, one of
    :data:`cfld.left_out.FRAMING_FAILURES`, for callers that sort their failures (``cfld prepare photos``' report)."""

    def __init__(self, source: object, problem: str, reason: str):
        super().__init__(source, problem)
        self.reason = reason


@dataclass(frozen=True)
class Crop:
    """A box in a photo's own pixels (edges: the photo spans ``0..width``, ``0..height``); it may reach beyond
    the photo, where the framed picture is padded."""

    top: int
    left: int
    height: int
    width: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), as PIL takes boxes."""
        return self.left, self.top, self.left + self.width, self.top + self.height

    def to_json(self) -> dict[str, int]:
        return {"top": self.top, "left": self.left, "height": self.height, "width": self.width}

    def inside_fraction(self, frame: Size) -> float:
        """The share of the crop's area that lies inside a photo of ``frame`` = (H, W)."""
        height, width = frame
        ix = max(0, min(self.left + self.width, width) - max(self.left, 0))
        iy = max(0, min(self.top + self.height, height) - max(self.top, 0))
        return ix * iy / (self.width * self.height)


@dataclass(frozen=True)
class Framed:
    """A photo framed for the model: the picture, where it came from, and the pose in it."""

    image: Image.Image  # at ``size``; the photo itself when ``cropped`` is False (unless its background was replaced)
    crop: Crop  # in the photo's own pixels; the whole photo when ``cropped`` is False
    size: Size  # (H, W) of the framed picture
    pose: Pose | None  # in the framed picture's frame (a pass-through photo: the photo's own); None: nobody found
    cropped: bool  # False: the photo was already framed like the training data and goes through unchanged
    photo_size: Size  # (H, W) of the original photo
    background: tuple[int, int, int]  # the colour padding used (the photo's estimated background)
    mask: np.ndarray | None = None  # (H, W) person probability in the framed picture, when found

    def image_at_size(self) -> Image.Image:
        """The framed picture at :attr:`size` (a pass-through photo resized, as the model will resize it)."""
        if self.image.size == (self.size[1], self.size[0]):
            return self.image
        return self.image.resize((self.size[1], self.size[0]), Image.BICUBIC)

    def pose_at_size(self) -> Pose | None:
        """:attr:`pose` in :meth:`image_at_size`'s frame: a photo used as it is has its pose stretched with it, as the
        picture is (pixel centres on integers)."""
        if self.pose is None or self.pose.frame == tuple(self.size):
            return self.pose
        (height, width), (new_h, new_w) = self.pose.frame, self.size
        xy = (np.array(self.pose.xy) + 0.5) * [new_w / width, new_h / height] - 0.5
        return self.pose.replace(xy=xy, frame=tuple(self.size))

    def person_pose(self, source: object, give: str | None = None, min_joints: int = MIN_JOINTS) -> Pose:
        """:attr:`pose`, or one sentence naming ``source`` where nobody (``give``: what to give instead, added to the
        sentence) or fewer than ``min_joints`` joints were found."""
        if self.pose is None:
            raise InputError(source, NO_PERSON if give is None else f"{NO_PERSON}; {give}")
        if self.pose.num_visible < min_joints:
            raise InputError(source, too_few_joints(self.pose.num_visible))
        return self.pose

    def crop_text(self) -> str:
        """Where the crop lies in the photo, for the line that says how a photo was framed: ``a 300x206 crop at top
        12, left 40 of the 500x900 photo`` (heights before widths)."""
        c, (height, width) = self.crop, self.photo_size
        return f"a {c.height}x{c.width} crop at top {c.top}, left {c.left} of the {height}x{width} photo"

    def apply_crop(self, picture: Image.Image) -> Image.Image:
        """Something drawn on the photo (a mask: the photo's aspect, any resolution) cut with the crop and resized to
        :attr:`size` as the photo was; 0 (black) where the crop leaves the photo; bilinear, so a mask stays in its
        range. A photo used as it is (``cropped`` False) leaves ``picture`` as it is."""
        if not self.cropped:
            return picture
        height, width = self.photo_size
        sx, sy = picture.width / width, picture.height / height  # its pixels per photo pixel
        c = self.crop
        box = (c.left * sx, c.top * sy, (c.left + c.width) * sx, (c.top + c.height) * sy)
        whole = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
        # the whole-pixel box padded at its own size (not resampled), then resized keeping the box's fraction
        canvas = crop_resize(picture, whole, (whole[2] - whole[0], whole[3] - whole[1]), 0)
        sub = (box[0] - whole[0], box[1] - whole[1], box[2] - whole[0], box[3] - whole[1])
        return canvas.resize((self.size[1], self.size[0]), Image.BILINEAR, box=sub)

    def move_pose(self, pose: Pose) -> Pose:
        """A pose in the photo's pixels (or in a frame of another size, stretched onto the photo as the model would
        stretch it) moved into the framed picture's frame (pixel centres on integers: a frame's edge is -0.5). A
        photo used as it is (``cropped`` False) leaves ``pose`` as it is."""
        if not self.cropped:
            return pose
        height, width = self.photo_size
        c = self.crop
        frame_h, frame_w = pose.frame
        xy = np.array(pose.xy)
        xy[:, 0] = ((xy[:, 0] + 0.5) * width / frame_w - c.left) * self.size[1] / c.width - 0.5
        xy[:, 1] = ((xy[:, 1] + 0.5) * height / frame_h - c.top) * self.size[0] / c.height - 0.5
        return pose.replace(xy=xy, frame=tuple(self.size))

    def to_json(self) -> dict[str, Any]:
        """What ``cfld frame`` writes beside the framed picture."""
        return {
            "format": RECORD_FORMAT,
            "crop": self.crop.to_json(),
            "size": list(self.size),
            "photo_size": list(self.photo_size),
            "framed": self.cropped,
            "background": list(self.background),
            "pose": None if self.pose is None else pose_to_json(self.pose),
        }


def person_pose(photo, framed: Framed | None, name: str, give: str | None = None,
                min_joints: int = MIN_JOINTS) -> Pose:
    """The pose of the person in ``photo``: the one framing found in its framed picture (``framed``; see
    :meth:`Framed.person_pose` for ``give`` and ``min_joints``), else, where the photo was not framed, detected in
    the whole photo. Errors name the photo by ``name``."""
    if framed is None:
        return detect_pose(photo, source=name)
    return framed.person_pose(name, give, min_joints)


def crop_resize(image: Image.Image, box: tuple[float, float, float, float], out: tuple[int, int],
                fill: tuple[int, int, int]) -> Image.Image:
    """``box`` = (left, top, right, bottom) of ``image``, padded with ``fill`` where it leaves the image, resized
    to ``out`` = (width, height), bicubic and antialiased like the model's own resize."""
    left, top, right, bottom = (int(math.floor(box[0])), int(math.floor(box[1])), int(math.ceil(box[2])),
                                int(math.ceil(box[3])))
    canvas = Image.new(image.mode, (right - left, bottom - top), fill)
    canvas.paste(image, (-left, -top))
    if canvas.size == out:
        return canvas
    # the fractional part of the box is kept by resizing the whole-pixel box's sub-rectangle
    sub = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
    return canvas.resize(out, Image.BICUBIC, box=sub)
