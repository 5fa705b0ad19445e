"""Framing: any photo in, its person placed the way the model's training photos place theirs.

CFLD's models learn from shop photos framed one way: DeepFashion's 256x176 pictures show one person from
the top of the head (the head touches the top edge) down to the feet or to where the photo cuts the
body, horizontally centred, on a plain light background. Stretching a wider photo, or one with a small
person, into that frame gives the model a squashed figure it has never seen. :func:`frame_photo` instead
finds the person and cuts a crop of the model's aspect around them, placed as the training photos place
their person:

1. **Find the person** on the whole photo with MediaPipe's pose model and its person mask (offline, the
   ``detect`` extra). A person too small for the detector's input is searched for in windows.
2. **Place the crop** (:class:`Placement`): the crop's top at the top of the person's mask, its bottom
   below the feet by the margin the training photos leave, or at the mask's bottom where the photo cuts
   the body (no feet seen), and the mask's box centred horizontally. Its height follows, its width is the
   model's aspect.
3. **Detect again** inside that crop (with a margin), where the person is large in the detector's input:
   the final crop comes from this second look.
4. **Cut and resize** the crop to the model's size; where it reaches beyond the photo it is padded with
   the photo's own background colour (the median of the non-person pixels along the crop's border).
5. **The joints** are detected in that framed picture, where the person stands as in the training photos.

A photo that is already framed like the training data (the model's aspect, and a crop that covers it
almost whole) goes through **unchanged**, so results on the datasets' own photos do not move. The
numbers of :class:`Placement` are derived from ``../shared`` (the 246 real DeepFashion test photos and the
4,038 test annotation rows) by ``python benchmarks/framing.py --derive``; ``tests/test_framing.py`` checks
them against the data. The crop box is kept (:attr:`Framed.crop`, in the photo's own pixels), so that a
result can be composited back into the original photo.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError
from .pose.detect import MIN_JOINTS, NO_PERSON, Detection, PoseDetector, border_colour, too_few_joints
from .pose.skeleton import DEEPFASHION_SIZE, Pose, Size

MIN_PERSON_HEIGHT = 64  # pixels of the photo; a smaller person would be magnified > 4x into 256 rows
MASK_THRESHOLD = 0.5  # MediaPipe's person probability above which a pixel is the person's
ASPECT_TOLERANCE = 0.02  # a photo within 2% of the model's aspect counts as having it
PASS_THROUGH_IOU = 0.75  # ... and is used as it is when the crop covers this much of it (IoU)
PASS_THROUGH_HEIGHT = 0.5  # ... or when the person is this tall in it (the 246 real photos: 0.6 and more)
SEARCH_SCALES = (0.6, 0.36)  # window heights, as fractions of the photo's, when the whole photo shows nobody
MAX_DETECTION_SIDE = 1024  # the second look is made on at most this many pixels a side (MediaPipe uses 256)
WINDOW_MARGIN = 0.2  # the second look sees the first crop grown by this fraction on every side
LOOKS_BELOW = 2  # where no feet are seen, looks that also reach a crop height further down, until the crop settles
KEEP_THRESHOLD = 0.2  # with the plain background: pixels of this person probability are the person's ...
KEEP_MARGIN = 0.025  # ... grown by this fraction of the picture's height
OTHER_PERSON_JOINTS = 10  # a second person must show this many joints ...
OTHER_PERSON_HEIGHT = 0.5  # ... and be at least this tall, relative to the first, to count


@dataclass(frozen=True)
class Placement:
    """Where the training photos place their person, as fractions of the frame.

    ``top``: frame top above the top of the person's mask (frame heights); ``feet``: frame bottom below
    the bottom of the mask when the feet are in the picture; ``legs_cut``: the same where the photo cuts the
    body (no ankle seen); ``centre``: the horizontal centre of the mask's box (frame widths).
    """

    top: float
    feet: float
    legs_cut: float
    centre: float
    background: tuple[int, int, int]  # the plain background of the training photos (``replace_background``)


#: Measured on the 240 of ``../shared/data/deepfashion-real``'s 246 photos in which MediaPipe finds a person
#: (medians; ``benchmarks/framing.py --derive``): mask top 0 px of 256, mask bottom 252 px with the feet in
#: the picture (67 photos) and 256 px where the photo cuts the legs (173), box centre 88 px of 176,
#: background (241, 241, 242). The 4,038 annotation rows agree on the centre (joints' box centre 88 px).
DEEPFASHION_PLACEMENT = Placement(top=0.0, feet=4 / 256, legs_cut=0.0, centre=0.5, background=(241, 241, 242))


#: Market-1501 has no photos in ``../shared``, only its annotation rows (128x64), so its placement is measured
#: on the joints: on the DeepFashion photos above, the mask's top lies 0.61 x (neck - highest face joint) above
#: the highest face joint (80 photos with the head whole) and the mask's bottom 0.45 x (ankle - knee) below the
#: lower ankle (48 with the feet whole); applied to the 14,359 of the 19,732 Market test rows with >= 10 joints,
#: the medians put the head top at 1.8 px of 128, the feet at 126.6 px and the joints' box centre at 32.5 px of
#: 64 (``benchmarks/framing.py --derive``). Its photos are street scenes: the plain colour is DeepFashion's.
MARKET1501_PLACEMENT = Placement(top=1.8 / 128, feet=1.4 / 128, legs_cut=0.0, centre=32.5 / 64, background=(241, 241, 242))


def measure_placement(photos, detector: PoseDetector | None = None) -> tuple[Placement, int]:
    """The placement of the person in ``photos`` (already framed training photos, paths or pictures): the medians
    of where their masks start and end and where their boxes are centred, and the median colour of their
    non-person pixels; with the number of photos in which a person was found. This is how
    :data:`DEEPFASHION_PLACEMENT` was measured; for a catalogue of one's own studio it gives that studio's."""
    from .images import load_image

    tops, feet, cuts, centres, colours = [], [], [], [], []
    own = detector is None
    detector = detector or PoseDetector(segmentation=True)
    try:
        for photo in photos:
            pixels = np.asarray(load_image(photo), dtype=np.uint8)
            found = detector.detect(pixels)
            if found is None or found.mask is None or not (found.mask > MASK_THRESHOLD).any():
                continue
            height, width = pixels.shape[:2]
            ys, xs = np.nonzero(found.mask > MASK_THRESHOLD)
            seen = _feet_seen(found.landmarks, detector.min_confidence)
            tops.append(ys.min() / height)
            (feet if seen else cuts).append(1 - (ys.max() + 1) / height)
            centres.append((xs.min() + xs.max() + 1) / 2 / width)
            colours.append(np.median(pixels[found.mask < 0.1], axis=0))
    finally:
        if own:
            detector.close()
    if not tops:
        raise InputError("photos", "no person was found in any of them; cannot measure a placement")
    median = lambda values: float(np.median(values)) if values else 0.0  # noqa: E731
    colour = tuple(int(v) for v in np.median(colours, axis=0))
    return Placement(median(tops), median(feet), median(cuts), median(centres), colour), len(tops)


def placement_for(size: Size) -> Placement:
    """The placement of the training photos of a model of ``size`` = (H, W): Market-1501's for the 2:1 shape of its
    128x64 photos, DeepFashion's for every other."""
    return MARKET1501_PLACEMENT if size[0] == 2 * size[1] else DEEPFASHION_PLACEMENT


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

    def person_pose(self, source: object) -> Pose:
        """:attr:`pose`, or one sentence naming ``source`` where nobody or fewer than 3 joints were found."""
        if self.pose is None:
            raise InputError(source, NO_PERSON)
        if self.pose.num_visible < MIN_JOINTS:
            raise InputError(source, too_few_joints(self.pose.num_visible))
        return self.pose

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
        canvas = _crop_resize(picture, whole, (whole[2] - whole[0], whole[3] - whole[1]), 0)
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
        from .pose.formats import pose_to_json

        return {
            "format": "cfld.framing/v1",
            "crop": self.crop.to_json(),
            "size": list(self.size),
            "photo_size": list(self.photo_size),
            "framed": self.cropped,
            "background": list(self.background),
            "pose": None if self.pose is None else pose_to_json(self.pose),
        }


