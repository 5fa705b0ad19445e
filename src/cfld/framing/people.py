"""Finding the person to frame in a photo with MediaPipe (:class:`~cfld.pose.PoseDetector` with its person mask):
on the whole photo, else in windows of it (:func:`find_person`); again in a window around a first crop, where the
person is larger in the detector's input (:func:`look_again`); and refusing a photo of several people
(:func:`check_alone`). Every result is in the photo's own pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import MIN_SIDE
from ..pose.detect import Detection, PoseDetector, border_colour
from ..pose.skeleton import Size
from .framed import Crop, FramingError, crop_resize
from .pixels import uncrop_mask
from .placement import MASK_THRESHOLD, feet_seen

SEARCH_SCALES = (0.6, 0.36)  # window heights, as fractions of the photo's, when the whole photo shows nobody
MAX_DETECTION_SIDE = 1024  # the second look is made on at most this many pixels a side (MediaPipe uses 256)
WINDOW_MARGIN = 0.2  # the second look sees the first crop grown by this fraction on every side
OTHER_PERSON_JOINTS = 10  # a second person must show this many joints ...
OTHER_PERSON_HEIGHT = 0.5  # ... and be at least this tall, relative to the first, to count


@dataclass
class Person:
    """A person found in the photo: their mask's box (edges, photo pixels), landmarks normalised to the photo,
    their mask in the photo's pixels, and whether their feet are in the picture."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    landmarks: np.ndarray  # (33, 3), x/y normalised by the photo's width/height
    mask: np.ndarray  # (H, W) float32
    feet: bool
    whole: Detection | None = None  # the detection itself, when it was made on the whole photo as it is


def find_person(detector: PoseDetector, pixels: np.ndarray, size: Size, min_confidence: float) -> Person | None:
    """The person on the whole photo; failing that, in windows of the aspect of ``size`` = (H, W), largest first."""
    found = detect_in_window(detector, pixels, (0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0])),
                             min_confidence)
    if found is not None:
        return found
    height, width = pixels.shape[:2]
    for scale in SEARCH_SCALES:
        win_h = height * scale
        win_w = min(width, win_h * size[1] / size[0] * 1.5)  # a little wider than the frame
        for top in _window_starts(height, win_h):
            for left in _window_starts(width, win_w):
                found = detect_in_window(detector, pixels, (left, top, win_w, win_h), min_confidence)
                if found is not None and found.box[3] - found.box[1] > 0.25 * win_h:
                    return found
    return None


def look_again(detector: PoseDetector, pixels: np.ndarray, crop: Crop, min_confidence: float,
               below: bool = False) -> Person | None:
    """The person seen in the crop grown by :data:`WINDOW_MARGIN`: larger in the detector's input. ``below``
    also grows it down by a whole crop height, where the legs may go on."""
    grow_x, grow_y = WINDOW_MARGIN * crop.width, WINDOW_MARGIN * crop.height
    extra = crop.height if below else 0.0
    return detect_in_window(detector, pixels, (crop.left - grow_x, crop.top - grow_y, crop.width + 2 * grow_x,
                                               crop.height + 2 * grow_y + extra), min_confidence)


def detect_in_window(detector: PoseDetector, pixels: np.ndarray, window: tuple[float, float, float, float],
                     min_confidence: float) -> Person | None:
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
        if min(out) < MIN_SIDE:  # a sliver of a window (a photo of 20000x20 pixels): nobody can be seen in it
            return None
        fill = tuple(int(v) for v in border_colour(pixels))
        view = np.asarray(crop_resize(Image.fromarray(pixels), box, out, fill))
    found: Detection | None = detector.detect(view)
    if found is None or found.mask is None:
        return None
    # landmarks and mask back into the photo: normalised x -> left + x * win_w, over the photo's width
    landmarks = found.landmarks.copy()
    landmarks[:, 0] = (left + landmarks[:, 0] * win_w) / width
    landmarks[:, 1] = (top + landmarks[:, 1] * win_h) / height
    if view is pixels:
        mask = found.mask
    else:
        mask = uncrop_mask(found.mask, (left, top, win_w, win_h), (height, width))
    ys, xs = np.nonzero(mask > MASK_THRESHOLD)
    if len(ys) == 0:
        return None
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    feet = feet_seen(landmarks, min_confidence)
    if feet:  # the mask can stop at the shins on a dark ground: the feet reach at least to the heels and toes
        foot = landmarks[27:33]
        seen = foot[(foot[:, 2] >= min_confidence) & (foot[:, 1] <= 1.0), 1]
        box = (box[0], box[1], box[2], max(box[3], float(seen.max()) * height + 0.5))
    return Person(box, landmarks, mask, feet, found if view is pixels else None)


def check_alone(detector: PoseDetector, pixels: np.ndarray, person: Person, crop: Crop, name: str) -> None:
    """Refuse a photo with a second person (:meth:`~cfld.pose.PoseDetector.another_person`) outside the first
    person's crop: the whole crop is painted over, not only the mask's box, as MediaPipe's mask can miss
    parts of a person (a back view's legs, a coat) that would otherwise be found again as somebody else
    (5 of 984 canvases of benchmarks/framing.py with the mask's box)."""
    height = person.box[3] - person.box[1]
    tall_enough = OTHER_PERSON_HEIGHT * height / crop.height  # of the crop, which another_person measures by
    if detector.another_person(pixels, crop.box, OTHER_PERSON_JOINTS, tall_enough):
        raise FramingError(name, "shows several people; framing needs a photo of one person (crop it to the one "
                                 "you mean)", "several_people")


def _window_starts(length: float, window: float) -> list[float]:
    """Window starts covering ``length`` with half-window strides, the last flush with the end."""
    if window >= length:
        return [0.0]
    count = math.ceil((length - window) / (window / 2)) + 1
    return [i * (length - window) / (count - 1) for i in range(count)]
