"""What the benchmark scripts share: the random-weight model, the original's sampling loop, and timing the first
steps of a sampling run. Imported by the scripts beside it (``python benchmarks/<name>.py`` puts this folder on
``sys.path``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
PHOTO = REPO / "tests" / "data" / "women1.jpg"

from cfld.guidance import FULL, POSE_ONLY, UNCOND  # noqa: E402
from cfld.models.cfld import Conditions  # noqa: E402
from cfld.pipeline import CFLDPipeline  # noqa: E402


def random_pipeline(preset: str = "sd15") -> CFLDPipeline:
    """The ``preset`` model with random weights (seed 0) and DDPM. ``sd15``: the paper's sizes (Swin-B, PRD R=8
    Q=16 C=768, HGA K=4, SD 1.5's UNet and VAE); weights do not change the speed. ``tiny``: the tests' sizes with a
    small VAE of SD's 8x downsampling, for a dry run of a script."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from cfld.checkpoint import SD15_VAE_CONFIG
    from cfld.models.cfld import CFLDModel
    from cfld.models.config import CFLDConfig

    torch.manual_seed(0)
    config = CFLDConfig.preset(preset)
    model = CFLDModel.from_config(config)
    for conv in model.appearance_encoder.zero_conv_outs:  # random HGA outputs: zeros would make the biases vanish
        torch.nn.init.normal_(conv.weight, std=0.02)
    if preset == "sd15":
        vae = AutoencoderKL(**SD15_VAE_CONFIG)
    else:
        vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), norm_num_groups=8, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return CFLDPipeline(model, UNet2DConditionModel(**config.unet), vae, "ddpm")


@torch.no_grad()
def original_style_loop(pipe: CFLDPipeline, encoding, pose_img, z_t, steps, w_pose=2.0, w_app=2.0, generator=None):
    """What the original's ``sample()`` does with the pipeline's scheduler: every step runs the UNet on [z, z, z]
    with [(∅,∅), (∅,pose), (src,pose)] conditions and combines them as it writes Eq. 7. Returns z_0."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps)
    conditions = Conditions(encoding.prompt, pipe.model.pose_adapter(pose_img), encoding.query_biases)
    batch = pipe.model.guidance_batch(conditions, [UNCOND, POSE_ONLY, FULL])
    latents = z_t.clone()
    for t in scheduler.timesteps:
        inputs = scheduler.scale_model_input(torch.cat([latents] * 3), t)
        e_uc, e_pose, e_full = pipe.unet(inputs.to(pipe.unet.dtype), t, **batch.unet_kwargs()).sample.float().chunk(3)
        eps = e_uc + w_pose * (e_pose - e_uc) + w_app * (e_full - e_pose)
        latents = scheduler.step(eps, t, latents, generator=generator).prev_sample
    return latents


class _Stop(Exception):
    pass


def first_steps(pipe: CFLDPipeline, source, pose, count: int, **kwargs) -> tuple[torch.Tensor, np.ndarray]:
    """Run ``pipe(source, pose, **kwargs)`` for its first ``count`` steps only: (the latents after them, the
    seconds of each step; the first also holds the call's set-up)."""
    stamps, kept = [time.perf_counter()], {}

    def callback(pipe, step, t, tensors):
        stamps.append(time.perf_counter())
        kept["latents"] = tensors["latents"]
        if step + 1 >= count:
            raise _Stop
        return tensors

    try:
        pipe(source, pose, output_type="latent", progress=False, callback_on_step_end=callback, **kwargs)
    except _Stop:
        pass
    return kept["latents"], np.diff(stamps)
