"""What the page sends, read and checked: uploaded photos (within :data:`MAX_PIXELS`, read by
:func:`cfld.images.load_image` alone), pose files and video frames, and the values of its sliders and boxes. Every
problem is one :class:`~cfld.errors.InputError` that names the upload by the user's own file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InputError
from ..images import WHITE, image_size, load_image
from ..pose import load_pose

MAX_PIXELS = 25_000_000  # per uploaded photo or frame; bigger photos gain nothing at 256x176
MAX_FILE_MIB = 20
MAX_FILE_SIZE = f"{MAX_FILE_MIB}mb"  # Gradio's "mb" is a MiB: 20,971,520 bytes
PREVIEW_SIDE = 512  # the preview under an upload, at most this many pixels per side
MAX_FRAMES = 64  # poses per animation in the app (the command line takes up to 1000)


# -- uploads -----------------------------------------------------------------------------------------------------


def read_photo(path: str | None, what: str, background: tuple[int, int, int] | None = None):
    """A validated upload as a PIL image; errors name the upload by its own file name. A file whose header
    declares more than :data:`MAX_PIXELS` pixels is refused before it is decoded. Transparent pixels are
    laid on ``background`` (default white, as for photos; masks pass black)."""
    if not path:
        raise InputError(what, "no photo uploaded")
    return load_image(path, f"{what} ({Path(path).name})", background=background or WHITE,
                      max_pixels=MAX_PIXELS)


def preview(path: str | None, what: str, background: tuple[int, int, int] | None = None):
    """What is shown under an upload: the photo as :func:`read_photo` reads it (so a refused upload is refused at
    once, in the same sentence), at most :data:`PREVIEW_SIDE` pixels per side; None without an upload."""
    if not path:
        return None
    image = read_photo(path, what, background)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.BICUBIC)
    return image


def check_frames(files: list[str]) -> None:
    """The uploaded video frames' sizes, from their headers: one over :data:`MAX_PIXELS` is refused before any
    frame is decoded."""
    from ..animation import IMAGE_SUFFIXES

    for path in files:
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            image_size(path, f"frame ({Path(path).name})", MAX_PIXELS)


def uploaded_pose(path: str | None, what: str):
    """A pose file from an upload; errors name it by the user's file name, not Gradio's cache path."""
    if not path:
        raise InputError(what, "no file uploaded")
    try:
        return load_pose(path)
    except InputError as err:
        raise InputError(f"{what} ({Path(path).name})", err.problem) from None


# -- sliders, numbers and boxes ------------------------------------------------------------------------------------


def whole(value: Any, what: str) -> int:
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise InputError(what, f"must be a whole number, got {value!r}") from None


def sampling(steps: Any, fast: Any) -> dict[str, Any]:
    """The pipeline's sampling arguments: the slider's steps, or with the fast box ticked the fast preset's
    steps and scheduler (the slider is then not used)."""
    return {"fast": True} if fast else {"num_inference_steps": _steps(steps)}


def seed(value: Any) -> int:
    if value is None:
        return 0
    number = whole(value, "seed")
    if not 0 <= number < 2**63:
        raise InputError("seed", f"must be a whole number from 0 to 2^63-1, got {number}")
    return number


def _steps(value: Any) -> int:
    steps = whole(value, "steps")
    if not 1 <= steps <= 1000:
        raise InputError("steps", f"must lie between 1 and 1000, got {steps}")
    return steps