@dataclass
class _Person:
    """A person found in the photo: their mask's box (edges, photo pixels), landmarks normalised to the photo,
    their mask in the photo's pixels, and whether their feet are in the picture."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    landmarks: np.ndarray  # (33, 3), x/y normalised by the photo's width/height
    mask: np.ndarray  # (H, W) float32
    feet: bool
    whole: Detection | None = None  # the detection itself, when it was made on the whole photo as it is


class Framer:
    """Frames photo after photo with one detector (see the module docstring).

        with Framer() as framer:
            framed = framer("holiday.jpg")           # a Framed
            framed.image.save("holiday_framed.png")

    Args:
        size: the model's (H, W): 256x176 for DeepFashion models, 128x64 for Market-1501.
        replace_background: lay everything outside the person's mask on the training photos' plain colour.
        min_confidence: joints MediaPipe sees less surely than this are missing in :attr:`Framed.pose`.
        detector: a :class:`~cfld.pose.PoseDetector` made with ``segmentation=True`` to share (else one is made).
    """

    def __init__(self, size: Size = DEEPFASHION_SIZE, replace_background: bool = False,
                 min_confidence: float = 0.5, detector: PoseDetector | None = None):
        from .pose.skeleton import parse_size

        self.size = parse_size(size, "framing size")
        self.placement = placement_for(self.size)
        self.replace_background = replace_background
        if detector is not None and not detector.segmentation:
            raise InputError("detector", "framing needs a PoseDetector made with segmentation=True")
        self._own = detector is None
        self.detector = detector or PoseDetector(min_confidence, segmentation=True)
        self.min_confidence = min_confidence

    # -- the steps ---------------------------------------------------------------------------------------------

    def __call__(self, photo, source: str | None = None) -> Framed:
        """Frame one photo (a path, PIL image or HxWx3 uint8 array); errors name it by ``source``."""
        from .images import load_image

        name = source or (os.fspath(photo) if isinstance(photo, (str, os.PathLike)) else "photo")
        picture = load_image(photo, name)
        pixels = np.asarray(picture, dtype=np.uint8)
        frame = pixels.shape[:2]
        has_aspect = self._has_model_aspect(frame)
        first = self._find(pixels)
        if first is None:
            if has_aspect:  # nobody seen, but shaped like the training photos: used as it is, as before
                return self._unchanged(picture, None, None)
            raise FramingError(name, "no person found in the photo (MediaPipe's pose detector saw nobody, also "
                                     "in windows of it); give a photo of one person", "no_person")
        coarse = self._place(first.box, first.feet)
        second = self._look_again(pixels, coarse) or first
        crop = self._place(second.box, second.feet)
        person_height = second.box[3] - second.box[1]
        if has_aspect and (_iou(crop, frame) >= PASS_THROUGH_IOU or person_height >= PASS_THROUGH_HEIGHT * frame[0]):
            self._check_alone(pixels, second, crop, name)
            return self._unchanged(picture, first, name)
        for _ in range(LOOKS_BELOW):  # no feet seen: the legs may go on below the window the mask stopped in
            if second.feet:
                break
            below = self._look_again(pixels, crop, below=True)
            if below is None:
                break
            lower = self._place(below.box, below.feet)
            settled = abs(lower.height - crop.height) <= 0.02 * crop.height
            second, crop = below, lower
            if settled:
                break
        self._check_alone(pixels, second, crop, name)
        person_height = second.box[3] - second.box[1]
        if person_height < MIN_PERSON_HEIGHT:
            raise FramingError(name, f"the person is only {person_height:.0f} pixels tall; framing needs at least "
                                     f"{MIN_PERSON_HEIGHT} (the model sees {self.size[0]} rows)", "too_small")
        inside = crop.inside_fraction(frame)
        if inside < 0.5:
            raise FramingError(name, f"the crop that frames this person would be {100 * (1 - inside):.0f}% padding "
                                     "(more padding than photo); give a photo that shows more around the person",
                               "mostly_padding")
        background = _background_colour(pixels, second.mask, crop)
        image = _crop_picture(picture, crop, self.size, background)
        # the joints are taken from the framed picture itself, where the person stands as in the training
        # photos (PCK@0.1 on the benchmark's canvases: 92.8% against 89.4% from the second look's landmarks)
        found = self.detector.detect(image)
        if found is not None and found.mask is not None:
            pose, mask = found.pose(self.min_confidence, _base(name)), found.mask
        else:
            pose, mask = self._pose(second, crop, frame, name), _crop_mask(second.mask, crop, self.size)
        if self.replace_background:
            image = _lay_on(image, mask, self.placement.background)
        return Framed(image, crop, self.size, pose, True, frame, background, mask)

    def _has_model_aspect(self, frame: Size) -> bool:
        return abs(math.log((frame[0] / frame[1]) / (self.size[0] / self.size[1]))) <= ASPECT_TOLERANCE

    def _unchanged(self, picture: Image.Image, person: _Person | None, name: str | None) -> Framed:
        frame = (picture.height, picture.width)
        crop = Crop(0, 0, frame[0], frame[1])
        pose = mask = None
        if person is not None:  # the pose as `cfld pose detect` finds it: detected in the photo itself
            found = person.whole if person.whole is not None else self.detector.detect(picture)
            if found is not None and found.mask is not None:
                pose, mask = found.pose(self.min_confidence, _base(name)), _crop_mask(found.mask, crop, self.size)
            else:
                pose, mask = self._pose(person, crop, frame, name), _crop_mask(person.mask, crop, self.size)
        image = picture
        if self.replace_background and mask is not None:
            image = _lay_on(picture.resize((self.size[1], self.size[0]), Image.BICUBIC), mask,
                            self.placement.background)
        return Framed(image, crop, self.size, pose, False, frame, _background_colour(
            np.asarray(picture), None if person is None else person.mask, crop), mask)

    def _find(self, pixels: np.ndarray) -> _Person | None:
        """The person on the whole photo; failing that, in windows of the model's aspect, largest first."""
        found = self._detect(pixels, (0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0])))
        if found is not None:
            return found
        height, width = pixels.shape[:2]
        for scale in SEARCH_SCALES:
            win_h = height * scale
            win_w = min(width, win_h * self.size[1] / self.size[0] * 1.5)  # a little wider than the frame
            for top in _steps(height, win_h):
                for left in _steps(width, win_w):
                    found = self._detect(pixels, (left, top, win_w, win_h))
                    if found is not None and found.box[3] - found.box[1] > 0.25 * win_h:
                        return found
        return None

    def _look_again(self, pixels: np.ndarray, crop: Crop, below: bool = False) -> _Person | None:
        """The person seen in the crop grown by :data:`WINDOW_MARGIN`: larger in the detector's input. ``below``
        also grows it down by a whole crop height, where the legs may go on."""
        grow_x, grow_y = WINDOW_MARGIN * crop.width, WINDOW_MARGIN * crop.height
        extra = crop.height if below else 0.0
        return self._detect(pixels, (crop.left - grow_x, crop.top - grow_y, crop.width + 2 * grow_x,
                                     crop.height + 2 * grow_y + extra))

    def _detect(self, pixels: np.ndarray, window: tuple[float, float, float, float]) -> _Person | None:
        """Detect in ``window`` = (left, top, width, height) of the photo (padded where it leaves the photo),
        with the result mapped back into the photo's pixels."""
        height, width = pixels.shape[:2]
        left, top, win_w, win_h = window
        whole = (left, top, win_w, win_h) == (0.0, 0.0, float(width), float(height))
        scale = min(1.0, MAX_DETECTION_SIDE / max(win_w, win_h))
        if whole and scale == 1.0:
            view = pixels
        else:
            box = (left, top, left + win_w, top + win_h)
            out = (max(1, round(win_w * scale)), max(1, round(win_h * scale)))
            fill = tuple(int(v) for v in border_colour(pixels))
            view = np.asarray(_crop_resize(Image.fromarray(pixels), box, out, fill))
        found: Detection | None = self.detector.detect(view)
        if found is None or found.mask is None:
            return None
        # landmarks and mask back into the photo: normalised x -> left + x * win_w, over the photo's width
        landmarks = found.landmarks.copy()
        landmarks[:, 0] = (left + landmarks[:, 0] * win_w) / width
        landmarks[:, 1] = (top + landmarks[:, 1] * win_h) / height
        if view is pixels:
            mask = found.mask
        else:
            mask = _uncrop_mask(found.mask, (left, top, win_w, win_h), (height, width))
        ys, xs = np.nonzero(mask > MASK_THRESHOLD)
        if len(ys) == 0:
            return None
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        feet = _feet_seen(landmarks, self.min_confidence)
        if feet:  # the mask can stop at the shins on a dark ground: the feet reach at least to the heels and toes
            foot = landmarks[27:33]
            seen = foot[(foot[:, 2] >= self.min_confidence) & (foot[:, 1] <= 1.0), 1]
            box = (box[0], box[1], box[2], max(box[3], float(seen.max()) * height + 0.5))
        return _Person(box, landmarks, mask, feet, found if view is pixels else None)

    def _place(self, box: tuple[float, float, float, float], feet: bool) -> Crop:
        """The crop of the model's aspect that puts the person's box where the training photos put theirs."""
        p = self.placement
        x0, y0, x1, y1 = box
        below = p.feet if feet else p.legs_cut
        height = (y1 - y0) / (1 - p.top - below)
        width = height * self.size[1] / self.size[0]
        if x1 - x0 > width:  # a person wider than tall (arms spread, lying): fit the width, centre vertically
            width = (x1 - x0) * 1.05
            height = width * self.size[0] / self.size[1]
            top = (y0 + y1) / 2 - height / 2
        else:
            top = y0 - p.top * height
        left = (x0 + x1) / 2 - p.centre * width
        return Crop(round(top), round(left), max(1, round(height)), max(1, round(width)))

    def _check_alone(self, pixels: np.ndarray, person: _Person, crop: Crop, name: str) -> None:
        """Refuse a photo with a second person (:meth:`~cfld.pose.PoseDetector.another_person`) outside the first
        person's crop: the whole crop is painted over, not only the mask's box, as MediaPipe's mask can miss
        parts of a person (a back view's legs, a coat) that would otherwise be found again as somebody else
        (5 of 984 canvases of benchmarks/framing.py with the mask's box)."""
        height = person.box[3] - person.box[1]
        tall_enough = OTHER_PERSON_HEIGHT * height / crop.height  # of the crop, which another_person measures by
        if self.detector.another_person(pixels, crop.box, OTHER_PERSON_JOINTS, tall_enough):
            raise FramingError(name, "shows several people; framing needs a photo of one person (crop it to the one "
                                     "you mean)", "several_people")

    def _pose(self, person: _Person, crop: Crop, frame: Size, name: str | None) -> Pose:
        """The person's OpenPose-18 pose in the framed picture's frame."""
        from .pose.detect import landmarks_to_openpose

        height, width = frame
        landmarks = person.landmarks.copy()
        landmarks[:, 0] = (landmarks[:, 0] * width - crop.left) / crop.width
        landmarks[:, 1] = (landmarks[:, 1] * height - crop.top) / crop.height
        return landmarks_to_openpose(landmarks, self.size, self.min_confidence, _base(name))

    # -- lifetime -------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._own:
            self.detector.close()

    def __enter__(self) -> Framer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_photo(photo, size: Size = DEEPFASHION_SIZE, *, replace_background: bool = False,
                source: str | None = None) -> Framed:
    """Frame one photo for a model of ``size`` (see :class:`Framer`, which frames many with one detector)."""
    with Framer(size, replace_background) as framer:
        return framer(photo, source)


# -- pixels ------------------------------------------------------------------------------------------------------


def _feet_seen(landmarks: np.ndarray, min_confidence: float) -> bool:
    """Whether an ankle (MediaPipe's landmarks 27, 28) is seen surely enough and not below the picture."""
    ankles = landmarks[[27, 28]]
    return bool(((ankles[:, 2] >= min_confidence) & (ankles[:, 1] <= 1.0)).any())


def _base(name: str | None) -> str | None:
    return os.path.basename(name) if name else None


def _steps(length: float, window: float) -> list[float]:
    """Window starts covering ``length`` with half-window strides, the last flush with the end."""
    if window >= length:
        return [0.0]
    count = math.ceil((length - window) / (window / 2)) + 1
    return [i * (length - window) / (count - 1) for i in range(count)]


def _iou(crop: Crop, frame: Size) -> float:
    height, width = frame
    inter = crop.inside_fraction(frame) * crop.width * crop.height
    return inter / (crop.width * crop.height + height * width - inter)


def _background_colour(pixels: np.ndarray, mask: np.ndarray | None, crop: Crop) -> tuple[int, int, int]:
    """The photo's background colour near the crop: the median of the non-person pixels in a band along the
    crop's border (inside the photo), else of all non-person pixels, else of the photo's border."""
    height, width = pixels.shape[:2]
    band = max(2, round(0.05 * min(crop.width, crop.height)))
    x0, y0 = max(0, crop.left), max(0, crop.top)
    x1, y1 = min(width, crop.left + crop.width), min(height, crop.top + crop.height)
    near = np.zeros((height, width), dtype=bool)
    if x1 > x0 and y1 > y0:
        near[y0:y1, x0:x1] = True
        near[y0 + band:y1 - band, x0 + band:x1 - band] = False
    outside = np.ones((height, width), dtype=bool) if mask is None else mask < 0.1
    for region in (near & outside, outside):
        if region.sum() >= 16:
            return tuple(int(v) for v in np.median(pixels[region], axis=0))
    return tuple(int(v) for v in border_colour(pixels))


def _crop_resize(image: Image.Image, box: tuple[float, float, float, float], out: tuple[int, int],
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


def _crop_picture(picture: Image.Image, crop: Crop, size: Size, fill: tuple[int, int, int]) -> Image.Image:
    """The crop of the photo at the model's size, padded with ``fill``."""
    return _crop_resize(picture, tuple(map(float, crop.box)), (size[1], size[0]), fill)


def _crop_mask(mask: np.ndarray, crop: Crop, size: Size) -> np.ndarray:
    """The person mask (photo pixels) in the framed picture's pixels."""
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(_crop_resize(image, tuple(map(float, crop.box)), (size[1], size[0]), 0.0), dtype=np.float32)


def _uncrop_mask(mask: np.ndarray, window: tuple[float, float, float, float], frame: Size) -> np.ndarray:
    """A mask detected in ``window`` = (left, top, width, height) of the photo, back in the photo's pixels."""
    height, width = frame
    left, top, win_w, win_h = window
    sx, sy = mask.shape[1] / win_w, mask.shape[0] / win_h  # mask pixels per photo pixel
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    # the photo's box (0, 0, width, height) in the mask's pixels; outside the window the mask is 0
    box = (-left * sx, -top * sy, (width - left) * sx, (height - top) * sy)
    return np.asarray(_crop_resize(image, box, (width, height), 0.0), dtype=np.float32)


def _lay_on(image: Image.Image, mask: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
    """Everything away from the person on a plain ``colour``. The person is the mask at :data:`KEEP_THRESHOLD`
    grown by :data:`KEEP_MARGIN` of the picture's height (MediaPipe's mask is coarse at the edges: on the six
    photos of ``../shared/data/images`` this keeps 99.4-100% of the labelled clothes' pixels, 0.5 alone 90-100%);
    those pixels are kept exactly, and the plain colour fades in over as many pixels again."""
    from scipy import ndimage

    grow = max(2, round(KEEP_MARGIN * mask.shape[0]))
    keep = ndimage.binary_dilation(mask >= KEEP_THRESHOLD, iterations=grow)
    distance = ndimage.distance_transform_edt(~keep)
    alpha = np.clip(1.0 - distance / grow, 0.0, 1.0)[..., None]
    pixels = np.asarray(image, dtype=np.float64)
    plain = np.array(colour, dtype=np.float64)
    out = np.where(keep[..., None], pixels, np.rint(pixels * alpha + plain * (1 - alpha)))
    return Image.fromarray(out.astype(np.uint8))
