"""The CFLD training loop on accelerate (paper Sec. 3.3 "Training" and 4.1; the original's ``pose_transfer_train.py``).

One step, as the original does it:

1. The source and target images of a batch of B pairs are encoded by the frozen VAE into 2B latents
   ``z_0 = E(x) * scaling_factor`` (a posterior *sample*), sources first.
2. Noise ``eps ~ N(0, I)`` and per-latent timesteps from the cubic schedule ``t = (1 - u^3) * T`` with
   ``u ~ U[0, 1)``, truncated to an integer and clamped to ``[0, T - 1]`` (more weight on large t, the
   early sampling stage); ``z_t`` by Eq. 1.
3. H_S encodes the condition image (the source, mirrored half of the time by the dataset) once; its
   coarse prompt and HGA biases serve both halves. H_P gets the source pose for the first half (source
   -> source reconstruction, Eq. 5) and the target pose for the second (Eq. 3).
4. With probability eta = 0.2, independently per latent, the prompt becomes the learnable vector (only
   the prompt: the original trains with ``U_COND_DOWN/UP_BLOCK_GUIDANCE: False``).
5. The loss is the mean squared error of the predicted noise over all 2B latents, i.e. Eq. 6's
   ``L_mse + L_rec`` up to a factor 1/2 (the original averages the concatenated batch; Adam does not see
   the factor). Both halves are logged separately.

Optimisation: Adam on H_S, H_D, H_A, H_P, the learnable vector and the UNet's up-block cross-attention
W_k, W_v (``trainable: paper``); lr = 5e-7 x total batch size; a linear warmup from 0.1 x lr over 1,000
steps, then x0.1 at epoch 50 of 100. Steps here are optimizer steps (the original steps its scheduler
once per micro-batch, which is the same without gradient accumulation). Mixed precision (fp16/bf16),
gradient accumulation and multi-GPU / multi-node data parallelism come from accelerate (``accelerate
launch -m cfld train ...``); the UNet uses gradient checkpointing, as the original.

Reproducibility and resuming: each epoch's order of pairs is a permutation drawn from ``(seed, epoch)``
and split across processes, so a run is a function of its config; a checkpoint holds the weights (our
safetensors format), Adam's moments, the scheduler, every process's random generators and the position
in the epoch, so ``--resume`` continues with exactly the batches and random numbers it would have had.
A non-finite loss stops every process before the optimizer step, leaving the last checkpoint untouched.

Starting: the config, the output folder, the dataset (its first pair), a resume checkpoint (every file, its
state) and the initial weights are all checked, and the models built, before the run writes anything, so a
run that cannot start leaves its folder exactly as it was; then what a killed run left half-written is removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import checkpoint as ckpt
from .. import validation as V
from ..errors import CFLDError, InputError, one_line
from ..io import (atomic_folder, atomic_write_text, check_output_folder, path_kind, read_json_object,
                  remove_stale_temporaries, usual_permissions)
from ..models.cfld import CFLDModel, Conditions, build_unet
from ..models.config import SCALES, CFLDConfig
from ..schedulers import SD15_SCHEDULER_CONFIG, make_scheduler
from ..state_dict import check_finite, check_keys
from .autoencoder import check_options as check_vae_options
from .config import TrainConfig
from .datasets import build_dataset, check_items  # noqa: F401 - build_dataset: part of this module's API
from .evaluation import BEST_DIR, HISTORY, PeriodicEvaluation, check_state as check_evaluation_state

ITEM_KEYS = ("img_src", "img_tgt", "img_cond", "pose_img_src", "pose_img_tgt")
CHECKPOINTS, FINAL_MODEL, VAE_DIR = "checkpoints", "model", "vae"
OPTIMIZER, TRAINER_STATE = "optimizer.safetensors", "trainer_state.json"


class TrainingError(CFLDError):
    """Training cannot go on (e.g. the loss became NaN); the message says what was kept."""


@dataclass
class StepResult:
    """What a callback sees after each optimizer step."""

    step: int
    epoch: int
    loss: float
    loss_mse: float
    loss_rec: float
    lr: float


# -- the pieces of the recipe ------------------------------------------------------------------------------------


def cubic_timesteps(batch: int, num_train_timesteps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The paper's cubic timestep sampling: ``t = (1 - u^3) * T``, u ~ U[0, 1), as the original computes it
    (``long()`` truncation, clamped to ``[0, T - 1]``); mean t is 3T/4 instead of T/2."""
    u = torch.rand((batch,), device=device)
    return ((1 - u**3) * num_train_timesteps).long().clamp(0, num_train_timesteps - 1)


