"""CFLDPipeline: source photo + target pose in, re-posed person out (paper Sec. 3.3, "Sampling").

    pipe = CFLDPipeline.from_pretrained("path/to/cfld-folder")
    images = pipe("person.jpg", ["pose_a.json", "pose_b.json"], num_inference_steps=50).images

Sampling follows the original implementation step for step: the source is resized (bicubic, antialiased)
to the encoder's size in [-1, 1]; each target pose is drawn at the pose size; z_T ~ N(0, I) at the
training resolution's latent size (64x64 for 512x512); every step runs the UNet on the guidance
branches of :mod:`cfld.guidance` and steps the scheduler; z_0 is decoded by the VAE, mapped to [0, 1],
resized (bicubic, antialiased) to the requested output size and quantised by truncation.

Random numbers: with ``generator=torch.Generator().manual_seed(s)`` the initial noise and every
scheduler step draw from that generator, in that order, which is the original's global-RNG stream after
``torch.manual_seed(s)``; so a seed reproduces the original's samples.

This module is sampling only. The paper's appearance editing (Sec. 4.6: style transfer by mask, style
interpolation) lives in :mod:`cfld.editing`: :class:`cfld.editing.CFLDEditPipeline`, a CFLDPipeline that shares
these components and runs this module's denoising loop; :meth:`CFLDPipeline.style_transfer` and
:meth:`CFLDPipeline.interpolate` forward to it.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
from PIL import Image
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from . import __version__, checkpoint, guidance, presets
from .errors import InputError, one_line
from .images import MAX_OUTPUT_SIDE, ImageInput, load_image, resize_output, to_model_input, to_pil
from .io import atomic_folder, path_kind, read_json_object
from .models.cfld import CFLDModel, Conditions
from .models.config import SCALES, CFLDConfig
from .pose import Pose, load_pose, pose_image
from .schedulers import make_scheduler, scheduler_key

if TYPE_CHECKING:
    from .editing import KeepRegion

PoseInput = Union[str, os.PathLike, Pose, torch.Tensor]

DEFAULT_OUTPUT_SIZE = (256, 176)  # DeepFashion's benchmark size (Table 2); 512x352 is the other
MODEL_INDEX = "model_index.json"
MISSING_MODEL_HELP = (
    "is not a CFLD model: expected a folder written by CFLDPipeline.save_pretrained / `cfld convert` "
    "(model_index.json, cfld/, vae/, scheduler/) or the released original checkpoints "
    "(pytorch_model.bin + pytorch_model_1.bin, linked from the README of github.com/YanzuoLu/CFLD); "
    "put them in {path}/ (see README, 'Weights')"
)


@dataclass
class CFLDPipelineOutput:
    """``images``: one PIL image per (source, pose) pair, source-major; ``latents``: z_0 on request."""

    images: list[Image.Image]
    latents: torch.Tensor | None = None


@dataclass
class SourceEncoding:
    """What the pipeline keeps of a source image: the coarse prompt and the fine-grained HGA biases.

    Encode once with :meth:`CFLDPipeline.encode_source`, reuse for any number of poses; interpolate two
    of them (:meth:`lerp`) for the paper's style interpolation (Sec. 4.6, :mod:`cfld.editing`).
    """

    prompt: torch.Tensor  # (B, Q, C)
    query_biases: dict[int, torch.Tensor]  # layer -> (B, tokens, channels)

    def __len__(self) -> int:
        return self.prompt.shape[0]

    def select(self, index: torch.Tensor) -> "SourceEncoding":
        return SourceEncoding(self.prompt[index], {k: v[index] for k, v in self.query_biases.items()})

    def to(self, device=None, dtype=None) -> "SourceEncoding":
        return SourceEncoding(self.prompt.to(device, dtype), {k: v.to(device, dtype) for k, v in self.query_biases.items()})

    def lerp(self, other: "SourceEncoding", weight: float) -> "SourceEncoding":
        return SourceEncoding(
            torch.lerp(self.prompt, other.prompt, weight),
            {k: torch.lerp(v, other.query_biases[k], weight) for k, v in self.query_biases.items()},
        )


class CFLDPipeline:
    """The CFLD condition model, the UNet (with HGA processors), the VAE and a noise scheduler."""

    def __init__(self, model: CFLDModel, unet, vae, scheduler, guidance_type: str = "uc_down_full"):
        self.model = model.eval()
        self.unet = CFLDModel.prepare_unet(unet).eval()
        self.vae = vae.eval()
        self.vae.enable_slicing()  # decode one image at a time: same result, far less peak memory
        self.scheduler = make_scheduler(scheduler)
        self.guidance_type = guidance_type
        self.config = model.config
        self.name_or_path = "the model"  # where from_pretrained found it: named by errors about its output

    @property
    def components(self) -> dict[str, Any]:
        """What ``__init__`` takes, as this pipeline holds it: ``type(pipe)(**pipe.components)`` (e.g.
        :class:`cfld.editing.CFLDEditPipeline`) shares the networks and scheduler rather than copying them."""
        return {"model": self.model, "unet": self.unet, "vae": self.vae, "scheduler": self.scheduler,
                "guidance_type": self.guidance_type}

    def check_parts(self, source: object) -> None:
        """Refuse parts that do not fit together (e.g. a VAE whose latents the UNet cannot take)."""
        latent, unet = self.vae.config.latent_channels, self.unet.config
        if not (latent == unet.in_channels == unet.out_channels):
            raise InputError(source, f"holds a VAE with {latent} latent channels but a UNet taking {unet.in_channels} "
                                     f"and giving {unet.out_channels}; they do not belong together")
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if any(s % factor for s in self.config.image_size):
            raise InputError(source, f"has an image size {self.config.image_size} that its VAE does not divide into "
                                     f"latents (a multiple of {factor} is needed)")
        checkpoint.check_runnable(self.config, self.latent_size, source)

    # -- loading and saving ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        base: str | os.PathLike | None = None,
        config: CFLDConfig | str | os.PathLike | None = None,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> "CFLDPipeline":
        """Load a pipeline folder written by :meth:`save_pretrained` (or a Hub repository holding one), an
        original checkpoint folder (``pytorch_model.bin`` + ``pytorch_model_1.bin``, see :meth:`from_original`),
        or a bare checkpoint folder from ``cfld convert`` (``config.json`` + ``model.safetensors`` +
        ``unet.safetensors``). The last two take the VAE and noise schedule from ``base`` (Stable Diffusion
        1.5: hub id, diffusers folder or single file; default the hub id).
        """
        from .devices import resolve_device

        device = resolve_device(device) if device is not None else None
        folder = Path(path)
        if path_kind(folder) is None and _looks_like_hub_id(str(path)):
            folder = _download(str(path))
        if path_kind(folder) != "folder":
            raise InputError(path, MISSING_MODEL_HELP.format(path=path))
        if checkpoint.is_original_checkpoint(folder):
            pipe = cls.from_original(folder, base=base, config=config)
        elif (folder / MODEL_INDEX).is_file():
            index = _read_json(folder / MODEL_INDEX)
            scheduler_file = folder / "scheduler" / "scheduler_config.json"
            name = _index_entry(index, "scheduler", "ddpm", folder)
            try:
                scheduler_key(name)
            except InputError as error:
                raise InputError(folder / MODEL_INDEX, f"{error.source} {error.problem}") from None
            scheduler = make_scheduler(name, _read_json(scheduler_file), source=scheduler_file)
            guidance_type = _index_entry(index, "guidance_type", "uc_down_full", folder)
            if guidance_type not in guidance.GUIDANCE_TYPES:
                raise InputError(folder / MODEL_INDEX, f"guidance_type must be one of {', '.join(guidance.GUIDANCE_TYPES)}, "
                                                       f"got {guidance_type!r}")
            model, unet = checkpoint.load_checkpoint(folder / "cfld")
            vae = checkpoint.load_sd_component(AutoencoderKL, folder, "vae", {})
            pipe = cls(model, unet, vae, scheduler, guidance_type=guidance_type)
        elif (folder / checkpoint.CONFIG).is_file() and (folder / checkpoint.MODEL).is_file():
            # a bare checkpoint folder (`cfld convert` output): VAE and schedule from Stable Diffusion
            model, unet = checkpoint.load_checkpoint(folder)
            pipe = cls(model, unet, *_base_components(base))
        else:
            raise InputError(folder, MISSING_MODEL_HELP.format(path=folder))
        pipe.check_parts(folder)
        pipe.name_or_path = str(path)
        return pipe.to(device, torch_dtype)

    @classmethod
    def from_original(
        cls,
        folder: str | os.PathLike,
        *,
        base: str | os.PathLike | None = None,
        config: CFLDConfig | str | os.PathLike | None = None,
    ) -> "CFLDPipeline":
        """The released CFLD checkpoints plus Stable Diffusion 1.5's VAE and DDPM schedule.

        ``base``: where SD 1.5 lives (hub id, diffusers folder, or single file; default the hub id); its
        ``scheduler/`` and ``unet/config.json`` are used when present. ``config``: a :class:`CFLDConfig`,
        our ``config.json``, or the original ``config.yaml`` (default: ``folder/config.yaml`` if present,
        else the paper's ``sd15`` preset).
        """
        folder = Path(folder)
        base = base if base is not None else checkpoint.SD15_HUB_ID
        base_dir = Path(base) if Path(base).is_dir() else None
        unet_file = base_dir / "unet" / "config.json" if base_dir else None
        unet_config = checkpoint.read_unet_config(unet_file) if unet_file and unet_file.is_file() else None
        config = checkpoint.resolve_config(config, folder, unet_config)
        model, unet = checkpoint.load_original(folder, config)
        return cls(model, unet, *_base_components(base))

    def save_pretrained(self, path: str | os.PathLike, overwrite: bool = False,
                        extra_files: dict[str, str] | None = None) -> Path:
        """Write a self-contained folder (configs + safetensors) that :meth:`from_pretrained` loads offline.

        Written into a temporary folder beside ``path`` and renamed into place, so an interrupted save
        never leaves a half-written model; an existing ``path`` is replaced only with ``overwrite``.
        ``extra_files`` (name -> text) are written into the folder with it (e.g. what a model was selected by).
        """
        target = Path(path)
        with atomic_folder(target, overwrite=overwrite) as tmp:
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
            checkpoint.save_checkpoint(tmp / "cfld", self.model, self.unet)
            self.vae.save_pretrained(tmp / "vae", safe_serialization=True)
            self.scheduler.save_pretrained(tmp / "scheduler")
            index = {"_class_name": type(self).__name__, "_cfld_version": __version__,
                     "guidance_type": self.guidance_type, "scheduler": _scheduler_name(self.scheduler)}
            (tmp / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return target

    # -- devices and dtypes --------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "CFLDPipeline":
        """Move every network; ``dtype`` (fp16/bf16) applies to the UNet, VAE and condition model alike."""
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        if kwargs:
            from diffusers.utils import logging as diffusers_logging

            # diffusers warns about casting models that declare no float32-only modules; ours declare none
            level = diffusers_logging.get_verbosity()
            diffusers_logging.set_verbosity_error()
            try:
                for module in (self.model, self.unet, self.vae):
                    module.to(**kwargs)
            finally:
                diffusers_logging.set_verbosity(level)
        return self

    # -- conditions ------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_source(self, sources: ImageInput | Sequence[ImageInput]) -> SourceEncoding:
        """Coarse prompt (PRD) and HGA biases of one or more source photos, computed once.

        A 4-D tensor is taken as already preprocessed: ``(B, 3, H, W)`` in [-1, 1] at the encoder's size.
        """
        if isinstance(sources, torch.Tensor) and sources.ndim == 4:
            expected = (3, *self.config.cond_size)
            if tuple(sources.shape[1:]) != expected:
                raise InputError("source tensor", f"has shape {tuple(sources.shape)}, expected (B, {', '.join(map(str, expected))})")
            pixels = sources
        else:
            sources = sources if isinstance(sources, (list, tuple)) else [sources]
            if not sources:
                raise InputError("sources", "no source image given")
            pixels = torch.stack([to_model_input(load_image(s), self.config.cond_size) for s in sources])
        pixels = pixels.to(self.device, self.model_dtype)
        features = self.model.source_encoder(pixels)
        return SourceEncoding(
            prompt=self.model.prompt_decoder(features[-1]),
            query_biases=self.model.appearance_encoder(features[:SCALES]),
        )

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def pose_images(self, poses: PoseInput | Sequence[PoseInput], frame: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, 21, H, W) pose images at the model's pose size from anything :func:`cfld.pose.load_pose`
        reads, or ready-made ``(21, H, W)`` tensors."""
        poses = poses if isinstance(poses, (list, tuple)) else [poses]
        if not len(poses):
            raise InputError("poses", "no target pose given")
        images = []
        for p in poses:
            if isinstance(p, torch.Tensor) and p.ndim == 4:
                images.extend(self.pose_images(list(p), frame))
            elif isinstance(p, torch.Tensor):
                expected = (self.config.pose_channels, *self.config.pose_size)
                if tuple(p.shape) != expected:
                    raise InputError("pose tensor", f"has shape {tuple(p.shape)}, expected {expected}")
                images.append(p.float())
            else:
                images.append(pose_image(load_pose(p, frame=frame), self.config.pose_size))
        return torch.stack(images)

    # -- sampling ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        source: ImageInput | Sequence[ImageInput] | SourceEncoding,
        pose: PoseInput | Sequence[PoseInput],
        *,
        num_inference_steps: int | None = None,
        guidance_pose: float = 2.0,
        guidance_appearance: float = 2.0,
        scheduler: str | Any | None = None,
        guidance_interval: tuple[float, float] | None = None,
        fast: bool = False,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_size: tuple[int, int] | None = DEFAULT_OUTPUT_SIZE,
        output_type: str = "pil",
        return_latents: bool = False,
        batch_size: int = 8,
        fuse_branches: bool = True,
        paired: bool = False,
        keep: "KeepRegion | None" = None,
        pose_frame: tuple[int, int] | None = None,
        progress: bool = True,
        callback=None,
    ) -> CFLDPipelineOutput:
        """Generate every source in every target pose (``len(sources) * len(poses)`` images, source-major),
        or with ``paired=True`` source i in pose i.

        Args:
            source: photo(s), a preprocessed ``(B, 3, H, W)`` tensor in [-1, 1], or a
                :class:`SourceEncoding` from :meth:`encode_source`.
            pose: target pose(s): our JSON, OpenPose JSON, annotation row/file, :class:`cfld.pose.Pose`,
                or a ready (21, H, W) pose image.
            num_inference_steps: denoising steps (default 50, the paper's; with ``fast``, the fast preset's).
            guidance_pose, guidance_appearance: w_pose and w_app of Eq. 7 (both 2.0 in the paper).
            scheduler: a name of :data:`cfld.schedulers.SCHEDULERS` or a diffusers scheduler; default the
                pipeline's own (DDPM), with ``fast`` the fast preset's.
            guidance_interval: ``(start, end)``, fractions of the trajectory: guidance runs on the steps
                ``i`` of ``n`` with ``start <= i / n < end``; the other steps run only the fully conditioned
                branch (as if w = 1), one UNet branch instead of two or three. Default: every step (the
                paper), with ``fast`` the fast preset's interval.
            fast: take the steps, scheduler and guidance interval not given from :data:`cfld.presets.FAST`,
                the measured speed/quality choice (see the README's table); the paper's sampling otherwise.
            generator: a ``torch.Generator`` for reproducible results (initial noise, then every step).
            latents: z_T to start from instead of drawing it, ``(N, 4, h, w)``.
            output_size: (H, W) of the returned images; ``None`` keeps the generation size.
            output_type: ``"pil"``, ``"np"`` (uint8 arrays), ``"pt"`` (float tensors in [0, 1]) or
                ``"latent"`` (z_0, not decoded).
            batch_size: (source, pose) pairs per UNet batch; each runs 2 or 3 guidance branches.
            fuse_branches: run two UNet branches instead of three when ``guidance_pose ==
                guidance_appearance`` (same result up to float rounding, ~1.5x faster).
            pose_frame: (H, W) frame of OpenPose files, which do not record it.
            keep: a :class:`cfld.editing.KeepRegion`: outside its mask every step's latent is replaced by the
                reference latent noised to that step (paper Sec. 4.6, style transfer; see :mod:`cfld.editing`).
            callback: called as ``callback(step, timestep, latents)`` after every step.
        """
        if output_type not in ("pil", "np", "pt", "latent"):
            raise InputError("output_type", f"must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        # scheduler None (not fast): the pipeline's own scheduler (DDPM unless set otherwise)
        num_inference_steps, scheduler, guidance_interval = presets.resolve(fast, num_inference_steps, scheduler,
                                                                            guidance_interval, default_scheduler=None)
        scheduler = make_scheduler(scheduler, dict(self.scheduler.config)) if scheduler is not None else self.scheduler
        check_sampling(num_inference_steps, guidance_pose, guidance_appearance, output_size, batch_size,
                       scheduler.config.num_train_timesteps)
        check_schedule_runs(scheduler, num_inference_steps)
        encoding = source if isinstance(source, SourceEncoding) else self.encode_source(source)
        encoding = encoding.to(self.device, self.dtype)
        pose_maps_input = self.pose_images(pose, pose_frame).to(self.device, self.model_dtype)
        n_src, n_pose = len(encoding), pose_maps_input.shape[0]
        if paired:
            if n_src != n_pose:
                raise InputError("paired", f"needs as many sources as poses, got {n_src} and {n_pose}")
            source_index = pose_index = torch.arange(n_src)
        else:
            source_index = torch.arange(n_src).repeat_interleave(n_pose)
            pose_index = torch.arange(n_pose).repeat(n_src)
        pairs = len(source_index)

        branches, scales = guidance.plan(self.guidance_type, guidance_pose, guidance_appearance, fuse_branches)
        latent_shape = (pairs, self.unet.config.in_channels, *self.latent_size)
        if latents is None:
            latents = torch.randn(latent_shape, generator=generator, dtype=torch.float32)
        elif tuple(latents.shape) != latent_shape:
            raise InputError("latents", f"have shape {tuple(latents.shape)}, expected {latent_shape}")
        # the schedule first: a sigma-space scheduler (Euler) scales z_T by the largest sigma of *these* steps
        scheduler.set_timesteps(num_inference_steps)
        latents = latents.to(self.device, torch.float32) * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        guided = presets.guided_steps(len(timesteps), guidance_interval)  # PNDM runs more steps than asked
        # stochastic schedulers draw their noise from our generator; deterministic ones take none
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        chunks, unguided = [], []
        for start in range(0, pairs, batch_size):
            # the pose adapter runs on each chunk's own poses, like the UNet: a pair's result then depends on the
            # batch it shares only through float rounding, and not at all with batch_size=1
            index = slice(start, start + batch_size)
            src = encoding.select(source_index[index])
            pose_maps = self.model.pose_adapter(pose_maps_input[pose_index[index]])
            conditions = Conditions(src.prompt, pose_maps, src.query_biases)
            chunks.append(self.model.guidance_batch(conditions, branches))
            if not all(guided):  # outside the guidance interval only the fully conditioned branch (the last) runs
                unguided.append(self.model.guidance_batch(conditions, branches[-1:]))
        bar = tqdm(total=len(timesteps), desc="CFLD sampling", disable=not progress, leave=False)
        for step, t in enumerate(timesteps):
            eps = []
            step_chunks, step_scales = (chunks, scales) if guided[step] else (unguided, [])
            for start, conditions in zip(range(0, pairs, batch_size), step_chunks):
                z = latents[start : start + batch_size]
                eps.append(self._guided_eps(z, t, conditions, step_scales, scheduler))
            latents = scheduler.step(torch.cat(eps), t, latents, **step_kwargs).prev_sample
            if keep is not None:
                following = timesteps[step + 1] if step + 1 < len(timesteps) else None
                latents = keep.blend(latents, scheduler, following)
            if callback is not None:
                callback(step, t, latents)
            bar.update()
        bar.close()

        if not torch.isfinite(latents).all():
            raise InputError(self.name_or_path, "produced NaN or infinite latents: its weights are damaged, or the "
                                                "precision overflowed (try --dtype fp32 or bf16)")
        if output_type == "latent":
            return CFLDPipelineOutput(latents, latents if return_latents else None)
        images = self.decode_latents(latents)
        if not torch.isfinite(images).all():
            raise InputError(self.name_or_path, "its VAE decoded NaN or infinite pixels: its weights are damaged, or "
                                                "the precision overflowed (try --dtype fp32 or bf16)")
        if output_size is not None:
            images = resize_output(images, tuple(output_size))
        if output_type == "pil":
            result: Any = to_pil(images)
        elif output_type == "np":
            result = list((images.float() * 255.0).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        else:
            result = images
        return CFLDPipelineOutput(result, latents if return_latents else None)

    # -- appearance editing (paper Sec. 4.6): in cfld.editing; these forward there on this pipeline's components --

    def style_transfer(self, *args: Any, **kwargs: Any) -> CFLDPipelineOutput:
        """Style transfer by mask: :meth:`cfld.editing.CFLDEditPipeline.style_transfer` (same arguments)."""
        from .editing import CFLDEditPipeline

        return CFLDEditPipeline.from_pipe(self).style_transfer(*args, **kwargs)

    def interpolate(self, *args: Any, **kwargs: Any) -> CFLDPipelineOutput:
        """Style interpolation: :meth:`cfld.editing.CFLDEditPipeline.interpolate` (same arguments)."""
        from .editing import CFLDEditPipeline

        return CFLDEditPipeline.from_pipe(self).interpolate(*args, **kwargs)

    def _guided_eps(self, latents, t, conditions: Conditions, scales, scheduler) -> torch.Tensor:
        """One UNet call over the stacked guidance branches, combined by cumulative guidance."""
        branches = len(scales) + 1
        z = scheduler.scale_model_input(torch.cat([latents] * branches), t)
        eps = self.unet(z.to(self.dtype), t, **conditions.unet_kwargs()).sample
        return guidance.combine(eps.float(), scales)

    @property
    def latent_size(self) -> tuple[int, int]:
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return (self.config.image_size[0] // factor, self.config.image_size[1] // factor)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """z_0 -> images in [0, 1]: ``clamp(vae.decode(z_0 / scaling_factor) * 0.5 + 0.5, 0, 1)``."""
        vae_dtype = next(self.vae.parameters()).dtype
        decoded = self.vae.decode(latents.to(vae_dtype) / self.vae.config.scaling_factor).sample
        return (decoded.float() * 0.5 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> scaled posterior mean latents (the paper's z_0 = E(x))."""
        vae_dtype = next(self.vae.parameters()).dtype
        return self.vae.encode(images.to(self.device, vae_dtype)).latent_dist.mean * self.vae.config.scaling_factor


# -- helpers ------------------------------------------------------------------------------------------------


def __getattr__(name: str):
    """``KeepRegion`` and ``latent_mask`` moved to :mod:`cfld.editing`; ``from cfld.pipeline import ...`` still works."""
    if name in ("KeepRegion", "latent_mask"):
        from . import editing

        return getattr(editing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _looks_like_hub_id(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).suffix


def _read_json(path: Path) -> dict[str, Any]:
    if path_kind(path) is None:
        raise InputError(path, "is missing")
    return read_json_object(path, "part of a CFLD model folder")


def _index_entry(index: dict[str, Any], key: str, default: str, folder: Path) -> str:
    value = index.get(key, default)
    if not isinstance(value, str):
        raise InputError(folder / MODEL_INDEX, f"{key} must be a name, got {value!r}")
    return value


def _download(repo_id: str) -> Path:
    """A Hub repository's snapshot (downloaded once into huggingface_hub's cache), or one InputError saying why not."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as error:  # noqa: BLE001 - offline, unknown repository, gated, network errors ...
        raise InputError(repo_id, f"is not a local folder and cannot be downloaded from the Hugging Face Hub "
                                  f"({type(error).__name__}: {one_line(error, 200)})") from None


def check_schedule_runs(scheduler, steps: int) -> None:
    """Step a copy of ``scheduler`` through all ``steps`` on a one-number latent (no model, no randomness of
    the caller's): a scheduler that cannot take that many steps (PNDM below 4, the DDPM-style spacings above
    999) is one InputError now rather than an IndexError at the end of the sampling."""
    trial = type(scheduler).from_config(scheduler.config)
    kwargs = {"generator": torch.Generator().manual_seed(0)} if "generator" in inspect.signature(trial.step).parameters else {}
    try:
        trial.set_timesteps(steps)
        train_steps = trial.config.num_train_timesteps
        if len(trial.timesteps) and not 0 <= int(trial.timesteps.max()) < train_steps:
            raise ValueError(f"its spacing reaches timestep {int(trial.timesteps.max())} of {train_steps}")
        sample = torch.zeros(1, 1, 1, 1)
        for t in trial.timesteps:
            sample = trial.step(trial.scale_model_input(sample, t), t, sample, **kwargs).prev_sample
    except Exception as error:  # noqa: BLE001 - each scheduler fails in its own way
        name = _scheduler_name(scheduler, default=type(scheduler).__name__)
        raise InputError(f"scheduler {name!r}", f"cannot take {steps} steps ({type(error).__name__}: "
                                                f"{one_line(error, 120)}); choose another number of steps") from None


def check_sampling(steps: Any, guidance_pose: Any, guidance_appearance: Any, output_size: Any, batch_size: Any,
                   train_steps: int) -> None:
    """Refuse sampling options that would fail deep inside the sampler or silently give garbage."""
    import math

    from .validation import check_int

    check_int(steps, "num_inference_steps", "sampling", 1, train_steps)
    check_int(batch_size, "batch_size", "sampling", 1)
    for name, value in (("guidance_pose", guidance_pose), ("guidance_appearance", guidance_appearance)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("sampling", f"{name} must be a finite number, got {value!r}")
    if output_size is not None:
        from .validation import check_ints

        check_ints(output_size, "output_size", "sampling", 2, 1, MAX_OUTPUT_SIDE)


def _base_components(base: str | os.PathLike | None):
    """Stable Diffusion's VAE and a DDPM scheduler (with ``base``'s own ``scheduler/`` config if it has one)."""
    base = base if base is not None else checkpoint.SD15_HUB_ID
    vae = checkpoint.load_sd15_vae(base)
    scheduler_file = Path(base) / "scheduler" / "scheduler_config.json"
    scheduler_config = _read_json(scheduler_file) if scheduler_file.is_file() else None
    return vae, make_scheduler("ddpm", scheduler_config, source=scheduler_file)


def _scheduler_name(scheduler, default: str = "ddpm") -> str:
    """Our name of a diffusers scheduler (see :data:`cfld.schedulers.SCHEDULERS`), ``default`` for others."""
    from .schedulers import SCHEDULERS

    config = getattr(scheduler, "config", {})
    for name, (class_name, extra) in SCHEDULERS.items():
        if type(scheduler).__name__ == class_name and all(config.get(k) == v for k, v in extra.items()):
            return name
    return default
