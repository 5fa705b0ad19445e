"""Pose images: the 21-channel condition CFLD's pose adapter reads, and pictures for people.

The 21 channels, exactly as the original CFLD data pipeline builds them at ``(H, W)``:

* 0-2: the RGB skeleton, uint8 / 255 (float64 division, then float32). Bones are antialiased OpenCV
  lines 2 px thick in :data:`BONE_COLORS`, drawn in :data:`BONES` order; then every joint is a
  filled antialiased disc of radius 3 in :data:`JOINT_COLORS`. Joint ``(x, y)`` of a frame
  ``(h, w)`` lands on pixel ``(trunc(x * (W / w)), trunc(y * (H / h)))``.
* 3-20: one Gaussian per joint, ``exp(-((row - py)^2 + (col - px)^2) / (2 sigma^2))`` with sigma 6,
  centred on ``py = trunc(y / h * H)``, ``px = trunc(x / w * W)``, evaluated in float64 and stored
  as float32; all zeros for a missing joint.

Two details of the original are kept on purpose because the released weights were trained on them:
both channels truncate towards zero (so ``-26.2`` becomes ``-26``, not ``-27``), and the two
channels compute the pixel with a different order of operations (``x * (W / w)`` against
``x / w * W``), which differ by one pixel for a few coordinates when ``W == w``.

Heatmaps are not computed joint by joint: every possible offset between a pixel and a joint is
evaluated once into a table (cached per size), and all 18 heatmaps are read from it in a single
vectorised gather. Each value is the same float64 expression as the original's, so the result is
bit-identical; at 256x256 it is some 30-50x faster than the original's loop once the table exists,
and building the table (once per size) costs one or two renderings the original way
(see benchmarks/pose_rendering.py).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import InputError
from ..images import load_rgb_array
from ..io import atomic_write
from .skeleton import BONE_COLORS, BONES, JOINT_COLORS, Pose, Size, parse_size

if TYPE_CHECKING:
    import torch

#: Standard deviation, in output pixels, of the joint heatmaps.
SIGMA = 6.0
#: The largest heatmap sigma accepted: beyond it the heatmaps are flat and their offset table would not fit.
MAX_SIGMA = 100.0
#: The largest side of a 21-channel pose image (the model's is 256; 2048 already takes 350 MB as float32).
MAX_POSE_IMAGE_SIDE = 2048
#: The largest side of a picture of a pose (8192 x 8192 x 3 bytes is 200 MB).
MAX_PICTURE_SIDE = 8192
#: Bone thickness of the original renderer; joints are discs of radius ``LINE_WIDTH + 1``.
LINE_WIDTH = 2

_UINT8_TO_UNIT = (np.arange(256) / 255.0).astype(np.float32)


def _zero_reach(sigma: float) -> int:
    """A distance (pixels) from which on the float32 Gaussian is exactly 0 (below half the smallest subnormal)."""
    return math.ceil(sigma * math.sqrt(2 * 150 * math.log(2))) + 1


@functools.lru_cache(maxsize=8)
def _gaussian_table(height: int, width: int, sigma: float) -> np.ndarray:
    """``exp(-(dy^2 + dx^2) / (2 sigma^2))`` as float32 for every offset a heatmap can need.

    Offsets run over ``|dy| <= height - 1 + reach`` and ``|dx| <= width - 1 + reach``, so the table
    holds every joint within ``reach`` of the frame; joints further out give all zeros anyway.
    """
    reach = _zero_reach(sigma)
    dy = np.arange(-(height - 1 + reach), height + reach)
    dx = np.arange(-(width - 1 + reach), width + reach)
    table = np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma**2)).astype(np.float32)
    table.flags.writeable = False
    return table


def render_size(size: Size | int, limit: int, what: str = "pose image") -> Size:
    """``size`` as ``(height, width)``, refusing sides above ``limit`` before anything is allocated."""
    height, width = parse_size(size, f"{what} size")
    if max(height, width) > limit:
        raise InputError(f"{what} size", f"{height}x{width} is larger than the {limit}x{limit} a {what} may be")
    return height, width


def render_heatmaps(pose: Pose, size: Size | int, sigma: float = SIGMA) -> np.ndarray:
    """The 18 joint heatmaps, ``(18, H, W)`` float32, as the original renders them at ``size = (H, W)``."""
    height, width = render_size(size, MAX_POSE_IMAGE_SIDE)
    if not (isinstance(sigma, (int, float)) and 0 < sigma <= MAX_SIGMA):
        raise InputError("heatmaps", f"sigma must be a number in (0, {MAX_SIGMA:g}] pixels, got {sigma}")
    reach = _zero_reach(sigma)
    table = _gaussian_table(height, width, float(sigma))
    frame_h, frame_w = pose.frame
    with np.errstate(invalid="ignore"):  # missing joints are NaN; they are parked out of reach below
        rows = np.trunc(pose.xy[:, 1] / frame_h * height)
        cols = np.trunc(pose.xy[:, 0] / frame_w * width)
    rows = np.clip(np.where(pose.visible, rows, -reach), -reach, height - 1 + reach).astype(np.intp)
    cols = np.clip(np.where(pose.visible, cols, -reach), -reach, width - 1 + reach).astype(np.intp)
    # Window (a, b) of the table is the heatmap of a joint at (row, col) = (centre - a, centre - b).
    windows = np.lib.stride_tricks.sliding_window_view(table, (height, width))
    return windows[height - 1 + reach - rows, width - 1 + reach - cols]


def render_skeleton(
    pose: Pose, size: Size | int, canvas: np.ndarray | None = None, line_width: int = LINE_WIDTH
) -> np.ndarray:
    """The coloured skeleton, ``(H, W, 3)`` uint8 RGB, drawn as the original draws it.

    Args:
        pose: the pose; its frame is stretched to ``size`` (as the original stretches 256x176
            annotations onto a 256x256 pose image).
        size: ``(H, W)`` of the picture.
        canvas: an ``(H, W, 3)`` uint8 picture to draw on (a copy is made); black by default.
        line_width: bone thickness; joints get radius ``line_width + 1``. Only the default 2
            reproduces the model's input.
    """
    height, width = render_size(size, MAX_PICTURE_SIDE, "picture")
    if canvas is None:
        image = np.zeros((height, width, 3), np.uint8)
    else:
        if canvas.shape != (height, width, 3) or canvas.dtype != np.uint8:
            raise InputError("canvas", f"must be a {height}x{width}x3 uint8 picture, got {canvas.shape} {canvas.dtype}")
        image = np.ascontiguousarray(canvas).copy()
    frame_h, frame_w = pose.frame
    with np.errstate(invalid="ignore"):
        points = np.trunc(pose.xy * [width / frame_w, height / frame_h])
    visible = pose.visible
    pixel = [(int(x), int(y)) if v else None for (x, y), v in zip(points, visible)]
    for (start, end), color in zip(BONES, BONE_COLORS):
        if visible[start] and visible[end]:
            cv2.line(image, pixel[start], pixel[end], color, line_width, cv2.LINE_AA)
    for point, color in zip(pixel, JOINT_COLORS):
        if point is not None:
            cv2.circle(image, point, line_width + 1, color, -1, cv2.LINE_AA)
    return image


def pose_image(pose: Pose, size: Size | int = (256, 256), sigma: float = SIGMA) -> torch.Tensor:
    """The 21-channel pose image CFLD takes, ``(21, H, W)`` float32: skeleton / 255, then 18 heatmaps."""
    import torch

    size = render_size(size, MAX_POSE_IMAGE_SIDE)
    skeleton = _UINT8_TO_UNIT[render_skeleton(pose, size)].transpose(2, 0, 1)
    return torch.from_numpy(np.concatenate([skeleton, render_heatmaps(pose, size, sigma)]))


# -- pictures for people --------------------------------------------------------------------------


def draw_pose(pose: Pose, size: Size | int | None = None, background: np.ndarray | None = None) -> np.ndarray:
    """A picture of the pose, ``(H, W, 3)`` uint8 RGB, optionally over a photo.

    Args:
        pose: the pose, stretched from its frame onto the picture.
        size: ``(H, W)`` of the picture; default the photo's size, else the pose's frame.
        background: an RGB uint8 photo; it is resized to ``size`` and darkened so the colours show.

    Lines grow with the picture (2 px up to 256 px, the model's look), so big photos stay readable.
    """
    if size is None:
        size = background.shape[:2] if background is not None else pose.frame
    height, width = render_size(size, MAX_PICTURE_SIDE, "picture")
    canvas = None
    if background is not None:
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
            raise InputError("background", f"must be an RGB uint8 picture, got {background.shape} {background.dtype}")
        if background.shape[:2] != (height, width):
            background = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
        canvas = (background.astype(np.float32) * 0.6).round().astype(np.uint8)
    line_width = max(LINE_WIDTH, round(min(height, width) / 128))
    return render_skeleton(pose, (height, width), canvas, line_width)


def pose_grid(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int = 6) -> np.ndarray:
    """Tile equally sized RGB pictures into one, each with an optional caption strip below it."""
    if not images:
        raise InputError("grid", "needs at least one picture")
    height, width = images[0].shape[:2]
    if any(image.shape != images[0].shape for image in images):
        raise InputError("grid", "all pictures must have the same size")
    caption = 14 if labels else 0
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    grid = np.full((rows * (height + caption), columns * width, 3), 255, np.uint8)
    for i, image in enumerate(images):
        top, left = (i // columns) * (height + caption), (i % columns) * width
        grid[top : top + height, left : left + width] = image
        if labels:
            text = _fit_text(labels[i], width - 4)
            origin = (left + 2, top + height + 10)
            cv2.putText(grid, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.32, (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def _fit_text(text: str, width: int) -> str:
    """``text``, or its tail after "..", so that it fits ``width`` pixels in the caption font."""

    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, 0.32, 1)[0][0] <= width

    if fits(text):
        return text
    while text and not fits(".." + text):
        text = text[1:]
    return ".." + text


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB uint8 photo through :func:`cfld.images.load_image` (upright, 8-bit, size-checked), or an
    InputError naming the file."""
    return load_rgb_array(path)


def write_png(image: np.ndarray, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save an RGB uint8 picture as PNG atomically; refuses to replace a file unless ``overwrite``."""
    from PIL import Image

    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"), overwrite=overwrite)
