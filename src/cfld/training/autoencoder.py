"""A small VAE trained on the training images, for models that have no pretrained Stable Diffusion VAE.

Not part of the paper: CFLD uses Stable Diffusion's frozen VAE. At test size (the ``tiny`` preset on a
CPU) there is no such VAE, and a random one would make the latent space meaningless, so the CPU recipe
first trains a diffusers ``AutoencoderKL`` (reconstruction MSE + a small KL term, as latent diffusion's
first stage without the adversarial and perceptual terms) and then keeps it frozen, as CFLD keeps SD's.
Its ``scaling_factor`` is set to 1 / std of the latents, which is how Stable Diffusion's 0.18215 was chosen.

With ``deterministic: true`` it is trained as a plain autoencoder, on the posterior's mean, and its posterior
variance is then fixed at e^-30: ``latent_dist.sample()`` (what CFLD's training encodes with) is then the mean,
as it nearly is for Stable Diffusion's VAE. Trained on samples instead, a VAE this small keeps a posterior
standard deviation about half of its latents' own (measured: 0.41 against 0.78 after 2,000 steps), so the
diffusion model would learn to draw noisy latents, which decode blurred.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import validation as V
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
    "deterministic": False,
}
FIXED_LOGVAR = -30.0
"""The posterior log-variance of a ``deterministic`` autoencoder (standard deviation 3e-7)."""


def check_options(spec: Any, source: object = "training config vae") -> dict[str, Any]:
    """The VAE options of a training config with :data:`DEFAULTS` filled in, each checked (type, range, and
    channels that the group norm divides), or one InputError naming the option."""
    if not isinstance(spec, dict):
        raise InputError(source, f"must be a mapping of VAE options, got {V.shown(spec)}")
    if unknown := sorted(str(k) for k in set(spec) - set(DEFAULTS)):
        raise InputError(source, f"has unknown options {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    options = DEFAULTS | spec
    V.check_int(options["train_steps"], "train_steps", source, 1, 10**8)
    V.check_int(options["batch_size"], "batch_size", source, 2, 4096)
    V.check_float(options["lr"], "lr", source, 0, 1, low_open=True)
    V.check_float(options["kl_weight"], "kl_weight", source, 0, 1)
    channels = V.check_ints(options["block_out_channels"], "block_out_channels", source, None, 1, 1024)
    if len(channels) > 6:
        raise InputError(source, f"block_out_channels may have at most 6 entries, got {len(channels)}")
    V.check_int(options["layers_per_block"], "layers_per_block", source, 1, 16)
    groups = V.check_int(options["norm_num_groups"], "norm_num_groups", source, 1, 1024)
    V.check_int(options["latent_channels"], "latent_channels", source, 1, 64)
    V.check_bool(options["deterministic"], "deterministic", source)
    if any(c % groups for c in channels):
        raise InputError(source, f"every block_out_channels entry must be divisible by norm_num_groups ({groups}), "
                                 f"got {list(channels)}")
    return options


def build_autoencoder(spec: dict[str, Any], image_size: tuple[int, int]):
    """An untrained ``AutoencoderKL`` of ``spec`` (see :data:`DEFAULTS`): one down block per entry of
    ``block_out_channels``, so latents are ``2 ** (len - 1)`` times smaller than images."""
    from diffusers import AutoencoderKL

    options = check_options(spec)
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
    if len(loader) == 0:  # else the loop below would wait forever for a batch
        raise InputError("training config vae", f"batch_size {options['batch_size']} needs "
                                                f"{options['batch_size'] // 2} pairs, "
                                                f"but the dataset has {len(dataset)}")
    steps = options["train_steps"]
    bar = tqdm(total=options["train_steps"], desc="training the VAE", disable=not progress)
    done = 0
    while done < steps:
        for batch in loader:
            images = torch.cat([batch["img_src"], batch["img_tgt"]]).to(device)
            posterior = vae.encode(images).latent_dist
            reconstruction = vae.decode(posterior.mode() if options["deterministic"] else posterior.sample()).sample
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
        if options["deterministic"]:  # the log-variance half of quant_conv's output channels: a constant
            latent = options["latent_channels"]
            vae.quant_conv.weight[latent:] = 0
            vae.quant_conv.bias[latent:] = FIXED_LOGVAR
        images = torch.cat([torch.cat([b["img_src"], b["img_tgt"]]) for b, _ in zip(loader, range(4))]).to(device)
        std = vae.encode(images).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae
