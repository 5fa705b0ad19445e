"""One CFLD training step, in pieces that can be called alone (paper Sec. 3.3 "Training"; the original's
``pose_transfer_train.py``). :class:`cfld.training.Trainer` is these pieces in a loop.

    models    = build_models(config, model_config)            # H_S, H_D, H_A, H_P, the UNet; what trains
    optimizer, schedule = build_optimizer(config, models, steps_per_epoch)
    loss, loss_rec, loss_mse = batch_loss(batch, module, vae, scheduler, draws=Draws(...), cache=None)
    loss.backward()
    optimizer_step(optimizer, schedule)

The loss of one batch of B pairs, as the original computes it:

1. The source and target images are encoded by the frozen VAE into 2B latents ``z_0 = E(x) * scaling_factor``
   (a posterior *sample*: ``mean + std * eps``), sources first.
2. Noise ``eps ~ N(0, I)`` and per-latent timesteps from the cubic schedule ``t = (1 - u^3) * T`` with
   ``u ~ U[0, 1)``, truncated to an integer and clamped to ``[0, T - 1]`` (more weight on large t, the early
   sampling stage); ``z_t`` by Eq. 1 (DDPM ``add_noise``).
3. H_S encodes the condition image (the source, mirrored half of the time by the dataset) once; its coarse
   prompt and HGA biases serve both halves. H_P gets the source pose for the first half (source -> source
   reconstruction, Eq. 5) and the target pose for the second (Eq. 3).
4. With probability eta = 0.2, independently per latent, the prompt becomes the learnable vector (only the
   prompt: the original trains with ``U_COND_DOWN/UP_BLOCK_GUIDANCE: False``).
5. The loss is the mean squared error of the predicted noise over all 2B latents, i.e. Eq. 6's
   ``L_mse + L_rec`` up to a factor 1/2 (the original averages the concatenated batch; Adam does not see the
   factor). Both halves are returned too, for the logs.

Random numbers come from the global stream in the original's order (posterior sample, noise, timestep u,
the Swin's drop path, the dropout draw), unless :class:`Draws` gives them: that is how the suite replays the
original's recorded draws (``tests/test_reference.py``, the ``train_tiny`` golden).

Optimisation: Adam on H_S, H_D, H_A, H_P, the learnable vector and the UNet's up-block cross-attention W_k, W_v
(``trainable: paper``); lr = 5e-7 x total batch size; a linear warmup from 0.1 x lr over 1,000 steps, then x0.1
at epoch 50 of 100. No gradient clipping (the original never clips).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from .. import checkpoint as ckpt
from ..errors import InputError
from ..model_folders import model_and_unet
from ..models.cfld import CFLDModel, Conditions, build_unet
from ..models.config import SCALES, CFLDConfig


def cubic_timesteps(batch: int, num_train_timesteps: int, device: torch.device | str = "cpu",
                    u: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's cubic timestep sampling: ``t = (1 - u^3) * T``, u ~ U[0, 1) (drawn unless given), as the
    original computes it (``long()`` truncation, clamped to ``[0, T - 1]``); mean t is 3T/4 instead of T/2."""
    if u is None:
        u = torch.rand((batch,), device=device)
    return ((1 - u**3) * num_train_timesteps).long().clamp(0, num_train_timesteps - 1)


def lr_factor(step: int, warmup_steps: int, warmup_rate: float, decay_steps: list[int], decay_rate: float) -> float:
    """Multiplier of the base lr after ``step`` optimizer steps: linear warmup from ``warmup_rate`` to 1 over
    ``warmup_steps`` (the original's ``(rate + (1 - rate) * (step + 1) / warmup)``), then ``decay_rate`` per
    decay boundary passed."""
    if step < warmup_steps:
        return warmup_rate + (1.0 - warmup_rate) * (step + 1) / warmup_steps
    return decay_rate ** bisect_right(decay_steps, step)


# -- the models and what of them trains ---------------------------------------------------------------------------


def set_trainable(model: CFLDModel, unet: nn.Module, mode: str) -> None:
    """``paper``: all of the condition model, and the UNet's up-block cross-attention W_k, W_v only (Table 1);
    ``unet``: the whole UNet too."""
    model.requires_grad_(True)
    CFLDModel.prepare_unet(unet)
    if mode == "unet":
        unet.requires_grad_(True)


def build_models(config, model_config: CFLDConfig) -> tuple[CFLDModel, nn.Module]:
    """The condition model and UNet a run of ``config`` (a :class:`TrainConfig`) starts from, in train mode, with
    what trains marked: ``init_checkpoint``'s weights, else new ones (after ``accelerate.utils.set_seed(seed)``
    in :class:`Trainer`, so a benchmark can rebuild the untrained model), Stable Diffusion's UNet and the
    Microsoft Swin weights when the config names them."""
    c = config
    if c.init_checkpoint:
        model, unet = model_and_unet(c.init_checkpoint, model_config)
        if model.config.to_dict() != model_config.to_dict():
            raise InputError(c.init_checkpoint,
                             "was written for another model configuration than the training config's")
    else:
        ckpt.build_models(model_config, "training config (model)", materialize=False)  # refuses absurd sizes
        model = CFLDModel.from_config(model_config)
        unet = build_unet(model_config) if c.unet is None else ckpt.load_sd15_unet(c.unet, model_config)
        if c.swin:
            model.source_encoder.load_microsoft_pretrained(c.swin)
    set_trainable(model, unet, c.trainable)
    if c.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if c.condition_checkpointing:
        model.source_encoder.swin.set_grad_checkpointing(True)
    return model.train(), unet.train()


