""":class:`Framer`: the steps of framing (see :mod:`cfld.framing`) with one detector for photo after photo, and
:func:`frame_photo` for one photo."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from ..errors import InputError
from ..images import MAX_OUTPUT_SIDE, MIN_SIDE, load_image
from ..pose.detect import PoseDetector, landmarks_to_openpose
from ..pose.skeleton import DEEPFASHION_SIZE, Pose, Size, parse_size
from .framed import Crop, Framed, FramingError
from .people import Person, check_alone, find_person, look_again
from .pixels import background_colour, crop_mask, crop_picture, lay_on
from .placement import place_crop, placement_for

MIN_PERSON_HEIGHT = 64  # pixels of the photo; a smaller person would be magnified > 4x into 256 rows
ASPECT_TOLERANCE = 0.02  # a photo within 2% of the model's aspect counts as having it
PASS_THROUGH_IOU = 0.75  # ... and is used as it is when the crop covers this much of it (IoU)
PASS_THROUGH_HEIGHT = 0.5  # ... or when the person is this tall in it (the 246 real photos: 0.6 and more)
LOOKS_BELOW = 2  # where no feet are seen, looks that also reach a crop height further down, until the crop settles


class Framer:
    """Frames photo after photo with one detector (see :mod:`cfld.framing`).

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
        self.size = parse_size(size, "framing size")
        if min(self.size) < MIN_SIDE or max(self.size) > MAX_OUTPUT_SIDE:
            raise InputError("framing size", f"{self.size[0]}x{self.size[1]} (height x width) is not a size framing "
                                             f"can make: each side must be from {MIN_SIDE} to {MAX_OUTPUT_SIDE} pixels")
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
        name = source or (os.fspath(photo) if isinstance(photo, (str, os.PathLike)) else "photo")
        picture = load_image(photo, name)
        pixels = np.asarray(picture, dtype=np.uint8)
        frame = pixels.shape[:2]
        has_aspect = self._has_model_aspect(frame)
        first = find_person(self.detector, pixels, self.size, self.min_confidence)
        if first is None:
            if has_aspect:  # nobody seen, but shaped like the training photos: used as it is
                return self._unchanged(picture, None, None)
            if frame[0] < MIN_PERSON_HEIGHT:
                raise FramingError(name, f"is only {frame[1]}x{frame[0]} pixels (width x height), too low for a person "
                                         f"of the {MIN_PERSON_HEIGHT} pixels framing needs; nobody was found in it",
                                   "too_small")
            raise FramingError(name, "no person found in the photo (MediaPipe's pose detector saw nobody, also "
                                     "in windows of it); give a photo of one person", "no_person")
        coarse = self._place(first)
        second = look_again(self.detector, pixels, coarse, self.min_confidence) or first
        crop = self._place(second)
        person_height = second.box[3] - second.box[1]
        if has_aspect and (_iou(crop, frame) >= PASS_THROUGH_IOU or person_height >= PASS_THROUGH_HEIGHT * frame[0]):
            check_alone(self.detector, pixels, second, crop, name)
            return self._unchanged(picture, first, name)
        second, crop = self._look_below(pixels, second, crop)
        check_alone(self.detector, pixels, second, crop, name)
        person_height = second.box[3] - second.box[1]
        if person_height < MIN_PERSON_HEIGHT:
            raise FramingError(name, f"the person is only {person_height:.0f} pixels tall; framing needs at least "
                                     f"{MIN_PERSON_HEIGHT} (the model sees {self.size[0]} rows)", "too_small")
        inside = crop.inside_fraction(frame)
        if inside < 0.5:
            raise FramingError(name, f"the crop that frames this person would be {100 * (1 - inside):.0f}% padding "
                                     "(more padding than photo); give a photo that shows more around the person",
                               "mostly_padding")
        background = background_colour(pixels, second.mask, crop)
        image = crop_picture(picture, crop, self.size, background)
        # the joints are taken from the framed picture itself, where the person stands as in the training
        # photos (PCK@0.1 on the benchmark's canvases: 92.8% against 89.4% from the second look's landmarks)
        found = self.detector.detect(image)
        if found is not None and found.mask is not None:
            pose, mask = found.pose(self.min_confidence, _base(name)), found.mask
        else:
            pose, mask = self._pose(second, crop, frame, name), crop_mask(second.mask, crop, self.size)
        if self.replace_background:
            image = lay_on(image, mask, self.placement.background)
        return Framed(image, crop, self.size, pose, True, frame, background, mask)

    def _look_below(self, pixels: np.ndarray, person: Person, crop: Crop) -> tuple[Person, Crop]:
        """Where no feet are seen, the legs may go on below the window the mask stopped in: look again reaching a
        crop height further down (at most :data:`LOOKS_BELOW` times), until the crop settles."""
        for _ in range(LOOKS_BELOW):
            if person.feet:
                break
            below = look_again(self.detector, pixels, crop, self.min_confidence, below=True)
            if below is None:
                break
            lower = self._place(below)
            settled = abs(lower.height - crop.height) <= 0.02 * crop.height
            person, crop = below, lower
            if settled:
                break
        return person, crop

    def _place(self, person: Person) -> Crop:
        """The crop of the model's aspect that puts the person where the training photos put theirs."""
        return place_crop(person.box, person.feet, self.placement, self.size)

    def _has_model_aspect(self, frame: Size) -> bool:
        return abs(math.log((frame[0] / frame[1]) / (self.size[0] / self.size[1]))) <= ASPECT_TOLERANCE

    def _unchanged(self, picture: Image.Image, person: Person | None, name: str | None) -> Framed:
        frame = (picture.height, picture.width)
        crop = Crop(0, 0, frame[0], frame[1])
        pose = mask = None
        if person is not None:  # the pose as `cfld pose detect` finds it: detected in the photo itself
            found = person.whole if person.whole is not None else self.detector.detect(picture)
            if found is not None and found.mask is not None:
                pose, mask = found.pose(self.min_confidence, _base(name)), crop_mask(found.mask, crop, self.size)
            else:
                pose, mask = self._pose(person, crop, frame, name), crop_mask(person.mask, crop, self.size)
        image = picture
        if self.replace_background and mask is not None:
            image = lay_on(picture.resize((self.size[1], self.size[0]), Image.BICUBIC), mask,
                           self.placement.background)
        return Framed(image, crop, self.size, pose, False, frame, background_colour(
            np.asarray(picture), None if person is None else person.mask, crop), mask)

    def _pose(self, person: Person, crop: Crop, frame: Size, name: str | None) -> Pose:
        """The person's OpenPose-18 pose in the framed picture's frame."""
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


def _base(name: str | None) -> str | None:
    return os.path.basename(name) if name else None


def _iou(crop: Crop, frame: Size) -> float:
    height, width = frame
    inter = crop.inside_fraction(frame) * crop.width * crop.height
    return inter / (crop.width * crop.height + height * width - inter)
