"""Garment colour difference: did the person keep their clothes' colours, not just their pose?

SSIM and PSNR reward a grey figure in the right place almost as much as the right clothes. This measure
looks only at the clothes: for each garment (upper, lower) it averages the colour, in CIELAB, of the
pixels inside that garment's region in the generated image and in the ground truth, and gives the
CIEDE2000 difference ΔE00 of the two averages (scikit-image's ``rgb2lab`` with D65, ``deltaE_ciede2000``).
Averaging first makes it a measure of *colour*: a stripe drawn half a stripe off still scores the colours
it mixes. As a guide, ΔE00 below 1 is invisible, 2-3 is a noticeable difference side by side, and a different
garment is typically 20-40.

The regions come from the caller; for synthetic persons, :meth:`cfld.data.synthetic.SyntheticPersons.garment_masks`
gives the pixels that the person's own drawing covers with each garment in the target pose, at full cover.
"""

from __future__ import annotations

import numpy as np
import torch

GARMENTS = ("upper", "lower")


def _as_images(images, name: str) -> np.ndarray:
    """(N, 3, H, W) tensor or (N, H, W, 3) array in [0, 1] -> (N, H, W, 3) float64 array."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, 3, H, W) tensors or (N, H, W, 3) arrays, got shape {images.shape}")
    return np.clip(images, 0, 1)


def garment_delta_e(generated, truth, masks) -> np.ndarray:
    """ΔE00 between the mean CIELAB colour of each garment in ``generated`` and in ``truth``.

    Args:
        generated, truth: N images, (N, 3, H, W) tensors or (N, H, W, 3) arrays in [0, 1].
        masks: (N, G, H, W) booleans, one region per garment (see :data:`GARMENTS`).

    Returns:
        (N, G) float array; NaN where a garment has no pixel (e.g. hidden in that pose).
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    generated, truth = _as_images(generated, "generated"), _as_images(truth, "truth")
    masks = np.asarray(masks, dtype=bool)
    if generated.shape != truth.shape or masks.shape[:1] + masks.shape[2:] != generated.shape[:3]:
        raise ValueError(f"shapes differ: generated {generated.shape}, truth {truth.shape}, masks {masks.shape}")
    lab_generated, lab_truth = rgb2lab(generated), rgb2lab(truth)
    result = np.full(masks.shape[:2], np.nan)
    for n, g in zip(*np.nonzero(masks.any(axis=(2, 3)))):
        inside = masks[n, g]
        result[n, g] = deltaE_ciede2000(lab_generated[n][inside].mean(axis=0), lab_truth[n][inside].mean(axis=0))
    return result


def mean_garment_delta_e(generated, truth, masks) -> float:
    """The mean of :func:`garment_delta_e` over images and garments that have pixels (NaN if none has)."""
    values = garment_delta_e(generated, truth, masks)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
