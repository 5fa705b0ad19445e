"""Before a training run writes anything: everything it needs is checked, so that a run that cannot start
leaves its folder exactly as it was.

:func:`plan_run` checks the recipe, the output folder, the dataset (its first pair), the batch split over
processes and accumulation, a resume checkpoint (every file, its state), the VAE and the model's sizes, and
returns a :class:`RunPlan`. :func:`start_writing` then makes the first writes: what a killed run left
half-written goes, an overwritten run's files go, and the recipe is recorded.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .. import checkpoint as ckpt
from ..errors import InputError
from ..io import atomic_folder, atomic_write_text, check_output_folder, path_kind, remove_stale_temporaries
from ..models.config import CFLDConfig
from .autoencoder import check_options as check_vae_options
from .autoencoder import train_autoencoder
from .checkpoints import CHECKPOINTS, TRAINER_STATE, check_checkpoint, find_checkpoint, remove_partial
from .data_identity import RECORD as DATA_RECORD
from .data_identity import check_resume, describe
from .datasets import build_dataset, check_items
from .evaluation import BEST_DIR, HISTORY, PeriodicEvaluation
from .latent_cache import build_latent_cache, cache_base, cacheable
from .step import adam_class

FINAL_MODEL, VAE_DIR = "model", "vae"


@dataclass
class RunPlan:
    """What :func:`plan_run` found: the run's sizes, its data and where it starts."""

    origin: str  # the recipe's name in messages
    model_config: CFLDConfig
    dataset: Dataset
    micro_batch: int  # pairs per process and forward pass
    steps_per_epoch: int  # optimizer steps
    batches_per_epoch: int  # micro-batches per process
    total_steps: int
    resume_from: Path | None
    resume_state: dict[str, Any] | None
    evaluation: PeriodicEvaluation | None
    vae: Any  # None while the recipe's own VAE is still to be trained
    data: dict[str, Any]  # what the dataset holds (.data_identity), recorded in OUTPUT/data.json
    cache_latents: bool = False  # the VAE's posteriors come from a latent cache
    data_note: str | None = None  # a line about the data to print when the run starts


