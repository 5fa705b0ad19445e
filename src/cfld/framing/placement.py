"""Where the training photos place their person (:class:`Placement`, measured by :func:`measure_placement`), and
the crop of the model's aspect that places a person the same way (:func:`place_crop`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..images import load_image
from ..pose.detect import PoseDetector
from ..pose.skeleton import Size
from .framed import Crop

MASK_THRESHOLD = 0.5  # MediaPipe's person probability above which a pixel is the person's


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
MARKET1501_PLACEMENT = Placement(top=1.8 / 128, feet=1.4 / 128, legs_cut=0.0, centre=32.5 / 64,
                                 background=(241, 241, 242))


def measure_placement(photos, detector: PoseDetector | None = None) -> tuple[Placement, int]:
    """The placement of the person in ``photos`` (already framed training photos, paths or pictures): the medians
    of where their masks start and end and where their boxes are centred, and the median colour of their
    non-person pixels; with the number of photos in which a person was found. This is how
    :data:`DEEPFASHION_PLACEMENT` was measured; for a catalogue of one's own studio it gives that studio's."""
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
            seen = feet_seen(found.landmarks, detector.min_confidence)
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


def place_crop(box: tuple[float, float, float, float], feet: bool, placement: Placement, size: Size) -> Crop:
    """The crop of the aspect of ``size`` = (H, W) that puts the person's box (left, top, right, bottom; ``feet``:
    their feet are in the picture) where the training photos of ``placement`` put theirs."""
    p = placement
    x0, y0, x1, y1 = box
    below = p.feet if feet else p.legs_cut
    height = (y1 - y0) / (1 - p.top - below)
    width = height * size[1] / size[0]
    if x1 - x0 > width:  # a person wider than tall (arms spread, lying): fit the width, centre vertically
        width = (x1 - x0) * 1.05
        height = width * size[0] / size[1]
        top = (y0 + y1) / 2 - height / 2
    else:
        top = y0 - p.top * height
    left = (x0 + x1) / 2 - p.centre * width
    return Crop(round(top), round(left), max(1, round(height)), max(1, round(width)))


def feet_seen(landmarks: np.ndarray, min_confidence: float) -> bool:
    """Whether an ankle (MediaPipe's landmarks 27, 28) is seen surely enough and not below the picture."""
    ankles = landmarks[[27, 28]]
    return bool(((ankles[:, 2] >= min_confidence) & (ankles[:, 1] <= 1.0)).any())
