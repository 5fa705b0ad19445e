"""CFLDEditPipeline: appearance editing without training (paper Sec. 4.6, Fig. 6): style transfer by mask and
style interpolation.

    pipe = CFLDEditPipeline.from_pretrained("path/to/cfld-folder")  # or CFLDEditPipeline.from_pipe(a_CFLDPipeline)
    edited = pipe.style_transfer("ref.png", "ref_pose.json", "other.jpg", "ref_mask_upper.png").images
    strip = pipe.interpolate("a.jpg", "b.jpg", "pose.json", [0.0, 0.5, 1.0]).images

A :class:`CFLDEditPipeline` is a :class:`cfld.pipeline.CFLDPipeline` (same components, loading, saving and
sampling options, shared with ``from_pipe`` at no cost): editing only prepares what the sampler starts from (the
source encodings, the initial noise and, for style transfer, a :class:`KeepRegion` that the denoising loop of
:meth:`CFLDPipeline.__call__` applies after every step). Sampling itself, and how a generator's random numbers are
drawn, is described in :mod:`cfld.pipeline`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import InputError
from .images import BLACK, ImageInput, load_image, to_model_input
from .pipeline import CFLDPipeline, CFLDPipelineOutput, PoseInput, SourceEncoding


@dataclass
class KeepRegion:
    """Style transfer by mask (paper Sec. 4.6): generate only inside ``mask``, keep the reference elsewhere.

    The paper writes the step as ``eps'_t = m * eps_t + (1 - m) * z_t^ref`` with ``z_t^ref`` the reference's
    latent ``z_0^ref = E(y_ref)`` noised to step t by Eq. 1. We apply that blend to the latent the sampler
    carries (as blended latent diffusion does): after every step, outside the mask the latent becomes
    ``z_{t-1}^ref``, and after the last step ``z_0^ref`` itself, so the unmasked region is the reference's
    own reconstruction and the masked region is generated in the reference's pose with the source's look.
    """

    mask: torch.Tensor  # (N, 1, h, w) in [0, 1] at latent size; 1 = generate
    reference_latents: torch.Tensor  # z_0^ref, (N, 4, h, w)
    noise: torch.Tensor  # the fixed noise of Eq. 1, (N, 4, h, w)

    def blend(self, latents: torch.Tensor, scheduler, timestep) -> torch.Tensor:
        if timestep is None:
            reference = self.reference_latents
        else:
            reference = scheduler.add_noise(self.reference_latents, self.noise, torch.as_tensor([int(timestep)]))
        mask = self.mask.to(latents)
        return mask * latents + (1 - mask) * reference.to(latents)


class CFLDEditPipeline(CFLDPipeline):
    """The paper's appearance editing (Sec. 4.6) on a CFLD model: :meth:`style_transfer` and :meth:`interpolate`.

    Build it like a :class:`CFLDPipeline` (``from_pretrained``, ``save_pretrained`` and ``__call__`` are the same),
    or on an existing one's components: ``CFLDEditPipeline.from_pipe(pipe)`` or
    ``CFLDEditPipeline(**pipe.components)`` (the networks are shared, not copied).
    """

    @classmethod
    def from_pipe(cls, pipe: CFLDPipeline) -> "CFLDEditPipeline":
        """An edit pipeline sharing ``pipe``'s networks and scheduler (nothing loaded or copied)."""
        edit = cls(**pipe.components)
        edit.name_or_path = pipe.name_or_path
        return edit

    @torch.no_grad()
    def style_transfer(
        self,
        reference: ImageInput,
        reference_pose: PoseInput,
        source: ImageInput | Sequence[ImageInput],
        mask: ImageInput | torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> CFLDPipelineOutput:
        """Dress the person of ``reference`` in the masked region with the appearance of each ``source``.

        The pose is the reference's own (``reference_pose``, e.g. its annotation row or a detected pose);
        outside ``mask`` (a picture, white = edit, e.g. an upper-clothes mask) the reference is kept. No
        training is involved: this is the paper's Fig. 6(a). ``kwargs`` go to :meth:`CFLDPipeline.__call__`.
        """
        reference_image = load_image(reference)
        region = latent_mask(mask, self.latent_size, reference_image)
        encoding = self.encode_source(source)
        n = len(encoding)
        reference_pixels = to_model_input(reference_image, self.config.image_size).unsqueeze(0)
        z_ref = self.encode_images(reference_pixels).float().expand(n, -1, -1, -1)
        region = region.expand(n, -1, -1, -1)
        latents = torch.randn(z_ref.shape, generator=generator)
        noise = torch.randn(z_ref.shape, generator=generator)
        keep = KeepRegion(region.to(self.device), z_ref.to(self.device), noise.to(self.device))
        return self(encoding, [reference_pose] * n, paired=True, latents=latents, keep=keep, generator=generator, **kwargs)

    @torch.no_grad()
    def interpolate(
        self,
        source_a: ImageInput,
        source_b: ImageInput,
        pose: PoseInput,
        weights: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> CFLDPipelineOutput:
        """Style interpolation (paper Fig. 6(b)): coarse prompts and HGA biases linearly interpolated from
        ``source_a`` (weight 0) to ``source_b`` (weight 1), one image per weight, same pose, same noise.
        ``kwargs`` go to :meth:`CFLDPipeline.__call__`."""
        if not len(weights):
            raise InputError("weights", "no interpolation weight given")
        a, b = self.encode_source(source_a), self.encode_source(source_b)
        steps = [a.lerp(b, float(w)) for w in weights]
        encoding = SourceEncoding(
            torch.cat([e.prompt for e in steps]),
            {k: torch.cat([e.query_biases[k] for e in steps]) for k in a.query_biases},
        )
        z_t = torch.randn((1, self.unet.config.in_channels, *self.latent_size), generator=generator)
        return self(encoding, pose, latents=z_t.expand(len(weights), -1, -1, -1).clone(), generator=generator, **kwargs)


def latent_mask(mask: ImageInput | torch.Tensor, size: tuple[int, int], reference: Image.Image | None = None) -> torch.Tensor:
    """A (1, 1, h, w) mask in [0, 1] at latent size from a picture (white = 1, transparent = 0) or a (H, W)
    tensor. It must have the reference photo's shape: a mask of another aspect ratio was made for another
    picture, and stretching it would edit the wrong region."""
    name = os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "mask"
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:
        values = mask.float()
        if not torch.isfinite(values).all():
            raise InputError(name, "contains NaN or infinite values")
    else:
        values = torch.from_numpy(np.asarray(load_image(mask, name, background=BLACK).convert("L"), dtype=np.float32) / 255.0)
    if reference is not None:
        mask_ratio, photo_ratio = values.shape[1] / values.shape[0], reference.width / reference.height
        if abs(mask_ratio / photo_ratio - 1) > 0.02:
            raise InputError(name, f"is {values.shape[0]}x{values.shape[1]} (HxW) but the reference photo is "
                                   f"{reference.height}x{reference.width}: a mask must have the photo's shape")
    if values.max() <= 0:
        raise InputError(name, "is empty (no white pixel): nothing would be edited")
    return torch.nn.functional.interpolate(values[None, None], size=size, mode="area").clamp(0, 1)