# -- memory levers: frozen weights in 16 bits, 8-bit Adam ----------------------------------------------------------


def keep_frozen_in(dtype: torch.dtype, *modules: nn.Module) -> int:
    """Store the frozen floating-point parameters of ``modules`` in ``dtype`` (fp16/bf16, the mixed-precision
    dtype: autocast computes in it anyway), the trainable ones staying fp32. ``state_dict()`` still gives the
    fp32 originals, kept on the host, so every checkpoint and saved model holds the weights exactly as loaded.
    Returns the bytes saved where the modules live."""
    saved = 0
    for module in modules:
        originals: dict[str, torch.Tensor] = {}
        for name, parameter in module.named_parameters():
            if parameter.requires_grad or not parameter.is_floating_point() or parameter.dtype == dtype:
                continue
            originals[name] = parameter.data.detach().to("cpu", copy=parameter.device.type != "cpu")
            parameter.data = parameter.data.to(dtype)
            saved += parameter.numel() * (originals[name].element_size() - parameter.element_size())
        if originals:
            module.register_state_dict_post_hook(_originals_hook(originals))
    return saved


def _originals_hook(originals: dict[str, torch.Tensor]):
    def hook(module, state_dict, prefix, local_metadata):
        for name, value in originals.items():
            if prefix + name in state_dict:
                state_dict[prefix + name] = value
    return hook


OPTIMIZERS = ("adam", "adam8bit")


def adam_class(name: str, origin: object = "training config"):
    """``torch.optim.Adam``, or bitsandbytes' ``Adam8bit`` (moments in 8 bits, blockwise: 2 bytes a
    parameter instead of 8), which needs a CUDA GPU and ``pip install bitsandbytes``."""
    if name == "adam":
        return torch.optim.Adam
    if not torch.cuda.is_available():
        raise InputError(origin, "optimizer adam8bit (bitsandbytes) runs on CUDA GPUs only; use optimizer: adam here")
    try:
        import bitsandbytes
    except ImportError:
        raise InputError(origin, "optimizer adam8bit needs bitsandbytes: pip install bitsandbytes "
                                 "(or use optimizer: adam)") from None
    return bitsandbytes.optim.Adam8bit


def trainable_parameters(model: nn.Module, unet: nn.Module) -> list[nn.Parameter]:
    """What the optimizer updates, in its order: the condition model's, then the UNet's."""
    return [p for m in (model, unet) for p in m.parameters() if p.requires_grad]


# -- the optimizer and its schedule ------------------------------------------------------------------------------


def base_lr(config) -> float:
    """The recipe's lr: ``lr`` times the total batch size when ``scale_lr`` (the paper's 5e-7 x 224)."""
    return config.lr * config.batch_size if config.scale_lr else config.lr


