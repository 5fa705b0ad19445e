"""Person photos in and out: validation, the original preprocessing, and the original quantisation.

The original implementation resizes with torchvision on PIL images (bicubic, which PIL always
antialiases) and quantises generated images by truncation (``(x * 255).clamp(0, 255).to(uint8)``), not
rounding. We do the same so that saved images and metrics match it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import InputError

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]

MIN_SIDE = 16  # smaller than this is not a person photo
MAX_PIXELS = 64_000_000  # refuse decompression bombs with a clear message instead of PIL's warning


def load_image(image: ImageInput, source: str | None = None) -> Image.Image:
    """Any photo a user hands us as an RGB PIL image, or an InputError naming it and the fault.

    Accepts a path, a PIL image, an HxWx3 uint8 array, or a 3xHxW float tensor in [0, 1].
    """
    name = source or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(name, "no such file" if not path.exists() else "is not a file")
        try:
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise InputError(name, f"is {opened.width}x{opened.height} pixels, more than the {MAX_PIXELS:,} we accept")
                pil = opened.convert("RGB")
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
            raise InputError(name, f"cannot be read as an image ({err})") from None
    elif isinstance(image, Image.Image):
        pil = image.convert("RGB")
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise InputError(name, f"must be an HxWx3 uint8 array, got shape {image.shape} and dtype {image.dtype}")
        pil = Image.fromarray(image[..., :3])
    elif isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise InputError(name, f"must be a 3xHxW float tensor in [0, 1], got shape {tuple(image.shape)}")
        if not torch.isfinite(image).all():
            raise InputError(name, "contains NaN or infinite values")
        pil = Image.fromarray(to_uint8(image.unsqueeze(0))[0])
    else:
        raise InputError(name, f"is a {type(image).__name__}, not a path, PIL image, array or tensor")
    if min(pil.size) < MIN_SIDE:
        raise InputError(name, f"is only {pil.width}x{pil.height} pixels; a person photo needs at least {MIN_SIDE} per side")
    return pil


def to_model_input(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) in [-1, 1]: bicubic antialiased resize to ``size`` = (H, W), as the original's transforms."""
    resized = image.resize((size[1], size[0]), Image.BICUBIC)
    array = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1)
    return array.float().div(255.0).sub(0.5).div(0.5)


def resize_output(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a batch in [0, 1] to ``size`` = (H, W), bicubic antialiased on tensors, as the original."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return torch.nn.functional.interpolate(images, size=tuple(size), mode="bicubic", antialias=True)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 with the original's truncating quantisation."""
    quantised = (images.detach().float() * 255.0).clamp(0, 255).to(torch.uint8)
    return quantised.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(array) for array in to_uint8(images)]


def save_image(image: Image.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a result atomically (format from the suffix); refuses to replace a file unless ``overwrite``."""
    from .io import atomic_write

    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(suffix, suffix.upper())
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
    n_pose = 1 if paired else pose_images.shape[0]
    skeletons = resize_output(pose_images[:, :3].float(), size)
    cells = []
    for i, result in enumerate(results):
        src = to_model_input(load_image(sources[i if paired else i // n_pose]), size).add(1).div(2)
        res = to_model_input(result, size).add(1).div(2)
        cells.append(torch.cat([src, skeletons[i if paired else i % n_pose].clamp(0, 1), res], dim=2))
    return to_pil(torch.cat(cells, dim=1).unsqueeze(0))[0]
