"""A small VAE trained on the training images, for models that have no pretrained Stable Diffusion VAE.

Not part of the paper: CFLD uses Stable Diffusion's frozen VAE. At test size (the ``tiny`` preset on a
CPU) there is no such VAE, and a random one would make the latent space meaningless, so the CPU recipe
first trains a diffusers ``AutoencoderKL`` (reconstruction MSE + a small KL term, as latent diffusion's
first stage without the adversarial and perceptual terms) and then keeps it frozen, as CFLD keeps SD's.
Its ``scaling_factor`` is set to 1 / std of the latents, which is how Stable Diffusion's 0.18215 was chosen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..errors import InputError

DEFAULTS: dict[str, Any] = {
    "train_steps": 1000,
    "batch_size": 16,
    "lr": 1e-3,
    "kl_weight": 1e-6,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "latent_channels": 4,
}


def build_autoencoder(spec: dict[str, Any], image_size: tuple[int, int]):
    """An untrained ``AutoencoderKL`` of ``spec`` (see :data:`DEFAULTS`): one down block per entry of
    ``block_out_channels``, so latents are ``2 ** (len - 1)`` times smaller than images."""
    from diffusers import AutoencoderKL

    options = DEFAULTS | spec
    if unknown := sorted(set(options) - set(DEFAULTS)):
        raise InputError("training config vae", f"has unknown options {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    blocks = len(options["block_out_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=options["latent_channels"],
        block_out_channels=tuple(options["block_out_channels"]), layers_per_block=options["layers_per_block"],
        down_block_types=("DownEncoderBlock2D",) * blocks, up_block_types=("UpDecoderBlock2D",) * blocks,
        norm_num_groups=options["norm_num_groups"], sample_size=max(image_size),
    )


def train_autoencoder(spec: dict[str, Any], dataset: Dataset, image_size: tuple[int, int], seed: int = 0,
                      device: str | torch.device = "cpu", progress: bool = True):
    """Build and train the VAE of ``spec`` on the ``img_src``/``img_tgt`` images of ``dataset``; returns it in
    eval mode, frozen, with its scaling factor set."""
    options = DEFAULTS | spec
    torch.manual_seed(seed)
    vae = build_autoencoder(spec, image_size).to(device).train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=options["lr"])
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=max(1, options["batch_size"] // 2), shuffle=True, generator=generator,
                        drop_last=True)
    steps, bar = options["train_steps"], tqdm(total=options["train_steps"], desc="training the VAE", disable=not progress)
    done = 0
    while done < steps:
        for batch in loader:
            images = torch.cat([batch["img_src"], batch["img_tgt"]]).to(device)
            posterior = vae.encode(images).latent_dist
            reconstruction = vae.decode(posterior.sample()).sample
            loss = torch.nn.functional.mse_loss(reconstruction, images) + options["kl_weight"] * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # a cosine decay to a tenth of the rate: sharper reconstructions for the same number of steps
            for group in optimizer.param_groups:
                group["lr"] = options["lr"] * (0.55 + 0.45 * torch.cos(torch.tensor(torch.pi * done / steps)).item())
            optimizer.step()
            done += 1
            bar.update()
            bar.set_postfix(mse=f"{loss.item():.4f}")
            if done >= steps:
                break
    bar.close()
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        images = torch.cat([torch.cat([b["img_src"], b["img_tgt"]]) for b, _ in zip(loader, range(4))]).to(device)
        std = vae.encode(images).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae
