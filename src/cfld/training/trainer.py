"""The CFLD training loop on accelerate (paper Sec. 3.3 "Training" and 4.1; the original's ``pose_transfer_train.py``).

:meth:`Trainer.train` reads as the recipe, in the order it runs:

1. **Check** (:mod:`.preflight`): the recipe, the output folder, the dataset, the batch split, a resume
   checkpoint and the VAE, before anything is written.
2. **Build** (:mod:`.step`): the models from ``init_checkpoint`` or new weights (after ``set_seed(seed)``),
   what of them trains, Adam and its lr schedule; a checkpoint's state when resuming (:mod:`.checkpoints`).
3. **Start writing**: clean up after a killed run, record the recipe, train the recipe's own VAE if it has one.
4. **Loop** over epochs, each a permutation of the pairs drawn from ``(seed, epoch)`` and split across
   processes: the loss of a batch (:func:`.step.batch_loss`), a stop before the update if it is not finite,
   backward, the optimizer step (:func:`.step.optimizer_step`); then logs, sample grids and periodic
   evaluation (:mod:`.evaluation`), and checkpoints (:mod:`.checkpoints`).
5. **Save** the trained pipeline to ``OUTPUT/model``.

Mixed precision (fp16/bf16), gradient accumulation and multi-GPU / multi-node data parallelism come from
accelerate (``accelerate launch -m cfld train ...``); the UNet uses gradient checkpointing, as the original. The
memory and speed levers (docs/training.md "Memory and speed") enter here: the condition path's checkpointing
(:class:`.step.CFLDTrainingModule`), the frozen weights in 16 bits (:func:`.step.keep_frozen_in`), DDP's
bucket view (:func:`.preflight.make_accelerator`), 8-bit Adam (:func:`.step.adam_class`) and the latent cache
(:mod:`.latent_cache`, encoded in step 3).
Steps are optimizer steps (the original steps its scheduler once per micro-batch, which is the same without
gradient accumulation).

Reproducibility and resuming: a run is a function of its config; a checkpoint holds the weights, Adam's moments,
the schedule, every process's random generators and the position in the epoch, so ``--resume`` continues with
exactly the batches and random numbers it would have had. A non-finite loss stops every process before the
optimizer step, leaving the last checkpoint untouched; so does a disk that fills while a checkpoint is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..errors import CFLDError, InputError
from ..io import writing
from ..pipeline import CFLDPipeline
from ..schedulers import SD15_SCHEDULER_CONFIG, make_scheduler
from . import preflight
from .checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .evaluation import inference, log_samples
from .preflight import FINAL_MODEL
from .step import CFLDTrainingModule, base_lr, batch_loss, build_models, build_optimizer, keep_frozen_in, optimizer_step

ITEM_KEYS = ("img_src", "img_tgt", "img_cond", "pose_img_src", "pose_img_tgt")


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


def epoch_batches(length: int, seed: int, epoch: int, batch: int, rank: int, world: int,
                  batches: int) -> list[list[int]]:
    """This process's micro-batches of ``epoch``: a permutation of the dataset drawn from ``(seed, epoch)``,
    cut into global batches of ``batch * world`` pairs (the last partial one dropped), process ``rank``
    taking its slice of each."""
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    step = batch * world
    return [order[b * step + rank * batch : b * step + (rank + 1) * batch] for b in range(batches)]


@dataclass
class _Run:
    """What the steps of one run hand each other: the plan, the models and optimizer, and where the loop is."""

    accelerator: Any
    plan: preflight.RunPlan
    scheduler: Any  # the noise schedule of training
    model: Any
    unet: Any
    module: Any  # the models wrapped for accelerate
    optimizer: Any
    schedule: Any  # the learning-rate schedule
    frozen_dtype: torch.dtype | None
    vae: Any = None
    cache: Any = None  # the latent cache, when the recipe keeps one
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    running: list[StepResult] = field(default_factory=list)  # the results since the last log


# -- the trainer -----------------------------------------------------------------------------------------------------


class Trainer:
    """Runs one :class:`TrainConfig` into ``output_dir``:

    ``output_dir/checkpoints/step-NNNNNNN/`` (our checkpoint + optimizer, scheduler, RNG and position),
    ``output_dir/model/`` (a :class:`cfld.CFLDPipeline` folder at the end), ``output_dir/vae/`` (a VAE the
    recipe trained), ``output_dir/config.json`` (the recipe), ``output_dir/data.json`` (its data) and
    ``output_dir/logs/`` (TensorBoard).

    ``resume``: False, True (the newest checkpoint in ``output_dir``) or a checkpoint folder. A resumed run must be
    on the data its checkpoint was trained on (``output_dir/data.json``, :mod:`.data_identity`), unless
    ``new_data`` (going on with other data on purpose).
    ``callback(result)`` runs after every optimizer step on every process.
    """

    def __init__(self, config: TrainConfig, output_dir: str | os.PathLike, *, resume: bool | str | os.PathLike = False,
                 overwrite: bool = False, new_data: bool = False, progress: bool = True):
        self.config = config
        self.output_dir = Path(output_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.new_data = new_data
        self.progress = progress
        self.last_checkpoint: Path | None = None
        self.evaluation = None

    def build_models(self, model_config):
        """The condition model and UNet training starts from (:func:`cfld.training.step.build_models`)."""
        return build_models(self.config, model_config)

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
        c = self.config
        c.validate()
        # 1. check everything (config, output folder, dataset, checkpoint, VAE) before writing anything
        accelerator = self.accelerator = preflight.make_accelerator(c, self.output_dir)
        plan = preflight.plan_run(c, accelerator, self.output_dir, self.resume, self.overwrite, self.new_data,
                                  self.progress)
        self.evaluation = plan.evaluation
        run = self._build(accelerator, plan)  # 2.
        self._start_writing(run)  # 3.
        bar = tqdm(total=plan.total_steps, initial=run.step, desc="CFLD training",
                   disable=not (self.progress and accelerator.is_main_process))
        while run.step < plan.total_steps and run.epoch < c.epochs:  # 4.
            if not self._epoch(run, bar, callback):
                break
            run.epoch, run.batch_in_epoch = run.epoch + 1, 0
        bar.close()
        # 5. the trained pipeline
        final = self.output_dir / FINAL_MODEL
        if accelerator.is_main_process:
            self._save_pipeline(final, run.model, run.unet, run.vae, run.scheduler, run.step)
            accelerator.print(f"wrote the trained pipeline to {final}")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return final

    def _build(self, accelerator, plan: preflight.RunPlan) -> _Run:
        """Step 2: the models, optimizer and schedule (after ``set_seed``); a checkpoint's state when resuming."""
        c = self.config
        set_seed(c.seed)
        scheduler = make_scheduler("ddpm", c.noise_scheduler or SD15_SCHEDULER_CONFIG,
                                   source=f"{plan.origin} (noise_scheduler)")
        model, unet = self.model, self.unet = self.build_models(plan.model_config)  # self.*: for callbacks
        frozen_dtype = preflight.frozen_dtype(accelerator)
        if c.cast_frozen_weights and frozen_dtype is not None:
            keep_frozen_in(frozen_dtype, unet)  # the frozen UNet in 16 bits on the GPU; saved as loaded (fp32)
        optimizer, schedule = build_optimizer(c, model, unet, plan.steps_per_epoch)
        module, optimizer = accelerator.prepare(CFLDTrainingModule(model, unet, c.condition_checkpointing), optimizer)
        self.module = module
        run = _Run(accelerator, plan, scheduler, model, unet, module, optimizer, schedule, frozen_dtype)
        if plan.resume_from is not None:
            run.step, run.epoch, run.batch_in_epoch = load_checkpoint(
                plan.resume_from, plan.resume_state, accelerator, model, unet, optimizer, schedule)
            self.last_checkpoint = plan.resume_from
        accelerator.wait_for_everyone()
        return run

    def _start_writing(self, run: _Run) -> None:
        """Step 3: clean up after a killed run, record the recipe, train (or load) the VAE, encode the photos the
        latent cache lacks; training's random stream stays what it was after step 2 either way."""
        c, accelerator, plan = self.config, run.accelerator, run.plan
        random_state = rng_state()
        preflight.start_writing(c, accelerator, self.output_dir, plan, self.overwrite)
        vae = plan.vae
        if vae is None:
            vae = preflight.train_vae(c, accelerator, self.output_dir, plan.model_config, plan.dataset, self.progress)
        if self.evaluation is not None:
            self.evaluation.restore(plan.resume_state.get("evaluation") if plan.resume_state else None, run.step,
                                    accelerator.is_main_process)
        if run.frozen_dtype is not None:
            keep_frozen_in(run.frozen_dtype, vae.requires_grad_(False))  # 16 bits as the original; saved as loaded
        run.vae = vae.to(accelerator.device)
        run.cache = (preflight.ready_latent_cache(c, accelerator, plan.dataset, vae, plan.data.get("photos"),
                                                 self.progress)
                     if plan.cache_latents else None)
        set_rng_state(*random_state)
        if plan.resume_from is not None:
            accelerator.print(f"resuming from {plan.resume_from} (step {run.step}, epoch {run.epoch + 1})")
        if accelerator.is_main_process and accelerator.log_with:
            accelerator.init_trackers("cfld")
        counts = sum(p.numel() for group in run.optimizer.param_groups for p in group["params"])
        accelerator.print(f"training {counts:,} parameters on {accelerator.num_processes} process(es): batch "
                          f"{c.batch_size} ({plan.micro_batch} per process x {c.gradient_accumulation_steps} "
                          f"accumulation), lr {base_lr(c):.3g}, {plan.steps_per_epoch} steps per epoch, "
                          f"{plan.total_steps} steps in all")

    def _epoch(self, run: _Run, bar, callback: Callable[[StepResult], None] | None) -> bool:
        """Step 4, one epoch from ``run.batch_in_epoch`` on; False once the last step is done."""
        c, accelerator, plan = self.config, run.accelerator, run.plan
        batches = epoch_batches(len(plan.dataset), c.seed, run.epoch, plan.micro_batch, accelerator.process_index,
                                accelerator.num_processes, plan.batches_per_epoch)
        # a generator of its own, so that making the loader draws nothing from the global stream
        loader = DataLoader(plan.dataset, batch_sampler=batches[run.batch_in_epoch:], num_workers=c.num_workers,
                            generator=torch.Generator().manual_seed(c.seed + run.epoch))
        parts = []
        for batch in loader:
            self._check_batch(batch)
            with accelerator.accumulate(run.module):
                loss, loss_rec, loss_mse = batch_loss(batch, run.module, run.vae, run.scheduler,
                                                      cubic=c.cubic_sampling, device=accelerator.device,
                                                      cache=run.cache)
                self._stop_unless_finite(accelerator, loss, run.step, run.epoch)
                accelerator.backward(loss)
                optimizer_step(run.optimizer, run.schedule, sync=accelerator.sync_gradients)
            parts.append((loss.detach(), loss_rec.detach(), loss_mse.detach()))
            run.batch_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            run.step += 1
            mean = accelerator.reduce(torch.stack([torch.stack(p) for p in parts]).mean(0), "mean")
            parts = []
            result = StepResult(run.step, run.epoch, *[float(v) for v in mean], lr=run.optimizer.param_groups[0]["lr"])
            bar.update()
            bar.set_postfix(loss=f"{result.loss:.4f}", lr=f"{result.lr:.2e}")
            self._after_step(run, result)
            if callback is not None:
                callback(result)
            if run.step >= plan.total_steps:
                return False
        return True

    def _after_step(self, run: _Run, result: StepResult) -> None:
        """Logs, sample grids, evaluation and checkpoints, each when its period comes."""
        c, accelerator, step, model, unet, vae = self.config, run.accelerator, run.step, run.model, run.unet, run.vae
        run.running.append(result)
        if step % c.log_every == 0 or step == run.plan.total_steps:
            log_results(accelerator, run.running, step)
            run.running = []
        if c.sample_every and step % c.sample_every == 0 and accelerator.is_main_process and accelerator.log_with:
            with inference(model, unet, vae, c.trainable, "ddim") as pipe, accelerator.autocast():
                log_samples(accelerator, pipe, run.plan.dataset, step, c.sample_steps)
        if self.evaluation is not None and step % c.eval_every == 0:
            with inference(model, unet, vae, c.trainable, "ddpm", run.scheduler) as pipe, accelerator.autocast():
                self.evaluation.run(accelerator, pipe, step, run.epoch)
            accelerator.wait_for_everyone()
        last_of_epoch = run.batch_in_epoch == run.plan.batches_per_epoch
        if (c.checkpoint_every and step % c.checkpoint_every == 0) or step == run.plan.total_steps:
            self.last_checkpoint = save_checkpoint(
                accelerator, self.output_dir, model, unet, run.optimizer, run.schedule, step=step,
                epoch=run.epoch + 1 if last_of_epoch else run.epoch,
                batch_in_epoch=0 if last_of_epoch else run.batch_in_epoch, config=c.to_dict(),
                data_digest=run.plan.data["digest"],
                evaluation=self.evaluation.state() if self.evaluation is not None else None,
                keep=c.keep_checkpoints, last=self.last_checkpoint)

    def _check_batch(self, batch: dict[str, Any]) -> None:
        if missing := [k for k in ITEM_KEYS if k not in batch]:
            raise InputError(f"dataset {self.config.data.get('kind')}", f"items lack {', '.join(missing)}")

    def _kept(self) -> str:
        return (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                else "no checkpoint had been written yet")

    def _stop_unless_finite(self, accelerator, loss: torch.Tensor, step: int, epoch: int) -> None:
        """Every process stops, before the weights are updated, when the loss of any is not finite."""
        bad = accelerator.reduce(torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=accelerator.device), "sum")
        if bad.item() > 0:
            raise TrainingError(f"the loss became {loss.item()} at step {step + 1} (epoch {epoch + 1}); training "
                                f"stopped before updating the weights and {self._kept()} (resume from it with "
                                "--resume, perhaps with a lower lr or bf16 instead of fp16)")

    def _save_pipeline(self, final: Path, model, unet, vae, scheduler, step: int) -> None:
        """``OUTPUT/model``; a write the system refuses says what was kept."""
        pipe = CFLDPipeline(model, unet, vae, make_scheduler("ddpm", dict(scheduler.config)))
        pipe.provenance = (f"Trained by `cfld train` for {step} optimizer steps on {self.config.data.get('kind')} "
                           "data; the recipe is config.json in the run's output folder")
        kept = (f"{self._kept()}: free space and run again with --resume (it writes the model again)"
                if self.last_checkpoint else "no checkpoint had been written yet")
        with writing(what="the trained model", kept=kept):
            pipe.save_pretrained(final, overwrite=True)


def log_results(accelerator, results: list[StepResult], step: int) -> None:
    """The mean losses of ``results`` (the steps since the last log) and the last lr, to the trackers."""
    values = {
        "loss": sum(r.loss for r in results) / len(results),
        "loss_mse": sum(r.loss_mse for r in results) / len(results),
        "loss_rec": sum(r.loss_rec for r in results) / len(results),
        "lr": results[-1].lr,
    }
    if accelerator.log_with:
        accelerator.log(values, step=step)