def make_accelerator(config, output_dir: Path):
    """accelerate's Accelerator for the recipe's mixed precision, accumulation and DDP options
    (``gradient_as_bucket_view``), logging to TensorBoard when it is installed."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    c = config
    if c.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise InputError(getattr(c, "origin", "training config"),
                         "mixed_precision fp16 needs a CUDA GPU; use bf16 or no on this machine")
    log_with = None
    try:
        import tensorboard  # noqa: F401

        log_with = "tensorboard"
    except ImportError:
        pass
    accelerator = Accelerator(
        mixed_precision=c.mixed_precision, gradient_accumulation_steps=c.gradient_accumulation_steps,
        log_with=log_with, project_config=ProjectConfiguration(project_dir=str(output_dir),
                                                               logging_dir=str(output_dir / "logs")),
        # gradients as views of DDP's buckets: no second copy of the trainable gradients (as the original)
        kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=c.gradient_as_bucket_view)],
    )
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = c.allow_tf32
        torch.backends.cudnn.allow_tf32 = c.allow_tf32
    return accelerator


def resume_folder(resume, output_dir: Path) -> Path | None:
    """The checkpoint ``resume`` names: None (False), the newest in ``output_dir`` (True) or a folder."""
    if resume is False or resume is None:
        return None
    if resume is True:
        found = find_checkpoint(output_dir)
        if found is None:
            raise InputError(output_dir, "has no checkpoint to resume from (checkpoints/step-*)")
        return found
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise InputError(path, f"is not a training checkpoint (no {TRAINER_STATE})")
    return path


def check_output(output_dir: Path, resume, overwrite: bool) -> None:
    """Refuse an output folder that holds another run (unless resuming it or asked to overwrite it), or that
    cannot be written."""
    if path_kind(output_dir) not in (None, "folder"):
        raise InputError(output_dir, "is a file, not a folder for the run")
    existing = find_checkpoint(output_dir) or ((output_dir / FINAL_MODEL).exists() or None)
    if existing and not resume and not overwrite:
        raise InputError(output_dir, "already holds a training run; pass --resume to continue it or "
                                     "--overwrite to start again")
    check_output_folder(output_dir)


def ready_vae(config, output_dir: Path):
    """The frozen VAE when it exists already: Stable Diffusion's, or the one this run trained before (in
    ``output_dir/vae``); None when the config asks for a VAE that is still to be trained."""
    spec = config.vae
    if not isinstance(spec, dict):
        return ckpt.load_sd15_vae(spec)
    folder = output_dir / VAE_DIR
    if not (folder / "config.json").is_file():
        return None
    from diffusers import AutoencoderKL

    return ckpt.load_sd_component(AutoencoderKL, folder, "vae", {}).eval().requires_grad_(False)


def train_vae(config, accelerator, output_dir: Path, model_config: CFLDConfig, dataset: Dataset, progress: bool):
    """Train the VAE a config's mapping describes (on the main process), keep it in ``output_dir/vae`` so that
    resuming reuses it, and load it on every process."""
    if accelerator.is_main_process:
        vae = train_autoencoder(config.vae, dataset, model_config.image_size, seed=config.seed,
                                device=accelerator.device, progress=progress)
        with atomic_folder(output_dir / VAE_DIR, overwrite=True, what="the trained VAE",
                           kept="no checkpoint was written yet: free space and run again "
                                "(it trains the VAE again)") as tmp:
            vae.save_pretrained(tmp, safe_serialization=True)
    accelerator.wait_for_everyone()
    return ready_vae(config, output_dir)


def uses_latent_cache(config, dataset, origin: object) -> bool:
    """``cache_latents``: ``auto`` caches a dataset that reads photos from a prepared folder, where the cache can be
    written (or is there already); ``true`` refuses a dataset that cannot be cached, or a folder it cannot write."""
    if config.cache_latents is False:
        return False
    if cacheable(dataset):
        base = cache_base(dataset, config.latent_cache_dir)
        existing = next(p for p in (base, *base.parents) if p.exists())
        if not existing.is_dir():
            raise InputError(existing, "is a file where the latent cache's folder belongs: move it away, set "
                                       "latent_cache_dir to a folder, or cache_latents: false")
        if existing == base or os.access(existing, os.W_OK):
            return True
        if config.cache_latents is True:
            raise InputError(existing, "is not writable, so the latent cache cannot be written there: set "
                                       "latent_cache_dir to a writable folder, or cache_latents: false")
        return False  # auto: the VAE encodes at every step, as without a cache
    if config.cache_latents is True:
        raise InputError(origin, f"cache_latents needs a prepared dataset (a folder of photos with a manifest); "
                                 f"{config.data.get('kind')} data is not one: set cache_latents: auto or false")
    return False


def frozen_dtype(accelerator) -> torch.dtype | None:
    """The dtype frozen weights are kept in: the mixed-precision dtype (fp16/bf16) on a GPU; None (as loaded,
    fp32) elsewhere or without mixed precision."""
    if accelerator.device.type != "cuda":
        return None
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision)


def ready_latent_cache(config, accelerator, dataset, vae, photos: dict[str, str], progress: bool):
    """The latent cache of ``dataset`` for ``vae`` (ready on its device, in its dtype): every shard is checked
    against ``photos`` (``{name: SHA-256}``) and the VAE, and those missing or failing are encoded, shared out over
    the processes."""
    return build_latent_cache(dataset, vae, config.latent_cache_dir, photos=photos, rank=accelerator.process_index,
                              world=accelerator.num_processes, barrier=accelerator.wait_for_everyone,
                              progress=progress, report=accelerator.print)


def plan_run(config, accelerator, output_dir: Path, resume, overwrite: bool, new_data: bool = False,
             progress: bool = False) -> RunPlan:
    """Check everything a run of ``config`` (validated) needs, writing nothing. A resumed run must be on the data
    its checkpoint was trained on, unless ``new_data``."""
    c = config
    resume_from = resume_folder(resume, output_dir)
    check_output(output_dir, resume, overwrite)
    origin = str(getattr(c, "origin", "training config"))
    model_config = c.model_config(origin)
    dataset = build_dataset(c.data, model_config, "train", source=f"{origin} (data)")
    check_items(dataset, model_config, source=f"{origin} (data)")
    world, accumulation = accelerator.num_processes, c.gradient_accumulation_steps
    if c.batch_size % (world * accumulation):
        raise InputError(origin, f"batch_size {c.batch_size} is not divisible by {world} processes x "
                                 f"{accumulation} accumulation steps")
    steps_per_epoch = len(dataset) // c.batch_size
    if steps_per_epoch < 1:
        raise InputError(origin, f"the dataset has {len(dataset)} pairs, fewer than one batch of {c.batch_size}")
    vae_options = check_vae_options(c.vae, f"{origin} (vae)") if isinstance(c.vae, dict) else None
    if vae_options and not (output_dir / VAE_DIR / "config.json").is_file():
        vae_pairs = max(1, vae_options["batch_size"] // 2)
        if vae_pairs > len(dataset):
            raise InputError(origin, f"vae batch_size {vae_options['batch_size']} needs {vae_pairs} pairs, "
                                     f"but the dataset has {len(dataset)}")
    resume_state = check_checkpoint(resume_from, world, model_config) if resume_from else None
    data = describe(dataset, c.data, progress and accelerator.is_main_process)
    data_note = check_resume(resume_from, resume_state, data, output_dir, new_data) if resume_from else None
    evaluation = PeriodicEvaluation(c, model_config, output_dir, origin) if c.eval_every else None
    if evaluation is not None:
        evaluation.prepare(accelerator.is_main_process)
    adam_class(c.optimizer, origin)  # adam8bit: a GPU and bitsandbytes
    vae = ready_vae(c, output_dir)
    cache_latents = uses_latent_cache(c, dataset, origin)
    blocks = vae.config.block_out_channels if vae is not None else vae_options["block_out_channels"]
    factor = 2 ** (len(blocks) - 1)
    if any(size % factor for size in model_config.image_size):
        raise InputError(origin, f"the model's image_size {list(model_config.image_size)} is not a multiple of the "
                                 f"VAE's downscaling ({factor})")
    ckpt.check_runnable(model_config, tuple(size // factor for size in model_config.image_size), f"{origin} (model)")
    total_steps = steps_per_epoch * c.epochs if c.max_steps is None else min(c.max_steps, steps_per_epoch * c.epochs)
    return RunPlan(origin, model_config, dataset, c.batch_size // (world * accumulation), steps_per_epoch,
                   steps_per_epoch * accumulation, total_steps, resume_from, resume_state, evaluation, vae, data,
                   cache_latents, data_note)


def start_writing(config, accelerator, output_dir: Path, plan: RunPlan, overwrite: bool) -> None:
    """The first writes, once everything is checked: what a killed run left half-written goes, an overwritten
    run's files go, and the recipe and its data (``data.json``) are recorded."""
    resume_from = plan.resume_from
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output_dir)
        remove_partial(output_dir)
        for tmp in output_dir.glob(f".{VAE_DIR}.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)  # the name earlier versions gave the VAE being written
        if resume_from is None and overwrite:
            for name in (CHECKPOINTS, FINAL_MODEL, VAE_DIR, "logs", BEST_DIR):
                shutil.rmtree(output_dir / name, ignore_errors=True)
            (output_dir / HISTORY).unlink(missing_ok=True)
        atomic_write_text(output_dir / "config.json", config.to_json() + "\n", overwrite=True)
        atomic_write_text(output_dir / DATA_RECORD, json.dumps(plan.data) + "\n", overwrite=True)
    accelerator.wait_for_everyone()
    if plan.data_note:
        accelerator.print(plan.data_note)