def lr_factor(step: int, warmup_steps: int, warmup_rate: float, decay_steps: list[int], decay_rate: float) -> float:
    """Multiplier of the base lr after ``step`` optimizer steps: linear warmup from ``warmup_rate`` to 1 over
    ``warmup_steps`` (the original's ``(rate + (1 - rate) * (step + 1) / warmup)``), then ``decay_rate`` per
    decay boundary passed."""
    if step < warmup_steps:
        return warmup_rate + (1.0 - warmup_rate) * (step + 1) / warmup_steps
    return decay_rate ** bisect_right(decay_steps, step)


def set_trainable(model: CFLDModel, unet: nn.Module, mode: str) -> None:
    """``paper``: all of the condition model, and the UNet's up-block cross-attention W_k, W_v only (Table 1);
    ``unet``: the whole UNet too."""
    model.requires_grad_(True)
    CFLDModel.prepare_unet(unet)
    if mode == "unet":
        unet.requires_grad_(True)


class CFLDTrainingModule(nn.Module):
    """The condition model and the UNet as one module, so data parallelism wraps (and syncs) both at once."""

    def __init__(self, model: CFLDModel, unet: nn.Module):
        super().__init__()
        self.model = model
        self.unet = unet

    def forward(self, img_cond: torch.Tensor, pose: torch.Tensor, noisy_latents: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """Noise prediction for ``noisy_latents`` (R x B of them, R = 2: reconstruction, then transfer) from
        B condition images and R x B poses; the prompt is dropped to the learnable vector with probability eta."""
        features = self.model.source_encoder(img_cond)
        prompt = self.model.prompt_decoder(features[-1])
        biases = self.model.appearance_encoder(features[:SCALES])
        repeats = noisy_latents.shape[0] // img_cond.shape[0]
        conditions = Conditions(
            prompt=prompt.repeat(repeats, 1, 1),
            pose=self.model.pose_adapter(pose),
            query_biases={k: v.repeat(repeats, 1, 1) for k, v in biases.items()},
        )
        conditions = self.model.drop_conditions(conditions)
        return self.unet(noisy_latents, timesteps, **conditions.unet_kwargs()).sample


def epoch_batches(length: int, seed: int, epoch: int, batch: int, rank: int, world: int, batches: int) -> list[list[int]]:
    """This process's micro-batches of ``epoch``: a permutation of the dataset drawn from ``(seed, epoch)``,
    cut into global batches of ``batch * world`` pairs (the last partial one dropped), process ``rank``
    taking its slice of each."""
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    step = batch * world
    return [order[b * step + rank * batch : b * step + (rank + 1) * batch] for b in range(batches)]


# -- random generators, optimizer and scheduler state in safetensors + JSON -----------------------------------------


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    meta = {"numpy": json.dumps([kind, int(pos), int(has_gauss), float(gauss)]), "python": json.dumps(random.getstate())}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = json.loads(meta["numpy"])
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(state), gauss))


def optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors = {f"{index}.{name}": value.contiguous() for index, entry in state["state"].items() for name, value in entry.items()
               if isinstance(value, torch.Tensor)}
    return tensors, state["param_groups"]


