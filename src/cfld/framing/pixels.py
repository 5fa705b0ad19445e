"""The pixel maths of framing: the photo and the person's mask cut with a crop (and a mask seen in a window put
back into the photo), the photo's background colour near a crop, and the training photos' plain background."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..pose.detect import border_colour
from ..pose.skeleton import Size
from .framed import Crop, crop_resize

KEEP_THRESHOLD = 0.2  # with the plain background: pixels of this person probability are the person's ...
KEEP_MARGIN = 0.025  # ... grown by this fraction of the picture's height


def background_colour(pixels: np.ndarray, mask: np.ndarray | None, crop: Crop) -> tuple[int, int, int]:
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


def crop_picture(picture: Image.Image, crop: Crop, size: Size, fill: tuple[int, int, int]) -> Image.Image:
    """The crop of the photo at the model's size, padded with ``fill``."""
    return crop_resize(picture, tuple(map(float, crop.box)), (size[1], size[0]), fill)


def crop_mask(mask: np.ndarray, crop: Crop, size: Size) -> np.ndarray:
    """The person mask (photo pixels) in the framed picture's pixels."""
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(crop_resize(image, tuple(map(float, crop.box)), (size[1], size[0]), 0.0), dtype=np.float32)


def uncrop_mask(mask: np.ndarray, window: tuple[float, float, float, float], frame: Size) -> np.ndarray:
    """A mask detected in ``window`` = (left, top, width, height) of the photo, back in the photo's pixels."""
    height, width = frame
    left, top, win_w, win_h = window
    sx, sy = mask.shape[1] / win_w, mask.shape[0] / win_h  # mask pixels per photo pixel
    image = Image.fromarray(mask.astype(np.float32), mode="F")
    # the photo's box (0, 0, width, height) in the mask's pixels; outside the window the mask is 0
    box = (-left * sx, -top * sy, (width - left) * sx, (height - top) * sy)
    return np.asarray(crop_resize(image, box, (width, height), 0.0), dtype=np.float32)


def lay_on(image: Image.Image, mask: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
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
