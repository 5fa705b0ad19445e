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

The package, one job a module:

* :mod:`~cfld.framing.placement`: where the training photos place their person (:class:`Placement`, measured
  by :func:`measure_placement`) and the crop that puts a person there;
* :mod:`~cfld.framing.framed`: the results, :class:`Crop` and :class:`Framed` (the framed picture, its crop
  box, its pose), and :class:`FramingError`;
* :mod:`~cfld.framing.people`: finding the person in a photo (in windows, looking again) and refusing a second;
* :mod:`~cfld.framing.pixels`: cutting pictures and masks with a crop, the background colour, the plain background;
* :mod:`~cfld.framing.framer`: :class:`Framer`, the steps above, and :func:`frame_photo`.
"""

from .framed import RECORD_FORMAT, Crop, Framed, FramingError, person_pose
from .framer import (
    ASPECT_TOLERANCE,
    LOOKS_BELOW,
    MIN_PERSON_HEIGHT,
    PASS_THROUGH_HEIGHT,
    PASS_THROUGH_IOU,
    Framer,
    frame_photo,
)
from .people import (
    MAX_DETECTION_SIDE,
    OTHER_PERSON_HEIGHT,
    OTHER_PERSON_JOINTS,
    SEARCH_SCALES,
    WINDOW_MARGIN,
)
from .pixels import KEEP_MARGIN, KEEP_THRESHOLD
from .placement import (
    DEEPFASHION_PLACEMENT,
    MARKET1501_PLACEMENT,
    MASK_THRESHOLD,
    Placement,
    measure_placement,
    placement_for,
)

__all__ = [
    "ASPECT_TOLERANCE",
    "DEEPFASHION_PLACEMENT",
    "KEEP_MARGIN",
    "KEEP_THRESHOLD",
    "LOOKS_BELOW",
    "MARKET1501_PLACEMENT",
    "MASK_THRESHOLD",
    "MAX_DETECTION_SIDE",
    "MIN_PERSON_HEIGHT",
    "OTHER_PERSON_HEIGHT",
    "OTHER_PERSON_JOINTS",
    "PASS_THROUGH_HEIGHT",
    "PASS_THROUGH_IOU",
    "RECORD_FORMAT",
    "SEARCH_SCALES",
    "WINDOW_MARGIN",
    "Crop",
    "Framed",
    "Framer",
    "FramingError",
    "Placement",
    "frame_photo",
    "measure_placement",
    "person_pose",
    "placement_for",
]
