"""CFLDPipeline: source photo + target pose in, re-posed person out (paper Sec. 3.3, "Sampling"). A diffusers
``DiffusionPipeline``: ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub``, ``to``, CPU offload, callbacks,
progress bars and output types work as on any diffusers pipeline.

    pipe = CFLDPipeline.from_pretrained("path/or/hub-id", torch_dtype=torch.float16).to("cuda")
    images = pipe("person.jpg", ["pose_a.json", "pose_b.json"], num_inference_steps=50).images

Sampling follows the original implementation step for step: the source photo is framed as the training photos
are (:mod:`cfld.image_processor`; ``frame=False`` stretches it instead), resized (bicubic, antialiased) to the
encoder's size in [-1, 1]; each target pose is drawn at the pose size; z_T ~ N(0, I) at the training resolution's
latent size (64x64 for 512x512); every step runs the UNet on the guidance branches of :mod:`cfld.guidance` and
steps the scheduler; z_0 is decoded by the VAE, mapped to [0, 1], resized (bicubic, antialiased) to the requested
output size and, as PIL images, quantised by truncation.

Random numbers: with ``generator=torch.Generator().manual_seed(s)`` the initial noise and every scheduler step
draw from that generator, in that order, which is the original's global-RNG stream after
``torch.manual_seed(s)``; so a seed reproduces the original's samples. A list of generators gives each image its own.

Where things live: the conditions (H_S, H_D, H_A, H_P) in :class:`cfld.models.CFLDModel`, the HGA bias inside the
UNet in :mod:`cfld.models.hybrid_granularity_attention`, the guidance branches in :mod:`cfld.guidance`, the older
model folders in :mod:`cfld.model_folders` (loaded by :mod:`cfld.loaders`), appearance editing (Sec. 4.6) in
:mod:`cfld.editing`, whose ``CFLDEditPipeline`` shares these components (``CFLDEditPipeline.from_pipe(pipe)``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines import pipeline_loading_utils
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from . import guidance, presets
from .errors import InputError, one_line
from .image_processor import PersonImageProcessor, check_output_type
from .images import MAX_OUTPUT_SIDE, ImageInput
from .loaders import CFLDLoadersMixin
from .models.cfld import CFLDModel, Conditions
from .models.hybrid_granularity_attention import HGAAttnProcessor
from .pose import DEEPFASHION_SIZE, Pose
from .schedulers import make_scheduler, scheduler_name
from .validation import check_int, check_ints

PoseInput = str | os.PathLike | Pose | torch.Tensor
DEFAULT_OUTPUT_SIZE = DEEPFASHION_SIZE
DROPS_HGA = "would replace the HGA attention processors and drop the appearance bias of Eq. 4"

# diffusers saves and loads each component through the library model_index.json names. Registering ours (as
# diffusers registers transformers') makes that entry ["cfld", "CFLDModel"] and lets diffusers' Hub download take
# the model/ folder like any of its own.
pipeline_loading_utils.LOADABLE_CLASSES.setdefault("cfld", {"CFLDModel": ["save_pretrained", "from_pretrained"]})
pipeline_loading_utils.ALL_IMPORTABLE_CLASSES.update(pipeline_loading_utils.LOADABLE_CLASSES["cfld"])


@dataclass
class CFLDPipelineOutput(BaseOutput):
    """``images``: one per (source, pose) pair, source-major, as ``output_type`` asks (``"latent"``: z_0);
    ``latents``: z_0 with ``return_latents``; ``framed``: each framed source photo's
    :class:`cfld.framing.Framed` (its crop box, to put a result back into the photo), None where nothing was framed."""

    images: Any
    latents: torch.Tensor | None = None
    framed: list | None = None


@dataclass
class SourceEncoding:
    """What the pipeline keeps of a source image: the coarse prompt and the fine-grained HGA biases.

    Encode once with :meth:`CFLDPipeline.encode_source`, reuse for any number of poses; interpolate two of them
    (:meth:`lerp`) for the paper's style interpolation (Sec. 4.6, :mod:`cfld.editing`).
    """

    prompt: torch.Tensor  # (B, Q, C)
    query_biases: dict[int, torch.Tensor]  # layer -> (B, tokens, channels)
    framed: list | None = None  # the sources' Framed records, when they were framed

    def __len__(self) -> int:
        return self.prompt.shape[0]

    def select(self, index: torch.Tensor) -> SourceEncoding:
        framed = None if self.framed is None else [self.framed[i] for i in index.tolist()]
        return SourceEncoding(self.prompt[index], {k: v[index] for k, v in self.query_biases.items()}, framed)

    def to(self, device=None, dtype=None) -> SourceEncoding:
        biases = {k: v.to(device, dtype) for k, v in self.query_biases.items()}
        return SourceEncoding(self.prompt.to(device, dtype), biases, self.framed)

    def lerp(self, other: SourceEncoding, weight: float) -> SourceEncoding:
        return SourceEncoding(
            torch.lerp(self.prompt, other.prompt, weight),
            {k: torch.lerp(v, other.query_biases[k], weight) for k, v in self.query_biases.items()},
        )


class CFLDPipeline(CFLDLoadersMixin, DiffusionPipeline):
    """The CFLD condition model, the UNet (with HGA processors), the VAE and a noise scheduler (see the module);
    loading and saving every model folder come from :class:`cfld.loaders.CFLDLoadersMixin`."""

    model_cpu_offload_seq = "model->unet->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, model: CFLDModel, unet: UNet2DConditionModel, vae: AutoencoderKL, scheduler: SchedulerMixin,
                 guidance_type: str = "uc_down_full"):
        super().__init__()
        if guidance_type not in guidance.GUIDANCE_TYPES:
            raise InputError("guidance_type",
                             f"must be one of {', '.join(guidance.GUIDANCE_TYPES)}, got {guidance_type!r}")
        CFLDModel.prepare_unet(unet)  # the HGA processors (Eq. 4) on a stock UNet
        vae.enable_slicing()  # decode one image at a time: the same result, far less peak memory
        self.register_modules(model=model.eval(), unet=unet.eval(), vae=vae.eval(), scheduler=make_scheduler(scheduler))
        self.register_to_config(guidance_type=guidance_type)
        self.image_processor = PersonImageProcessor()
        self.provenance: str | None = None  # how the weights were made, for the model card

    @property
    def guidance_type(self) -> str:
        return self.config.guidance_type

    def to(self, *args: Any, **kwargs: Any) -> CFLDPipeline:
        """diffusers' ``to`` (``pipe.to("cuda", torch.float16)``), without the notice diffusers 0.42 gives on every
        cast, that some modules should be kept in float32: CFLD's models keep none."""
        with _without_fp32_notice():
            return super().to(*args, **kwargs)

    # -- what would drop the HGA bias ------------------------------------------------------------------------------

    def set_use_memory_efficient_attention_xformers(self, valid: bool, attention_op: Callable | None = None) -> None:
        if valid:  # HGAAttnProcessor runs torch's scaled_dot_product_attention: memory-efficient kernels already
            raise InputError("xformers", DROPS_HGA + "; they already run PyTorch's memory-efficient attention")

    def set_attention_slice(self, slice_size: int | None) -> None:
        if slice_size is not None:
            raise InputError("attention slicing", DROPS_HGA + "; to save memory use enable_model_cpu_offload() or a "
                                                              "smaller batch_size")

    # -- conditions --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_source(self, sources: ImageInput | Sequence[ImageInput], frame: bool = True,
                      size: tuple[int, int] | None = None) -> SourceEncoding:
        """Coarse prompt (PRD) and HGA biases of one or more source photos, computed once. Photos are framed for a
        model of ``size`` (default: its generation size) unless ``frame`` is False; a 4-D tensor is taken as
        already preprocessed: ``(B, 3, H, W)`` in [-1, 1] at the encoder's size."""
        framed = None
        if frame and not (isinstance(sources, torch.Tensor) and sources.ndim == 4):
            sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
            with self.image_processor:  # one detector for all of them
                framed = [self.image_processor.frame(s, size or self.model.config.image_size) for s in sources]
            sources = [f.image for f in framed]
        pixels = self.image_processor.preprocess(sources, self.model.config.cond_size)
        conditions = self.model(source=pixels.to(self._execution_device, self.model.dtype))
        return SourceEncoding(conditions.prompt, conditions.query_biases, framed)

    def pose_images(self, poses: PoseInput | Sequence[PoseInput], frame: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, 21, H, W) pose images at the model's pose size (:meth:`PersonImageProcessor.pose_images`)."""
        return self.image_processor.pose_images(poses, self.model.config.pose_size, frame)

    # -- sampling ----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, source, pose, *, num_inference_steps: int | None = None, guidance_pose: float = 2.0,
                 guidance_appearance: float = 2.0, scheduler: str | Any | None = None,
                 guidance_interval: tuple[float, float] | None = None, fast: bool = False,
                 generator: torch.Generator | list[torch.Generator] | None = None, latents: torch.Tensor | None = None,
                 output_size: tuple[int, int] | None = DEFAULT_OUTPUT_SIZE, output_type: str = "pil",
                 return_dict: bool = True, return_latents: bool = False, batch_size: int = 8,
                 fuse_branches: bool = True, paired: bool = False, frame: bool = True,
                 pose_frame: tuple[int, int] | None = None, progress: bool = True,
                 callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",)) -> CFLDPipelineOutput | tuple:
        """Generate every source in every target pose (``len(sources) * len(poses)`` images, source-major), or with
        ``paired=True`` source i in pose i. The arguments are documented in docs/python.md; in short:
        ``source`` photo(s) (framed for ``output_size`` unless ``frame=False``), a preprocessed tensor or a
        :class:`SourceEncoding`; ``pose`` anything :func:`cfld.pose.load_pose` reads or ``(21, H, W)`` pose images;
        w_pose, w_app of Eq. 7; ``fast``: :data:`cfld.presets.FAST`'s steps, scheduler and interval where not given;
        ``latents``: z_T; ``fuse_branches``: two UNet branches instead of three when w_pose == w_app (the same up to
        rounding); ``callback_on_step_end(pipe, step, timestep, {"latents": ...})`` may return new latents."""
        check_output_type(output_type)
        steps, scheduler, interval = self.sampling_setup(num_inference_steps, scheduler, guidance_interval, fast)
        check_sampling(steps, guidance_pose, guidance_appearance, output_size, batch_size,
                       scheduler.config.num_train_timesteps)
        check_schedule_runs(scheduler, steps)
        check_hga(self.unet)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if unknown := set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs):
            raise InputError("callback_on_step_end_tensor_inputs",
                             f"may name {self._callback_tensor_inputs}, got {sorted(unknown)}")
        device, dtype = self._execution_device, self.unet.dtype  # once: diffusers reads a dtype parameter by parameter
        encoding = source if isinstance(source, SourceEncoding) else self.encode_source(source, frame, output_size)
        encoding = encoding.to(device, dtype)
        pose_maps = self.pose_images(pose, pose_frame).to(device, self.model.dtype)
        source_index, pose_index = pair_indices(len(encoding), pose_maps.shape[0], paired)
        pairs = len(source_index)
        if isinstance(generator, list) and len(generator) != pairs:
            raise InputError("generator", f"is a list of {len(generator)} generators for {pairs} images; give one "
                                          "per image")
        latent_shape = (pairs, self.unet.config.in_channels, *self.latent_size)
        if latents is None:
            latents = randn_tensor(latent_shape, generator=generator, device=torch.device("cpu"), dtype=torch.float32)
        elif tuple(latents.shape) != latent_shape:
            raise InputError("latents", f"have shape {tuple(latents.shape)}, expected {latent_shape}")
        # the schedule first: a sigma-space scheduler (Euler) scales z_T by the largest sigma of *these* steps
        scheduler.set_timesteps(steps)
        latents = latents.to(device, torch.float32) * scheduler.init_noise_sigma
        guided = presets.guided_steps(len(scheduler.timesteps), interval)  # PNDM runs more steps than asked
        branches, scales = guidance.plan(self.guidance_type, guidance_pose, guidance_appearance, fuse_branches)
        chunks, unguided = self._condition_chunks(encoding, pose_maps, source_index, pose_index, branches, batch_size,
                                                  all(guided))
        kwargs = step_kwargs(scheduler, generator)
        bar = self.progress_bar(total=len(scheduler.timesteps)) if progress else _NoBar()
        for step, t in enumerate(scheduler.timesteps):
            step_chunks, step_scales = (chunks, scales) if guided[step] else (unguided, [])
            eps = [self._guided_eps(latents[start : start + batch_size], t, conditions, step_scales, scheduler, dtype)
                   for start, conditions in zip(range(0, pairs, batch_size), step_chunks)]
            latents = scheduler.step(torch.cat(eps), t, latents, **kwargs).prev_sample
            if callback_on_step_end is not None:
                tensors = {"latents": latents}
                wanted = {k: tensors[k] for k in callback_on_step_end_tensor_inputs}
                outputs = callback_on_step_end(self, step, t, wanted)
                latents = outputs.pop("latents", latents)
            bar.update()
        bar.close()
        images = self._output_images(latents, output_type, output_size)
        self.maybe_free_model_hooks()
        framed = None if encoding.framed is None else [encoding.framed[i] for i in source_index.tolist()]
        output = CFLDPipelineOutput(images, latents if return_latents else None, framed)
        return output if return_dict else output.to_tuple()

    def _condition_chunks(self, encoding: SourceEncoding, pose_maps: torch.Tensor, source_index: torch.Tensor,
                          pose_index: torch.Tensor, branches, batch_size: int,
                          always_guided: bool) -> tuple[list[Conditions], list[Conditions]]:
        """The stacked guidance branches of each chunk of ``batch_size`` pairs, and (unless ``always_guided``) its
        fully conditioned branch alone, for the steps outside the guidance interval."""
        chunks, unguided = [], []
        for start in range(0, len(source_index), batch_size):
            # the pose adapter runs on each chunk's own poses, like the UNet: a pair's result then depends on the
            # batch it shares only through float rounding, and not at all with batch_size=1
            index = slice(start, start + batch_size)
            src, posed = encoding.select(source_index[index]), self.model(pose=pose_maps[pose_index[index]])
            conditions = Conditions(src.prompt, posed.pose, src.query_biases)  # posed.prompt: the unconditional one
            chunks.append(self.model.guidance_batch(conditions, branches, posed.prompt))
            if not always_guided:  # the fully conditioned branch is the last
                unguided.append(self.model.guidance_batch(conditions, branches[-1:], posed.prompt))
        return chunks, unguided

    def _output_images(self, latents: torch.Tensor, output_type: str, output_size: tuple[int, int] | None):
        """z_0 as ``output_type`` asks (decoded unless "latent"), refusing non-finite latents or pixels."""
        if not torch.isfinite(latents).all():
            raise InputError(self.name_or_path or "the model", "produced NaN or infinite latents: its weights are "
                                                               "damaged, or the precision overflowed (try fp32 or "
                                                               "bf16)")
        if output_type == "latent":
            return latents
        images = self.decode_latents(latents)
        if not torch.isfinite(images).all():
            raise InputError(self.name_or_path or "the model", "its VAE decoded NaN or infinite pixels: its weights "
                                                               "are damaged, or the precision overflowed (try fp32 or "
                                                               "bf16)")
        return self.image_processor.postprocess(images, output_type, output_size)

    def sampling_setup(self, steps: int | None, scheduler: str | Any | None, interval, fast: bool):
        """``(steps, scheduler, guidance interval)`` of a call: what it gives, else :data:`cfld.presets.FAST`'s
        (``fast``) or the paper's with this pipeline's own scheduler."""
        steps, scheduler, interval = presets.resolve(fast, steps, scheduler, interval, default_scheduler=None)
        if scheduler is not None:
            return steps, make_scheduler(scheduler, dict(self.scheduler.config)), interval
        return steps, self.scheduler, interval

    def _guided_eps(self, latents, t, conditions: Conditions, scales, scheduler, dtype) -> torch.Tensor:
        """One UNet call over the stacked guidance branches, combined by cumulative guidance."""
        z = scheduler.scale_model_input(torch.cat([latents] * (len(scales) + 1)), t)
        eps = self.unet(z.to(dtype), t, **conditions.unet_kwargs()).sample
        return guidance.combine(eps.float(), scales)

    @property
    def latent_size(self) -> tuple[int, int]:
        factor, size = 2 ** (len(self.vae.config.block_out_channels) - 1), self.model.config.image_size
        return size[0] // factor, size[1] // factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """z_0 -> images in [0, 1]: ``clamp(vae.decode(z_0 / scaling_factor) * 0.5 + 0.5, 0, 1)``."""
        decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return (decoded.float() * 0.5 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> scaled posterior mean latents (the paper's z_0 = E(x))."""
        latents = self.vae.encode(images.to(self._execution_device, self.vae.dtype)).latent_dist.mean
        return latents * self.vae.config.scaling_factor


def pair_indices(sources: int, poses: int, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Which source and which pose each output image takes: every source in every pose (source-major), or with
    ``paired`` source i in pose i."""
    if paired and sources != poses:
        raise InputError("paired", f"needs as many sources as poses, got {sources} and {poses}")
    if paired:
        return torch.arange(sources), torch.arange(poses)
    return torch.arange(sources).repeat_interleave(poses), torch.arange(poses).repeat(sources)


def step_kwargs(scheduler, generator) -> dict[str, Any]:
    """Stochastic schedulers draw their noise from our generator; deterministic ones take none."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


# -- checks ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _without_fp32_notice():
    class Notice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "should be kept in float32" not in record.getMessage()

    logger, notice = logging.getLogger("diffusers.models.modeling_utils"), Notice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


class _NoBar:
    def update(self) -> None: ...

    def close(self) -> None: ...


def check_hga(unet) -> None:
    """Refuse to sample with a UNet whose attention processors something replaced (``set_attn_processor``,
    ``fuse_qkv_projections`` ...): it would silently drop the HGA bias of Eq. 4."""
    if not all(isinstance(p, HGAAttnProcessor) for p in unet.attn_processors.values()):
        raise InputError("pipe.unet", "has attention processors other than CFLD's HGA ones (set_attn_processor or "
                                      "fuse_qkv_projections replaced them), which drop the appearance bias of Eq. 4; "
                                      "CFLDModel.prepare_unet(pipe.unet) puts them back")


def check_schedule_runs(scheduler, steps: int) -> None:
    """Step a copy of ``scheduler`` through all ``steps`` on a one-number latent (no model, no randomness of
    the caller's): a scheduler that cannot take that many steps (PNDM below 4, the DDPM-style spacings above
    999) is one InputError now rather than an IndexError at the end of the sampling."""
    trial = type(scheduler).from_config(scheduler.config)
    kwargs = step_kwargs(trial, torch.Generator().manual_seed(0))
    try:
        trial.set_timesteps(steps)
        train_steps = trial.config.num_train_timesteps
        if len(trial.timesteps) and not 0 <= int(trial.timesteps.max()) < train_steps:
            raise ValueError(f"its spacing reaches timestep {int(trial.timesteps.max())} of {train_steps}")
        sample = torch.zeros(1, 1, 1, 1)
        for t in trial.timesteps:
            sample = trial.step(trial.scale_model_input(sample, t), t, sample, **kwargs).prev_sample
    except Exception as error:  # noqa: BLE001 - each scheduler fails in its own way
        name = scheduler_name(scheduler, default=type(scheduler).__name__)
        raise InputError(f"scheduler {name!r}", f"cannot take {steps} steps ({type(error).__name__}: "
                                                f"{one_line(error, 120)}); choose another number of steps") from None


def check_sampling(steps: Any, guidance_pose: Any, guidance_appearance: Any, output_size: Any, batch_size: Any,
                   train_steps: int) -> None:
    """Refuse sampling options that would fail deep inside the sampler or silently give garbage."""
    check_int(steps, "num_inference_steps", "sampling", 1, train_steps)
    check_int(batch_size, "batch_size", "sampling", 1)
    for name, value in (("guidance_pose", guidance_pose), ("guidance_appearance", guidance_appearance)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("sampling", f"{name} must be a finite number, got {value!r}")
    if output_size is not None:
        check_ints(output_size, "output_size", "sampling", 2, 1, MAX_OUTPUT_SIDE)
