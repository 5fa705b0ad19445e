"""Person photos in and out: the one image reader, the original preprocessing, and the original quantisation.

:func:`load_image` is how every command, the app, the datasets and the metrics read a picture: the
orientation its EXIF data records is applied (as every photo viewer does), 16-bit pixels are scaled to 8
bits, a transparent background is laid on white (a mask's on black), and files too large to be a photo are
refused before they are decoded: the width and height their header declares are checked against our limit
(:data:`MAX_PIXELS`, or the caller's), and that one sentence is what every larger picture gets, decompression
bombs included; every problem is one sentence naming the file.

The original implementation resizes with torchvision on PIL images (bicubic, which PIL always
antialiases) and quantises generated images by truncation (``(x * 255).clamp(0, 255).to(uint8)``), not
rounding. We do the same so that saved images and metrics match it.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, one_line
from .io import atomic_write, path_kind

if TYPE_CHECKING:
    import torch

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, "torch.Tensor"]

MIN_SIDE = 16  # smaller than this is not a person photo
MAX_PIXELS = 64_000_000  # refuse decompression bombs with a clear message instead of PIL's warning
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what a folder's photos end in
MAX_OUTPUT_SIDE = 4096  # generated images; the paper's largest is 512x352
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
WRITABLE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "TGA", "GIF")


def load_image(image: ImageInput, source: str | None = None, background: tuple[int, int, int] = WHITE,
               min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Any picture a user hands us as an 8-bit RGB PIL image, or an InputError naming it and the fault.

    Accepts a path, a PIL image, an HxWx3 uint8 array, or a 3xHxW float tensor in [0, 1]. Files are
    turned upright by their EXIF orientation; 16-bit pixels are scaled (not clipped) to 8 bits; pictures
    with transparency are laid on ``background`` (white for photos; masks pass black); files whose header
    declares more than ``max_pixels`` pixels are refused before anything is decoded.
    """
    name = source or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image")
    if isinstance(image, (str, os.PathLike)):
        pil = _read_file(Path(image), name, background, max_pixels, min_side)
    elif isinstance(image, Image.Image):
        _check_pixels(image.size, name, max_pixels)
        pil = _to_rgb(image, name, background)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise InputError(name, f"must be an HxWx3 uint8 array, got shape {image.shape} and dtype {image.dtype}")
        pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    elif _is_tensor(image):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise InputError(name, f"must be a 3xHxW float tensor in [0, 1], got shape {tuple(image.shape)}")
        import torch

        if not torch.isfinite(image).all():
            raise InputError(name, "contains NaN or infinite values")
        pil = Image.fromarray(to_uint8(image.unsqueeze(0))[0])
    else:
        raise InputError(name, f"is a {type(image).__name__}, not a path, PIL image, array or tensor")
    _check_sides(pil.size, name, min_side)
    return pil


def load_rgb_array(image: ImageInput, source: str | None = None, min_side: int = 1) -> np.ndarray:
    """:func:`load_image` as an (H, W, 3) uint8 array (for OpenCV drawing and MediaPipe)."""
    return np.asarray(load_image(image, source, min_side=min_side), dtype=np.uint8)


def image_size(path: str | os.PathLike, source: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) a picture file declares, read from its header alone (nothing is decoded); an
    InputError naming it (``source``, else the path) if it is no picture or declares more than ``max_pixels``."""
    name = source or os.fspath(path)
    _check_file(Path(path), name)
    try:
        with _open_lazily(Path(path)) as opened:
            _check_pixels(opened.size, name, max_pixels)
            return opened.size
    except InputError:
        raise
    except _READ_ERRORS as error:
        raise InputError(name, f"cannot be read as an image ({one_line(error)})") from None


# Pillow's own decompression-bomb check (Image.MAX_IMAGE_PIXELS, a warning above 89.5 megapixels and an error
# above 179 when a file is opened) would pre-empt ours with its message, or let 64-89.5 megapixels through to
# decoding: :func:`_open_lazily` lifts it while Image.open reads a header (no pixel is decoded then) and our
# check follows before anything is loaded. The lock keeps two of our readers from restoring each other's value
# (which could leave the limit off for good); the limit is back on before any decoding, where Pillow's plugins
# check sizes of their own (GIF frames, TIFF tiles) against it.
_PIL_LIMIT_LOCK = threading.Lock()

# what Pillow and its plugins raise on damaged files
_READ_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError, MemoryError, TypeError,
                IndexError, KeyError, ZeroDivisionError, Image.DecompressionBombWarning)


@contextmanager
def _open_lazily(path: Path):
    """``Image.open(path)``, which reads the header only, without Pillow's process-wide pixel limit (ours is
    checked on the result before it is loaded); the file is closed on leaving."""
    with _PIL_LIMIT_LOCK:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            opened = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    with opened:
        yield opened


def _check_file(path: Path, name: str) -> None:
    kind = path_kind(path)
    if kind is None:
        raise InputError(name, "no such file")
    if kind != "file":
        raise InputError(name, f"is a {kind}, not a file")


def _read_file(path: Path, name: str, background: tuple[int, int, int], max_pixels: int,
               min_side: int = 1) -> Image.Image:
    _check_file(path, name)
    if _file_bytes(path) == 0:
        raise InputError(name, "cannot be read as an image: the file is empty (0 bytes)")
    try:
        with _open_lazily(path) as opened:
            _check_pixels(opened.size, name, max_pixels)  # before anything is decoded
            _check_sides(opened.size, name, min_side)  # the file's own width and height, before any resizing
            return _to_rgb(opened, name, background)
    except InputError:
        raise
    except Image.DecompressionBombError:  # a GIF frame or TIFF tile larger than the picture, found while loading
        raise InputError(name, f"declares parts of more than {Image.MAX_IMAGE_PIXELS:,} pixels; it is refused as a "
                               "decompression bomb") from None
    except _READ_ERRORS as error:
        if "truncated" in str(error).lower():
            raise InputError(name, "cannot be read as an image: the file ends before its picture does (it is "
                                   "truncated, as a copy or download that did not finish is)") from None
        raise InputError(name, f"cannot be read as an image ({one_line(error)})") from None


def _file_bytes(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int = MAX_PIXELS) -> None:
    width, height = size
    if width * height > max_pixels:
        raise InputError(name, f"is {width}x{height} pixels, more than the {max_pixels:,} we accept")


def _check_sides(size: tuple[int, int], name: str, min_side: int) -> None:
    width, height = size
    if min(width, height) < min_side:
        raise InputError(name, f"is only {width}x{height} pixels (width x height); a person photo needs at least "
                               f"{min_side} per side")


def _to_rgb(image: Image.Image, name: str, background: tuple[int, int, int]) -> Image.Image:
    """Upright, 8-bit RGB, transparency laid on ``background``."""
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        raise InputError(name, "holds floating-point pixels (mode F); save it as an 8- or 16-bit image")
    elif mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def to_model_input(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) in [-1, 1]: bicubic antialiased resize to ``size`` = (H, W), as the original's transforms."""
    import torch

    resized = image.resize((size[1], size[0]), Image.BICUBIC)
    array = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1)
    return array.float().div(255.0).sub(0.5).div(0.5)


def resize_output(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a batch in [0, 1] to ``size`` = (H, W), bicubic antialiased on tensors, as the original."""
    import torch

    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return torch.nn.functional.interpolate(images, size=tuple(size), mode="bicubic", antialias=True)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 with the original's truncating quantisation."""
    import torch

    quantised = (images.detach().float() * 255.0).clamp(0, 255).to(torch.uint8)
    return quantised.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(array) for array in to_uint8(images)]


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format a result file's suffix asks for (``.png`` -> PNG), or an InputError naming the file."""
    suffix = Path(path).suffix.lower() or ".png"
    fmt = Image.registered_extensions().get(suffix)
    if fmt not in WRITABLE_FORMATS:
        raise InputError(path,
                         f"has the suffix {suffix!r}, which is not an image format cfld writes (use .png or .jpg)")
    return fmt


def save_image(image: Image.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a result atomically (format from the suffix); refuses to replace a file unless ``overwrite``."""
    fmt = image_format(path)
    return atomic_write(path, lambda tmp: image.save(tmp, format=fmt), overwrite=overwrite)


def comparison_rows(
    sources: list[ImageInput],
    pose_images: torch.Tensor,
    results: list[Image.Image],
    size: tuple[int, int],
    paired: bool = False,
) -> Image.Image:
    """One row per (source, pose) pair: source | pose skeleton | result, each at ``size``. The pairs are
    every source with every pose, source-major, or with ``paired`` source i with pose i."""
    import torch

    n_pose = 1 if paired else pose_images.shape[0]
    skeletons = resize_output(pose_images[:, :3].float(), size)
    cells = []
    for i, result in enumerate(results):
        src = to_model_input(load_image(sources[i if paired else i // n_pose]), size).add(1).div(2)
        res = to_model_input(result, size).add(1).div(2)
        cells.append(torch.cat([src, skeletons[i if paired else i % n_pose].clamp(0, 1), res], dim=2))
    return to_pil(torch.cat(cells, dim=1).unsqueeze(0))[0]
