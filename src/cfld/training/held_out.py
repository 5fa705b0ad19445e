"""Held-out evaluation of a model trained on synthetic persons: what ``cfld demo`` and
``benchmarks/train_synthetic.py`` print.

The pairs are persons never seen in training (:data:`cfld.data.synthetic.HELD_OUT_SEED`) in poses held out
of training (split ``"test"``). The source image and the target pose go in; the target image is the ground
truth. Besides the model's own images, four other predictions frame the numbers:

* ``copy the source``: the source image returned as it is (the right person, the wrong pose);
* ``a different person``: another held-out person drawn in the right pose (the right pose, the wrong look);
* ``untrained model``: the same configuration with the recipe's random initial weights, the same VAE;
* ``VAE alone``: the ground truth encoded and decoded by the model's VAE: the ceiling, since no diffusion
  model can draw better than its decoder.

Scores, against the ground truth, on images truncated to uint8 as the original evaluation saves them: SSIM and
PSNR (:func:`cfld.metrics.pixel_metrics`, scikit-image's numbers) and the garment colour difference ΔE00
(:mod:`cfld.metrics.appearance`, in the regions the person's own drawing gives the upper and lower garment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..data.synthetic import HELD_OUT_SEED, SyntheticPersons
from ..images import to_uint8
from ..metrics.appearance import mean_garment_delta_e
from ..metrics.image_quality import pixel_metrics
from ..models import CFLDConfig, CFLDModel
from ..models.cfld import build_unet
from ..pipeline import CFLDPipeline
from .config import TrainConfig

RECIPE = "synthetic-cpu"
"""The training recipe of the demo model: its data's photo size and its seed (the untrained model's weights)."""
SCORES = ("SSIM", "PSNR", "ΔE00")


def quantise(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 3, H, W) uint8, truncated as the original saves its images (:func:`to_uint8`)."""
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2)


@dataclass
class HeldOutPairs:
    """``count`` held-out pairs, drawn at a model's sizes, and what every prediction is scored with."""

    items: list[dict]
    truth: torch.Tensor  # (N, 3, H, W) in [0, 1]: the target images
    source: torch.Tensor  # the source images at the same size
    different_person: torch.Tensor  # the next held-out person in this pair's target pose
    masks: np.ndarray  # (N, 2, H, W) booleans: upper and lower garment in the target image

    @classmethod
    def draw(cls, count: int, config: CFLDConfig, poses: str | os.PathLike | None = None,
             photo_size: tuple[int, int] | None = None) -> HeldOutPairs:
        """``count`` pairs at ``config``'s sizes, in held-out rows of ``poses`` (default: the bundled gallery),
        drawn at ``photo_size`` (default: the recipe's, as the demo model was trained)."""
        photo_size = photo_size or TrainConfig.load(RECIPE).data["photo_size"]
        # one person more than pairs: the "different person" of pair i is person i + 1 (items depend only on
        # the seed and the index, so the pairs are the same as in a dataset of ``count``)
        persons = SyntheticPersons(count + 1, config.image_size, config.cond_size, config.pose_size,
                                   seed=HELD_OUT_SEED, poses=poses, split="test", photo_size=photo_size)
        items = [persons[i] for i in range(count)]
        unit = lambda images: (torch.stack(images) + 1) / 2  # noqa: E731
        return cls(items=items, truth=unit([i["img_tgt"] for i in items]), source=unit([i["img_src"] for i in items]),
                   different_person=unit([persons.target_worn_by(i, i + 1) for i in range(count)]),
                   masks=np.stack([persons.garment_masks(i) for i in range(count)]))

    @property
    def conditions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pipeline's inputs: source images (``img_cond``) and target pose images."""
        return torch.stack([i["img_cond"] for i in self.items]), torch.stack([i["pose_img_tgt"] for i in self.items])

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """Mean SSIM, PSNR and garment ΔE00 of ``images`` ((N, 3, H, W) in [0, 1]) against the ground truth."""
        predicted, truth = quantise(images), quantise(self.truth)
        pixels = pixel_metrics(truth, predicted)
        return {"SSIM": pixels["ssim"].mean().item(), "PSNR": pixels["psnr"].mean().item(),
                "ΔE00": mean_garment_delta_e(predicted.float() / 255, truth.float() / 255, self.masks)}


@torch.no_grad()
def generate(pipe, pairs: HeldOutPairs, steps: int = 50, scheduler: str | None = None, seed: int = 0,
             progress: bool = False) -> torch.Tensor:
    """The pipeline's images for ``pairs`` ((N, 3, H, W) in [0, 1]), sampled as the paper (DDPM, w = 2)."""
    sources, poses = pairs.conditions
    return pipe(sources, poses, paired=True, num_inference_steps=steps, scheduler=scheduler, output_type="pt",
                output_size=None, generator=torch.Generator().manual_seed(seed), progress=progress).images.cpu().float()


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor) -> torch.Tensor:
    """``images`` ((N, 3, H, W) in [0, 1]) encoded (the posterior's mean) and decoded by ``vae``."""
    x = images.to(vae.device, vae.dtype) * 2 - 1
    return ((vae.decode(vae.encode(x).latent_dist.mean).sample + 1) / 2).clamp(0, 1).cpu().float()


def untrained_pipeline(pipe, seed: int | None = None):
    """``pipe`` with its condition model and UNet replaced by the random weights training starts from (built in
    the order :meth:`cfld.training.Trainer.build_models` builds them after ``set_seed(seed)``; default seed: the
    recipe's)."""
    from accelerate.utils import set_seed

    set_seed(TrainConfig.load(RECIPE).seed if seed is None else seed)
    model = CFLDModel.from_config(pipe.model.config)
    unet = build_unet(pipe.model.config)
    return CFLDPipeline(model, unet, pipe.vae, pipe.scheduler)


def score_table(rows: dict[str, dict[str, float]]) -> list[str]:
    """Lines of a table: one row per prediction, SSIM / PSNR / ΔE00 columns (and any other score given)."""
    names = list(SCORES) + [n for n in next(iter(rows.values())) if n not in SCORES]
    width = max(26, *(len(name) + 2 for name in rows))
    lines = [f"{'against the ground truth':<{width}}" + "".join(f"{n:>9}" for n in names)]
    for name, values in rows.items():
        lines.append(f"{name:<{width}}"
                     + "".join(f"{values[n]:>9.{2 if n in ('PSNR', 'ΔE00') else 4}f}" for n in names))
    return lines