def optimizer_from_files(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def find_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints`` (incomplete ones are never named step-*)."""
    folder = output_dir / CHECKPOINTS
    found = sorted(folder.glob("step-*")) if folder.is_dir() else []
    found = [p for p in found if (p / TRAINER_STATE).is_file()]
    return found[-1] if found else None


# -- the trainer -----------------------------------------------------------------------------------------------------


class Trainer:
    """Runs one :class:`TrainConfig` into ``output_dir``:

    ``output_dir/checkpoints/step-NNNNNNN/`` (our checkpoint + optimizer, scheduler, RNG and position),
    ``output_dir/model/`` (a :class:`cfld.CFLDPipeline` folder at the end), ``output_dir/vae/`` (a VAE the
    recipe trained), ``output_dir/config.json`` (the recipe) and ``output_dir/logs/`` (TensorBoard).

    ``resume``: False, True (the newest checkpoint in ``output_dir``) or a checkpoint folder.
    ``callback(result)`` runs after every optimizer step on every process.
    """

    def __init__(self, config: TrainConfig, output_dir: str | os.PathLike, *, resume: bool | str | os.PathLike = False,
                 overwrite: bool = False, progress: bool = True):
        self.config = config
        self.output_dir = Path(output_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.progress = progress
        self.last_checkpoint: Path | None = None
        self.evaluation: PeriodicEvaluation | None = None

    # -- set-up ----------------------------------------------------------------------------------------------

    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        c = self.config
        if c.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise InputError(getattr(c, "origin", "training config"), "mixed_precision fp16 needs a CUDA GPU; use bf16 or no on this machine")
        log_with = None
        try:
            import tensorboard  # noqa: F401

            log_with = "tensorboard"
        except ImportError:
            pass
        accelerator = Accelerator(
            mixed_precision=c.mixed_precision, gradient_accumulation_steps=c.gradient_accumulation_steps,
            log_with=log_with, project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                                   logging_dir=str(self.output_dir / "logs")),
        )
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = c.allow_tf32
            torch.backends.cudnn.allow_tf32 = c.allow_tf32
        return accelerator

    def _resume_from(self) -> Path | None:
        if self.resume is False or self.resume is None:
            return None
        if self.resume is True:
            found = find_checkpoint(self.output_dir)
            if found is None:
                raise InputError(self.output_dir, "has no checkpoint to resume from (checkpoints/step-*)")
            return found
        path = Path(self.resume)
        if not (path / TRAINER_STATE).is_file():
            raise InputError(path, f"is not a training checkpoint (no {TRAINER_STATE})")
        return path

    def _check_output(self) -> None:
        """Refuse, before anything is written, an output folder that holds another run (unless resuming it or
        asked to overwrite it), or that cannot be written."""
        if path_kind(self.output_dir) not in (None, "folder"):
            raise InputError(self.output_dir, "is a file, not a folder for the run")
        existing = find_checkpoint(self.output_dir) or ((self.output_dir / FINAL_MODEL).exists() or None)
        if existing and not self.resume and not self.overwrite:
            raise InputError(self.output_dir, "already holds a training run; pass --resume to continue it or "
                                              "--overwrite to start again")
        check_output_folder(self.output_dir)

    def _start_writing(self, accelerator, resume_from: Path | None) -> None:
        """The first writes, once everything is checked: what a killed run left half-written goes, an
        overwritten run's files go, and the recipe is recorded."""
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.output_dir)
            for tmp in (self.output_dir / CHECKPOINTS).glob(".step-*.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)  # checkpoints being written when the last run was killed
            for tmp in self.output_dir.glob(f".{VAE_DIR}.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)  # the name earlier versions gave the VAE being written
            if resume_from is None and self.overwrite:
                for name in (CHECKPOINTS, FINAL_MODEL, VAE_DIR, "logs", BEST_DIR):
                    shutil.rmtree(self.output_dir / name, ignore_errors=True)
                (self.output_dir / HISTORY).unlink(missing_ok=True)
            atomic_write_text(self.output_dir / "config.json", self.config.to_json() + "\n", overwrite=True)
        accelerator.wait_for_everyone()

    def _ready_vae(self):
        """The frozen VAE when it exists already: Stable Diffusion's, or the one this run trained before (in
        ``output_dir/vae``); None when the config asks for a VAE that is still to be trained."""
        spec = self.config.vae
        if not isinstance(spec, dict):
            return ckpt.load_sd15_vae(spec)
        folder = self.output_dir / VAE_DIR
        if not (folder / "config.json").is_file():
            return None
        from diffusers import AutoencoderKL

        return ckpt.load_sd_component(AutoencoderKL, folder, "vae", {}).eval().requires_grad_(False)

    def _train_vae(self, accelerator, model_config: CFLDConfig, dataset: Dataset):
        """Train the VAE a config's mapping describes (on the main process), keep it in ``output_dir/vae`` so
        that resuming reuses it, and load it on every process."""
        if accelerator.is_main_process:
            from .autoencoder import train_autoencoder

            vae = train_autoencoder(self.config.vae, dataset, model_config.image_size, seed=self.config.seed,
                                    device=accelerator.device, progress=self.progress)
            with atomic_folder(self.output_dir / VAE_DIR, overwrite=True) as tmp:
                vae.save_pretrained(tmp, safe_serialization=True)
        accelerator.wait_for_everyone()
        return self._ready_vae()

    def build_models(self, model_config: CFLDConfig) -> tuple[CFLDModel, nn.Module]:
        """The condition model and UNet training starts from (after ``accelerate.utils.set_seed(seed)``, as in
        :meth:`train`: so a benchmark can rebuild the untrained model)."""
        c = self.config
        if c.init_checkpoint:
            model, unet = ckpt.load_model_folder(c.init_checkpoint, model_config)
            if model.config.to_dict() != model_config.to_dict():
                raise InputError(c.init_checkpoint, "was written for another model configuration than the training config's")
        else:
            ckpt.build_models(model_config, "training config (model)", materialize=False)  # refuses absurd sizes
            model = CFLDModel(model_config)
            unet = build_unet(model_config) if c.unet is None else ckpt.load_sd15_unet(c.unet, model_config)
            if c.swin:
                model.source_encoder.load_microsoft_pretrained(c.swin)
        set_trainable(model, unet, c.trainable)
        if c.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        return model.train(), unet.train()

    # -- the loop -----------------------------------------------------------------------------------------------

    def train(self, callback: Callable[[StepResult], None] | None = None) -> Path:
        """Train; returns the final pipeline folder (``output_dir/model``)."""
        threads = torch.get_num_threads()
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        try:
            return self._train(callback)
        finally:
            torch.set_num_threads(threads)

    def _train(self, callback: Callable[[StepResult], None] | None) -> Path:
        from accelerate.utils import set_seed

        c = self.config
        c.validate()
        # 1. check everything (config, output folder, dataset, checkpoint, initial weights) before writing anything
        accelerator = self._accelerator()
        self.accelerator = accelerator
        resume_from = self._resume_from()
        self._check_output()
        origin = getattr(c, "origin", "training config")
        model_config = c.model_config(origin)
        dataset = build_dataset(c.data, model_config, "train", source=f"{origin} (data)")
        check_items(dataset, model_config, source=f"{origin} (data)")
        world, accumulation = accelerator.num_processes, c.gradient_accumulation_steps
        if c.batch_size % (world * accumulation):
            raise InputError(origin, f"batch_size {c.batch_size} is not divisible by {world} processes x "
                                     f"{accumulation} accumulation steps")
        micro = c.batch_size // (world * accumulation)
        steps_per_epoch = len(dataset) // c.batch_size
        if steps_per_epoch < 1:
            raise InputError(origin, f"the dataset has {len(dataset)} pairs, fewer than one batch of {c.batch_size}")
        vae_options = check_vae_options(c.vae, f"{origin} (vae)") if isinstance(c.vae, dict) else None
        if vae_options and not (self.output_dir / VAE_DIR / "config.json").is_file():
            vae_pairs = max(1, vae_options["batch_size"] // 2)
            if vae_pairs > len(dataset):
                raise InputError(origin, f"vae batch_size {vae_options['batch_size']} needs {vae_pairs} pairs, "
                                         f"but the dataset has {len(dataset)}")
        resume_state = check_checkpoint(resume_from, accelerator.num_processes, model_config) if resume_from else None
        self.evaluation = PeriodicEvaluation(c, model_config, self.output_dir, origin) if c.eval_every else None
        if self.evaluation is not None:
            self.evaluation.prepare(accelerator.is_main_process)
        vae = self._ready_vae()
        blocks = vae.config.block_out_channels if vae is not None else vae_options["block_out_channels"]
        factor = 2 ** (len(blocks) - 1)
        if any(size % factor for size in model_config.image_size):
            raise InputError(origin, f"the model's image_size {list(model_config.image_size)} is not a multiple of the "
                                     f"VAE's downscaling ({factor})")
        ckpt.check_runnable(model_config, tuple(size // factor for size in model_config.image_size), f"{origin} (model)")
        batches_per_epoch = steps_per_epoch * accumulation
        total_steps = steps_per_epoch * c.epochs if c.max_steps is None else min(c.max_steps, steps_per_epoch * c.epochs)

        set_seed(c.seed)
        scheduler = make_scheduler("ddpm", c.noise_scheduler or SD15_SCHEDULER_CONFIG, source=f"{origin} (noise_scheduler)")
        steps_total = scheduler.config.num_train_timesteps
        model, unet = self.build_models(model_config)
        self.model, self.unet = model, unet  # for callbacks that look at the weights
        lr = c.lr * c.batch_size if c.scale_lr else c.lr
        params = [p for m in (model, unet) for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(c.adam_betas), eps=c.adam_eps)
        decay_steps = [e * steps_per_epoch for e in c.decay_epochs]
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, c.warmup_steps, c.warmup_rate, decay_steps, c.decay_rate))
        module, optimizer = accelerator.prepare(CFLDTrainingModule(model, unet), optimizer)
        step, epoch, batch_in_epoch = 0, 0, 0
        if resume_from is not None:
            step, epoch, batch_in_epoch = self._load(resume_from, resume_state, accelerator, model, unet, optimizer,
                                                     lr_scheduler)
            self.last_checkpoint = resume_from
        accelerator.wait_for_everyone()

        # 2. write: clean up after a killed run, record the recipe, train (or load) the VAE; training's random
        # stream stays what it was after the models were built (or the checkpoint loaded) either way
        random_state = rng_state()
        self._start_writing(accelerator, resume_from)
        if vae is None:
            vae = self._train_vae(accelerator, model_config, dataset)
        if self.evaluation is not None:
            self.evaluation.restore(resume_state.get("evaluation") if resume_state else None, step,
                                    accelerator.is_main_process)
        set_rng_state(*random_state)
        weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
        vae.to(accelerator.device)
        if accelerator.device.type == "cuda" and weight_dtype != torch.float32:
            vae.to(dtype=weight_dtype)  # frozen: kept in 16 bits to save memory, as the original
        if resume_from is not None:
            accelerator.print(f"resuming from {resume_from} (step {step}, epoch {epoch + 1})")
        if accelerator.is_main_process and accelerator.log_with:
            accelerator.init_trackers("cfld")
        counts = sum(p.numel() for p in params)
        accelerator.print(f"training {counts:,} parameters on {world} process(es): batch {c.batch_size} "
                          f"({micro} per process x {accumulation} accumulation), lr {lr:.3g}, "
                          f"{steps_per_epoch} steps per epoch, {total_steps} steps in all")

        bar = tqdm(total=total_steps, initial=step, desc="CFLD training", disable=not (self.progress and accelerator.is_main_process))
        running: list[StepResult] = []
        while step < total_steps and epoch < c.epochs:
            batches = epoch_batches(len(dataset), c.seed, epoch, micro, accelerator.process_index, world, batches_per_epoch)
            # a generator of its own, so that making the loader draws nothing from the global stream
            loader = DataLoader(dataset, batch_sampler=batches[batch_in_epoch:], num_workers=c.num_workers,
                                generator=torch.Generator().manual_seed(c.seed + epoch))
            parts = []
            for batch in loader:
                self._check_batch(batch)
                with accelerator.accumulate(module):
                    loss, loss_rec, loss_mse = self._loss(batch, module, vae, scheduler, steps_total, accelerator)
                    bad = accelerator.reduce(torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=accelerator.device), "sum")
                    if bad.item() > 0:
                        kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint had been written yet"
                        raise TrainingError(f"the loss became {loss.item()} at step {step + 1} (epoch {epoch + 1}); training "
                                            f"stopped before updating the weights and {kept} (resume from it with --resume, "
                                            "perhaps with a lower lr or bf16 instead of fp16)")
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                parts.append((loss.detach(), loss_rec.detach(), loss_mse.detach()))
                batch_in_epoch += 1
                if not accelerator.sync_gradients:
                    continue
                lr_scheduler.step()
                step += 1
                mean = accelerator.reduce(torch.stack([torch.stack(p) for p in parts]).mean(0), "mean")
                parts = []
                result = StepResult(step, epoch, *[float(v) for v in mean], lr=optimizer.param_groups[0]["lr"])
                running.append(result)
                bar.update()
                bar.set_postfix(loss=f"{result.loss:.4f}", lr=f"{result.lr:.2e}")
                if step % c.log_every == 0 or step == total_steps:
                    self._log(accelerator, running, step)
                    running = []
                if c.sample_every and step % c.sample_every == 0:
                    self._log_samples(accelerator, model, unet, vae, dataset, step)
                if self.evaluation is not None and step % c.eval_every == 0:
                    self._evaluate(accelerator, model, unet, vae, scheduler, step, epoch)
                last_of_epoch = batch_in_epoch == batches_per_epoch
                if (c.checkpoint_every and step % c.checkpoint_every == 0) or step == total_steps:
                    self._save(accelerator, model, unet, optimizer, lr_scheduler, step,
                               epoch + 1 if last_of_epoch else epoch, 0 if last_of_epoch else batch_in_epoch)
                if callback is not None:
                    callback(result)
                if step >= total_steps:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
                continue
            break
        bar.close()
        final = self.output_dir / FINAL_MODEL
        if accelerator.is_main_process:
            from ..pipeline import CFLDPipeline

            CFLDPipeline(model, unet, vae, make_scheduler("ddpm", dict(scheduler.config))).save_pretrained(final, overwrite=True)
            accelerator.print(f"wrote the trained pipeline to {final}")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return final

    def _check_batch(self, batch: dict[str, Any]) -> None:
        if missing := [k for k in ITEM_KEYS if k not in batch]:
            raise InputError(f"dataset {self.config.data.get('kind')}", f"items lack {', '.join(missing)}")

    def _loss(self, batch, module, vae, scheduler, steps_total: int, accelerator):
        device = accelerator.device
        images = torch.cat([batch["img_src"], batch["img_tgt"]]).to(device)
        with torch.no_grad():
            vae_dtype = next(vae.parameters()).dtype
            latents = vae.encode(images.to(vae_dtype)).latent_dist.sample().float() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        timesteps = (cubic_timesteps(latents.shape[0], steps_total, device) if self.config.cubic_sampling
                     else torch.randint(0, steps_total, (latents.shape[0],), device=device))
        noisy = scheduler.add_noise(latents, noise, timesteps)
        pose = torch.cat([batch["pose_img_src"], batch["pose_img_tgt"]]).to(device)
        prediction = module(batch["img_cond"].to(device), pose, noisy, timesteps)
        per_latent = (prediction.float() - noise).pow(2).mean(dim=(1, 2, 3))
        half = batch["img_src"].shape[0]
        return per_latent.mean(), per_latent[:half].mean(), per_latent[half:].mean()

    # -- logging --------------------------------------------------------------------------------------------------

    def _log(self, accelerator, results: list[StepResult], step: int) -> None:
        values = {
            "loss": sum(r.loss for r in results) / len(results),
            "loss_mse": sum(r.loss_mse for r in results) / len(results),
            "loss_rec": sum(r.loss_rec for r in results) / len(results),
            "lr": results[-1].lr,
        }
        if accelerator.log_with:
            accelerator.log(values, step=step)

    @torch.no_grad()
    def _log_samples(self, accelerator, model, unet, vae, dataset, step: int, count: int = 4) -> None:
        """A grid (source | target pose | generated | target) of the first pairs of the dataset in TensorBoard."""
        if not (accelerator.is_main_process and accelerator.log_with):
            return
        with self._inference(model, unet, vae, "ddim") as pipe:
            items = [dataset[i] for i in range(min(count, len(dataset)))]  # may draw flips from the global stream
            out = pipe(torch.stack([i["img_cond"] for i in items]), torch.stack([i["pose_img_tgt"] for i in items]),
                       paired=True, num_inference_steps=self.config.sample_steps, output_type="pt", output_size=None,
                       generator=torch.Generator().manual_seed(0), progress=False)
        size = out.images.shape[-2:]
        resize = lambda x: torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear")  # noqa: E731
        rows = [torch.cat([resize(((i["img_src"] + 1) / 2)[None])[0], resize(i["pose_img_tgt"][None, :3])[0],
                           out.images[n].cpu(), resize(((i["img_tgt"] + 1) / 2)[None])[0]], dim=2)
                for n, i in enumerate(items)]
        grid = torch.cat(rows, dim=1).clamp(0, 1)
        accelerator.get_tracker("tensorboard").writer.add_image("samples", grid, step)

    @contextlib.contextmanager
    def _inference(self, model, unet, vae, scheduler_name: str = "ddpm", scheduler=None):
        """A pipeline over the weights as they are now, for sample grids and evaluation; afterwards training goes
        on exactly as without it: the global random stream, the VAE's batch slicing (which changes how it
        rounds the training batches), the trainable flags and train mode are put back."""
        from ..pipeline import CFLDPipeline

        state, slicing = torch.get_rng_state(), vae.use_slicing
        config = dict(scheduler.config) if scheduler is not None else None
        try:
            yield CFLDPipeline(model, unet, vae, make_scheduler(scheduler_name, config))
        finally:
            torch.set_rng_state(state)
            vae.use_slicing = slicing
            set_trainable(model, unet, self.config.trainable)
            model.train(), unet.train()

    @torch.no_grad()
    def _evaluate(self, accelerator, model, unet, vae, scheduler, step: int, epoch: int) -> None:
        """Periodic evaluation (:mod:`cfld.training.evaluation`) with the weights as they are now."""
        with self._inference(model, unet, vae, "ddpm", scheduler) as pipe, accelerator.autocast():
            self.evaluation.run(accelerator, pipe, step, epoch)
        accelerator.wait_for_everyone()

    # -- checkpoints ----------------------------------------------------------------------------------------------

    def _save(self, accelerator, model, unet, optimizer, lr_scheduler, step: int, epoch: int, batch_in_epoch: int) -> None:
        """``checkpoints/step-NNNNNNN``: written into a temporary folder by every process (its RNG), renamed
        into place by the main process once complete; then older checkpoints beyond ``keep_checkpoints`` go."""
        folder = self.output_dir / CHECKPOINTS
        final = folder / f"step-{step:07d}"
        tmp = folder / f".step-{step:07d}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        tensors, meta = rng_state()
        save_file(tensors, str(tmp / f"rng-{accelerator.process_index}.safetensors"), metadata=meta)
        optimizer_state = optimizer.state_dict()
        if accelerator.is_main_process:
            ckpt.save_checkpoint(tmp, model, unet)
            tensors, groups = optimizer_to_files(optimizer_state)
            save_file(tensors, str(tmp / OPTIMIZER), metadata={"format": "pt"})
            state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "num_processes": accelerator.num_processes,
                     "optimizer_param_groups": groups, "lr_scheduler": lr_scheduler.state_dict(),
                     "grad_scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                     "config": self.config.to_dict(), "time": time.time(),
                     "evaluation": self.evaluation.state() if self.evaluation is not None else None}
            accelerator.wait_for_everyone()
            (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2, default=_json_default) + "\n")
            usual_permissions(tmp)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in sorted(folder.glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        else:
            accelerator.wait_for_everyone()
        accelerator.wait_for_everyone()
        self.last_checkpoint = final

    def _load(self, folder: Path, state: dict[str, Any], accelerator, model, unet, optimizer,
              lr_scheduler) -> tuple[int, int, int]:
        """Restore weights, optimizer, schedules and random streams from a checkpoint and the ``state`` that
        :func:`check_checkpoint` passed; whatever still does not fit is one InputError naming the checkpoint."""
        for name, module in ((ckpt.MODEL, model), (ckpt.UNET, unet)):
            weights = ckpt.read_safetensors(folder / name)
            check_keys(module.state_dict(), weights, folder / name)
            check_finite(weights, folder / name)
            module.load_state_dict(weights)
        try:
            tensors = load_file(str(folder / OPTIMIZER), device="cpu")
            optimizer.load_state_dict(optimizer_from_files(tensors, state["optimizer_param_groups"]))
            lr_scheduler.load_state_dict(state["lr_scheduler"])
            if accelerator.scaler is not None and state.get("grad_scaler"):
                accelerator.scaler.load_state_dict(state["grad_scaler"])
            tensors, meta = read_rng_file(folder / f"rng-{accelerator.process_index}.safetensors")
            set_rng_state(tensors, meta)
        except InputError:
            raise
        except Exception as error:  # noqa: BLE001 - torch's optimizer and RNG loaders raise many kinds
            raise InputError(folder, f"cannot be resumed: its optimizer, schedule or random state does not fit this "
                                     f"run ({type(error).__name__}: {one_line(error, 200)})") from None
        return state["step"], state["epoch"], state["batch_in_epoch"]


def read_rng_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A process's random states (``rng-N.safetensors``), checked, or one InputError naming the file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InputError(path, "is missing: the checkpoint is incomplete")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        numpy_state, python_state = json.loads(meta["numpy"]), json.loads(meta["python"])
        ok = (isinstance(numpy_state, list) and len(numpy_state) == 4 and isinstance(python_state, list)
              and len(python_state) == 3 and isinstance(python_state[1], list)
              and tensors["torch"].dtype == torch.uint8 and tensors["numpy"].numel() == 624)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"is not a random-state file of a checkpoint ({type(error).__name__}: {error})") from None
    if not ok:
        raise InputError(path, "is not a random-state file of a checkpoint (its states have the wrong form)")
    return tensors, meta