def build_optimizer(config, model: nn.Module, unet: nn.Module, steps_per_epoch: int
                    ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam (``optimizer``: :func:`adam_class`) over :func:`trainable_parameters` and its lr schedule
    (:func:`lr_factor`: warmup, then decay at the ``decay_epochs`` boundaries, counted in optimizer steps of
    ``steps_per_epoch``)."""
    c = config
    adam = adam_class(c.optimizer, getattr(c, "origin", "training config"))
    optimizer = adam(trainable_parameters(model, unet), lr=base_lr(c), betas=tuple(c.adam_betas), eps=c.adam_eps)
    decay_steps = [e * steps_per_epoch for e in c.decay_epochs]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, c.warmup_steps, c.warmup_rate, decay_steps, c.decay_rate))
    return optimizer, schedule


def optimizer_step(optimizer: torch.optim.Optimizer, schedule: Any, sync: bool = True) -> None:
    """Adam's update from the gradients ``backward`` left, which are then cleared; the schedule moves on once the
    gradients are complete (``sync``: False on the micro-batches of gradient accumulation before the last)."""
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if sync:
        schedule.step()


# -- the loss of one batch ----------------------------------------------------------------------------------------


@dataclass
class Draws:
    """The random numbers of one step, where they are given instead of drawn (each None: drawn from the global
    stream at its turn). Shapes: 2B latents (sources first)."""

    posterior: torch.Tensor | None = None  # N(0, I) of the VAE posterior sample, the latents' shape
    noise: torch.Tensor | None = None  # the noise added to the latents
    timesteps: torch.Tensor | None = None  # integer timesteps, (2B,)
    drop: torch.Tensor | None = None  # True where the prompt becomes the learnable vector, (2B,) or (2B, 1, 1)


class CFLDTrainingModule(nn.Module):
    """The condition model and the UNet as one module, so data parallelism wraps (and syncs) both at once.

    ``checkpoint_conditions``: the condition path (H_D, H_A, H_P; H_S checkpoints its own blocks, see
    :func:`build_models`) keeps only its inputs for backward and runs again there, as the UNet's blocks do under
    gradient checkpointing: the same numbers (random draws are replayed), less memory per pair, a little more time.
    """

    def __init__(self, model: CFLDModel, unet: nn.Module, checkpoint_conditions: bool = False):
        super().__init__()
        self.model = model
        self.unet = unet
        self.checkpoint_conditions = checkpoint_conditions

    def _run(self, function, *args):
        if self.checkpoint_conditions and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)
        return function(*args)

    def forward(self, img_cond: torch.Tensor, pose: torch.Tensor, noisy_latents: torch.Tensor,
                timesteps: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Noise prediction for ``noisy_latents`` (R x B of them, R = 2: reconstruction, then transfer) from
        B condition images and R x B poses; the prompt is dropped to the learnable vector with probability eta
        (where ``drop`` says, when given)."""
        features = self.model.source_encoder(img_cond)
        prompt = self._run(self.model.prompt_decoder, features[-1])
        biases = self._run(self.model.appearance_encoder, features[:SCALES])
        repeats = noisy_latents.shape[0] // img_cond.shape[0]
        conditions = Conditions(
            prompt=prompt.repeat(repeats, 1, 1),
            pose=self._run(self.model.pose_adapter, pose),
            query_biases={k: v.repeat(repeats, 1, 1) for k, v in biases.items()},
        )
        conditions = self.model.drop_conditions(conditions, drop=drop)
        return self.unet(noisy_latents, timesteps, **conditions.unet_kwargs()).sample


def encode_latents(batch: dict[str, Any], vae: nn.Module, device: torch.device | str, cache=None,
                   posterior_eps: torch.Tensor | None = None) -> torch.Tensor:
    """The 2B latents ``z_0`` of a batch's sources then targets: a sample of the frozen VAE's posterior, times
    the scaling factor. With a :class:`~cfld.training.latent_cache.LatentCache`, the posterior's mean and std
    come from it (by ``name_src``/``name_tgt``) and ``mean + std * eps`` is drawn here, with ``eps`` drawn as
    ``posterior.sample()`` draws it (the global stream, the VAE's dtype). ``posterior_eps``: eps given."""
    dtype = next(vae.parameters()).dtype
    with torch.no_grad():
        if cache is None:
            images = torch.cat([batch["img_src"], batch["img_tgt"]]).to(device)
            posterior = vae.encode(images.to(dtype)).latent_dist
            if posterior_eps is None:
                sample = posterior.sample()
            else:
                sample = posterior.mean + posterior.std * posterior_eps.to(posterior.mean)
        else:
            names = list(batch["name_src"]) + list(batch["name_tgt"])
            mean, std = cache.posterior(names, device, dtype)
            eps = (torch.randn(mean.shape, device=device, dtype=dtype) if posterior_eps is None
                   else posterior_eps.to(mean))
            # in the layout of the VAE's own sample: the noise drawn next (randn_like) follows it
            sample = (mean + std * eps).contiguous(memory_format=cache.layout(vae, len(names)))
        return sample.float() * vae.config.scaling_factor


def batch_loss(batch: dict[str, torch.Tensor], module: nn.Module, vae: nn.Module, scheduler, *, cubic: bool = True,
               draws: Draws | None = None, device: torch.device | str | None = None, cache=None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, loss_rec, loss_mse)`` of a batch (``img_src``, ``img_tgt``, ``img_cond``, ``pose_img_src``,
    ``pose_img_tgt``): the mean squared error of the noise predicted by ``module`` (a
    :class:`CFLDTrainingModule`, possibly wrapped for data parallelism) over all 2B latents, and over the
    reconstruction and the transfer halves. ``cubic``: cubic timesteps, else uniform ones. ``cache``: a latent
    cache the posteriors come from (:func:`encode_latents`)."""
    draws = draws or Draws()
    if device is None:
        device = next(vae.parameters()).device
    latents = encode_latents(batch, vae, device, cache, draws.posterior)
    noise = torch.randn_like(latents) if draws.noise is None else draws.noise.to(latents)
    steps_total = scheduler.config.num_train_timesteps
    if draws.timesteps is not None:
        timesteps = draws.timesteps.to(device=device, dtype=torch.long)
    elif cubic:
        timesteps = cubic_timesteps(latents.shape[0], steps_total, device)
    else:
        timesteps = torch.randint(0, steps_total, (latents.shape[0],), device=device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pose = torch.cat([batch["pose_img_src"], batch["pose_img_tgt"]]).to(device)
    prediction = module(batch["img_cond"].to(device), pose, noisy, timesteps, drop=draws.drop)
    per_latent = (prediction.float() - noise).pow(2).mean(dim=(1, 2, 3))
    half = batch["img_cond"].shape[0]
    return per_latent.mean(), per_latent[:half].mean(), per_latent[half:].mean()
