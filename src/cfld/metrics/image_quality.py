"""PSNR, SSIM and "SSIM_256" exactly as the original evaluation computes them, batched in torch.

The original (following PIDM/NTED) calls scikit-image once per image pair on float images in [0, 1]
of shape (3, H, W):

* PSNR: ``peak_signal_noise_ratio(gt, pred, data_range=1)``.
* SSIM: ``structural_similarity(gt, pred, data_range=1, win_size=51, channel_axis=0)``: a 51x51 uniform
  window, sample covariance (N / (N - 1)), every channel separately, then their mean.
* SSIM_256: ``structural_similarity(gt * 255, pred * 255, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=0, data_range=pred.max() - pred.min())``: an 11x11 Gaussian
  window (sigma 1.5, truncated at 3.5 sigma), population covariance, values in 0..255 and the dynamic
  range of the prediction.

scikit-image filters the whole image (with reflected borders) and then averages the SSIM map without
the ``(win - 1) / 2`` pixels nearest every border. Those kept pixels see only real image pixels, so a
"valid" filter, which we compute here for a whole batch at once, gives the same mean. Like the
original (scikit-image works in the input's precision) we compute the maps in float32 and average in
float64; we agree with scikit-image and with the original's numbers to about 1e-6.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

SSIM_WINDOW = 51  # the original's win_size
GAUSSIAN_SIGMA = 1.5  # SSIM_256
GAUSSIAN_TRUNCATE = 3.5  # scikit-image's default truncation of the Gaussian window
K1, K2 = 0.01, 0.03  # scikit-image's (and Wang et al.'s) constants


def as_unit_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 3, H, W) uint8 (0..255) or float in [0, 1] -> float ``dtype`` in [0, 1] (uint8 / 255)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        if images.device.type == "cpu":  # numpy's conversion: no thread hand-offs for a cheap pass
            return torch.from_numpy(images.numpy().astype(torch.empty(0, dtype=dtype).numpy().dtype) / 255.0)
        return images.to(dtype) / 255.0
    return images.to(dtype)


def psnr(ground_truth: torch.Tensor, generated: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pair PSNR in dB, ``10 log10(data_range^2 / MSE)`` over all pixels and channels (inf if equal)."""
    x, y = as_unit_float(ground_truth), as_unit_float(generated)
    mse = (x - y).square().flatten(1).mean(1, dtype=torch.float64)
    return 10.0 * torch.log10(data_range**2 / mse)


def _band(n: int, window: torch.Tensor) -> torch.Tensor:
    """(n - k + 1, n) matrix whose rows slide ``window`` (length k) along a line of n pixels."""
    k = window.numel()
    rows = torch.arange(n - k + 1, device=window.device).unsqueeze(1)
    cols = rows + torch.arange(k, device=window.device)
    band = torch.zeros(n - k + 1, n, dtype=window.dtype, device=window.device)
    band.scatter_(1, cols, window.expand(n - k + 1, k).contiguous())
    return band


def _scipy_valid_filter(a, window):
    """``valid_filter`` for numpy arrays with scipy.ndimage's 1-D filters (a running sum when uniform)."""
    from scipy import ndimage

    w = window.numpy()
    k = w.size
    for axis in (-2, -1):
        if (w == w[0]).all():
            a = ndimage.uniform_filter1d(a, k, axis=axis, mode="constant")
        else:
            a = ndimage.correlate1d(a, w, axis=axis, mode="constant")
    r = k // 2  # scipy centres the window at k // 2; keep the positions where it lies inside the image
    return a[..., r:a.shape[-2] - (k - 1 - r), r:a.shape[-1] - (k - 1 - r)]


def valid_filter(x: torch.Tensor, window: torch.Tensor, method: str | None = None) -> torch.Tensor:
    """Separable filtering of the last two dims of ``x`` by the 1-D ``window``, keeping only the
    positions where the window lies inside the image.

    ``method`` "matmul" (the default on a GPU): two banded matrix products; "scipy" (the default on the
    CPU): scipy.ndimage's 1-D filters over the whole batch in one call each, which beat dense products there.
    """
    if (method or ("scipy" if x.device.type == "cpu" else "matmul")) == "scipy":
        return torch.from_numpy(_scipy_valid_filter(x.cpu().numpy(), window))
    window = window.to(dtype=x.dtype, device=x.device)
    return _band(x.shape[-2], window) @ x @ _band(x.shape[-1], window).T


def uniform_window(size: int = SSIM_WINDOW) -> torch.Tensor:
    return torch.full((size,), 1.0 / size, dtype=torch.float64)


def gaussian_window(sigma: float = GAUSSIAN_SIGMA, truncate: float = GAUSSIAN_TRUNCATE) -> torch.Tensor:
    """scipy.ndimage's normalised 1-D Gaussian: radius ``int(truncate * sigma + 0.5)``, float64."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _mean_ssim(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, cov_norm: float,
               data_range: torch.Tensor) -> torch.Tensor:
    """Mean SSIM map per (image, channel) of (B, C, H, W) batches (Wang et al.'s formula, as scikit-image).

    Four local means suffice: of x, y, x^2 + y^2 and xy (the two variances only appear as a sum). On the
    CPU the arithmetic runs in numpy, single-threaded like scikit-image: torch's thread hand-offs cost
    more than they gain on arrays this small.
    """
    cpu = x.device.type == "cpu"
    if cpu:
        x, y, data_range = x.numpy(), y.numpy(), data_range.numpy()
        ux, uy, usq, uxy = _scipy_valid_filter(np.stack([x, y, x * x + y * y, x * y]), window)
    else:
        ux, uy, usq, uxy = valid_filter(torch.stack([x, y, x * x + y * y, x * y]), window)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    # numerator (2 ux uy + C1)(2 cov_xy + C2), denominator (ux^2 + uy^2 + C1)(var_x + var_y + C2), in place
    mean_sq = ux * ux
    mean_sq += uy * uy
    mean_xy = ux * uy
    uxy -= mean_xy
    uxy *= 2 * cov_norm
    uxy += c2
    usq -= mean_sq
    usq *= cov_norm
    usq += c2
    num = 2 * mean_xy
    num += c1
    num *= uxy
    mean_sq += c1
    mean_sq *= usq
    num /= mean_sq
    if cpu:
        return torch.from_numpy(num.mean(axis=(-2, -1), dtype=np.float64))
    return num.mean(dim=(-2, -1), dtype=torch.float64)


def _check_size(x: torch.Tensor, window: int) -> None:
    if min(x.shape[-2:]) < window:
        raise InputError("images", f"are {x.shape[-2]}x{x.shape[-1]}; SSIM's {window}-pixel window needs at least "
                                   f"{window} pixels per side")


def ssim(ground_truth: torch.Tensor, generated: torch.Tensor, win_size: int = SSIM_WINDOW) -> torch.Tensor:
    """Per-pair SSIM of the original: uniform ``win_size`` window, data range 1, sample covariance,
    channels separately and averaged (= scikit-image with ``channel_axis=0``)."""
    x, y = as_unit_float(ground_truth), as_unit_float(generated)
    _check_size(x, win_size)
    n = win_size**2
    one = torch.ones(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    return _mean_ssim(x, y, uniform_window(win_size), n / (n - 1), one).mean(1)


def ssim_256(ground_truth: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """Per-pair "SSIM_256" of the original: values x 255, Gaussian window (sigma 1.5), population
    covariance, data range = max - min of the generated image, channels averaged."""
    x, y = as_unit_float(ground_truth) * 255.0, as_unit_float(generated) * 255.0
    window = gaussian_window()
    _check_size(x, window.numel())
    data_range = (y.amax(dim=(1, 2, 3)) - y.amin(dim=(1, 2, 3))).view(-1, 1, 1, 1)
    return _mean_ssim(x, y, window, 1.0, data_range).mean(1)


def pixel_metrics(ground_truth: torch.Tensor, generated: torch.Tensor, chunk: int = 4) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and SSIM_256 of a batch of pairs, each a (B,) float64 tensor. On the CPU the batch is
    worked through ``chunk`` pairs at a time, which keeps the intermediate maps in the cache."""
    step = chunk if ground_truth.device.type == "cpu" else ground_truth.shape[0]
    parts = []
    for i in range(0, ground_truth.shape[0], step):
        gt, gen = as_unit_float(ground_truth[i:i + step]), as_unit_float(generated[i:i + step])  # once
        parts.append({"psnr": psnr(gt, gen), "ssim": ssim(gt, gen), "ssim_256": ssim_256(gt, gen)})
    return {k: torch.cat([p[k] for p in parts]) for k in ("psnr", "ssim", "ssim_256")}


__all__ = ["psnr", "ssim", "ssim_256", "pixel_metrics", "gaussian_window", "uniform_window", "valid_filter",
           "as_unit_float", "SSIM_WINDOW"]