def check_checkpoint(folder: Path, num_processes: int, model_config: CFLDConfig) -> dict[str, Any]:
    """Check a training checkpoint before a resumed run writes anything: its state file's entries, its model
    configuration, and that every file is there and complete (safetensors headers cover the whole file).
    Returns the state."""
    state_file = folder / TRAINER_STATE
    state = read_json_object(state_file, "training checkpoint state")
    for key in ("step", "epoch", "batch_in_epoch", "num_processes"):
        V.check_int(state.get(key), key, state_file, 1 if key == "num_processes" else 0)
    groups = state.get("optimizer_param_groups")
    if not (isinstance(groups, list) and groups and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                      for g in groups)):
        raise InputError(state_file, "optimizer_param_groups must be a list of parameter groups")
    if not isinstance(state.get("lr_scheduler"), dict):
        raise InputError(state_file, "lr_scheduler must be a mapping (the learning-rate schedule's state)")
    if state.get("grad_scaler") is not None and not isinstance(state["grad_scaler"], dict):
        raise InputError(state_file, "grad_scaler must be a mapping or null")
    check_evaluation_state(state.get("evaluation"), state_file)
    if state["num_processes"] != num_processes:
        raise InputError(folder, f"was written by {state['num_processes']} processes; resume it with as many "
                                 f"(now {num_processes}) to continue exactly")
    config = CFLDConfig.from_json(folder / ckpt.CONFIG)
    if config.to_dict() != model_config.to_dict():
        raise InputError(folder, "holds a model of another configuration than the training config's")
    for name in (ckpt.MODEL, ckpt.UNET, OPTIMIZER):
        path = folder / name
        if not path.is_file():
            raise InputError(path, "is missing: the checkpoint is incomplete")
        ckpt.safetensors_shapes(path)
    for index in range(num_processes):
        read_rng_file(folder / f"rng-{index}.safetensors")
    return state


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
