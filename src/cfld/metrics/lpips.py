"""LPIPS with AlexNet, as the original evaluation computes it (``lpips.LPIPS(net="alex")``, version 0.1,
inputs in [0, 1] with ``normalize=True``).

We use the ``lpips`` package's own model and its learned linear layers (shipped inside that package)
and load the AlexNet backbone ourselves, from torchvision's cache or a path, so that nothing is
downloaded behind the user's back. The model is run on whole batches.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn as nn

from ..errors import InputError
from .weights import load_torchvision_weights

# torchvision's alexnet.features index -> the lpips package's slice that holds it
_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def _lpips_package():
    try:
        import lpips
    except ImportError:
        raise InputError("lpips", "is not installed; LPIPS needs it: "
                                  "pip install 'lpips>=0.1.4,<0.2' (or cfld[metrics])") from None
    return lpips


def alexnet_features_to_lpips(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision AlexNet ``features.{i}.*`` -> the lpips package's ``net.slice{k}.{i}.*`` names."""
    out = {}
    for index, slice_ in _SLICES.items():
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key not in state:
                raise InputError("AlexNet weights", f"lack {key}; expected torchvision's alexnet-owt-7be5be79.pth")
            out[f"net.slice{slice_}.{index}.{kind}"] = state[key]
    return out


class LPIPSAlex(nn.Module):
    """Batched LPIPS (AlexNet, v0.1). ``forward(ground_truth, generated)`` -> (B,) distances."""

    def __init__(self, backbone_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        lpips = _lpips_package()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation notice for pretrained=False
            # pnet_rand: build AlexNet without weights (no download); the linear layers come from the package
            self.model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        if backbone_state is not None:
            missing = self.model.load_state_dict(alexnet_features_to_lpips(backbone_state), strict=False)
            if missing.unexpected_keys:
                raise InputError("AlexNet weights", f"have unexpected keys {missing.unexpected_keys[:3]}")
        self.model.eval().requires_grad_(False)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, allow_download: bool = False) -> LPIPSAlex:
        """AlexNet from ``path`` or torchvision's cache (``alexnet-owt-7be5be79.pth``)."""
        from torchvision.models import AlexNet_Weights

        url = AlexNet_Weights.IMAGENET1K_V1.url
        return cls(load_torchvision_weights(url, path, "AlexNet (IMAGENET1K_V1, for LPIPS)", "--alexnet-weights",
                                            allow_download))

    @torch.inference_mode()
    def forward(self, ground_truth: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        x = ground_truth.float() / 255.0 if ground_truth.dtype == torch.uint8 else ground_truth.float()
        y = generated.float() / 255.0 if generated.dtype == torch.uint8 else generated.float()
        return self.model(y, x, normalize=True).flatten()
