"""Evaluation during training, and the best model so far (the paper picked its epoch by its test metrics).

Every ``eval_every`` optimizer steps, a fixed subset of the test pairs (``eval_pairs`` of them, drawn once from
the run's seed) is generated with the sampler settings of the config, exactly as ``cfld sample`` does it (each
pair's noise from ``(eval_seed, source, target)``, see :mod:`cfld.split_sampling`), and scored with the
metrics whose weights are present (SSIM, SSIM_256 and PSNR always; LPIPS and FID when their weights are in
torchvision's cache) by :class:`cfld.metrics.Evaluator`, as the paper does. Several processes share the pairs
and the main process scores them.

When MediaPipe is installed, the pose check scores the same images against their target poses too
(:mod:`cfld.metrics.pose_folders`: ``pckh`` pooled as the pose-transfer papers, ``pck``, ``pose_found``;
docs/pose-check.md); without it one line says so at the start and the other metrics go on. The target poses come
from the dataset's keypoint table (``cfld prepare`` folders) or, for any other dataset, from the heatmaps of the
item's pose image (:func:`pose_from_image`).

The numbers go to TensorBoard (``eval/<metric>``) and to ``metrics.jsonl`` in the run folder, one line per
evaluation; when the ``select_by`` metric improves, the model is written to ``best/`` (a pipeline folder, with
``cfld-best.json`` saying the step and the numbers). The history and the best so far are part of every
checkpoint, so ``--resume`` continues them: what came after the checkpoint is evaluated again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, MissingDependencyError
from ..io import atomic_write_text, read_json_object
from ..metrics.evaluate import Evaluator, available_metrics, quantise
from ..metrics.pose_folders import PoseTally, open_scorer
from ..pipeline import CFLDPipeline
from ..pose import Pose, PoseTable
from ..schedulers import make_scheduler
from ..split_sampling import Pair, SamplingSettings, generate, order_by_source, share
from .datasets import build_dataset
from .step import set_trainable

HISTORY, BEST_DIR, BEST_FILE = "metrics.jsonl", "best", "cfld-best.json"
LOWER_IS_BETTER = ("fid", "fid_standard", "lpips")


class PeriodicEvaluation:
    """The test pairs, metrics and best-so-far of one run; :meth:`run` is called on every process."""

    def __init__(self, config, model_config, output_dir: Path, source: object = "training config"):
        c = config
        self.config = c
        self.output_dir = Path(output_dir)
        spec = c.eval_data or c.data
        self.dataset = build_dataset(spec, model_config, "test", source=f"{source} (eval_data)")
        length = len(self.dataset)
        if length < 1:
            raise InputError(f"{source} (eval_data)", "the evaluation dataset is empty")
        chosen = torch.randperm(length, generator=torch.Generator().manual_seed(c.seed)).tolist()[: c.eval_pairs]
        self.indices = sorted(chosen)
        if c.eval_metrics is None:
            self.metrics, missing = available_metrics()
            if c.select_by not in self.metrics:
                raise InputError(source, f"select_by {c.select_by} cannot be computed on this machine "
                                         f"({missing.get(c.select_by, 'unavailable')}); choose another metric")
        else:
            self.metrics = list(c.eval_metrics)
        self.settings = SamplingSettings(c.eval_seed, c.eval_steps, c.eval_scheduler, c.eval_guidance_pose,
                                         c.eval_guidance_appearance)
        self.size: tuple[int, int] | None = tuple(c.eval_size) if c.eval_size else None
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.evaluator = None
        self.pose_check = False  # known on the main process after prepare(): whether MediaPipe is there

    def prepare(self, is_main: bool) -> None:
        """Read the first pair (its sizes) and, on the main process, load the metric networks: a missing weight
        file is an error before the run writes anything."""
        item = self._item(self.indices[0])
        if self.size is None:
            self.size = tuple(item["img_gt"].shape[-2:]) if "img_gt" in item else tuple(item["img_tgt"].shape[-2:])
        if is_main:
            self.evaluator = Evaluator(self.metrics, self.size, reference=self.config.eval_fid_reference,
                                       progress=False)
            try:
                open_scorer().close()
                self.pose_check = True
            except MissingDependencyError as error:
                print(f"note: the evaluation goes on without the pose metrics (pckh, pck, pose_found): {error}")

    def _item(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        missing = [k for k in ("img_cond", "pose_img_tgt", "name_src", "name_tgt") if k not in item]
        if missing or ("img_gt" not in item and "img_tgt" not in item):
            raise InputError("eval_data", f"items lack {', '.join(missing) or 'img_gt (or img_tgt)'}")
        return item

    # -- state kept in checkpoints -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "history": self.history}

    def restore(self, state: dict[str, Any] | None, step: int, is_main: bool) -> None:
        """Continue from a checkpoint's state at ``step``: history and best as they were then; on the main
        process, ``metrics.jsonl`` is cut back to it and a ``best/`` written after it goes (the resumed run
        evaluates those steps again and chooses anew)."""
        state = state or {}
        self.best, self.history = state.get("best"), list(state.get("history", []))
        if not is_main:
            return
        best_file = self.output_dir / BEST_DIR / BEST_FILE
        if best_file.is_file():
            written = read_json_object(best_file, "best-model record")
            if not isinstance(written.get("step"), int) or written["step"] > step:
                shutil.rmtree(self.output_dir / BEST_DIR)
        if (self.output_dir / HISTORY).exists():
            self._write_history()

    def _write_history(self) -> None:
        text = "".join(json.dumps(entry, allow_nan=False) + "\n" for entry in self.history)
        atomic_write_text(self.output_dir / HISTORY, text, overwrite=True)

    # -- one evaluation ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def run(self, accelerator, pipe, step: int, epoch: int) -> dict[str, float | None] | None:
        """Generate this process's share of the pairs with ``pipe`` and, on the main process, score them all,
        log them and keep ``best/``. Returns the metrics on the main process."""
        rank, world = accelerator.process_index, accelerator.num_processes
        items = {i: self._item(i) for i in share(self.indices, rank, world)}
        pairs = {Pair(str(item["name_src"]), str(item["name_tgt"])): i for i, item in items.items()}
        by_source = {str(item["name_src"]): item for item in items.values()}
        generated = []
        for batch, images in generate(pipe, order_by_source(list(pairs)), lambda name: by_source[name]["img_cond"],
                                      lambda pair: items[pairs[pair]]["pose_img_tgt"], self.settings,
                                      batch_size=self.config.eval_batch_size):
            for pair, image in zip(batch, quantise(images, self.size)):
                item = items[pairs[pair]]
                truth = item["img_gt"] if "img_gt" in item else (item["img_tgt"] + 1) / 2
                generated.append((pairs[pair], Evaluator.prepare_truth(truth), image, (pair.source, pair.target),
                                  target_pose(self.dataset, item)))
        if world > 1:
            from accelerate.utils import gather_object

            generated = gather_object(generated)
        if not accelerator.is_main_process:
            return None
        generated.sort(key=lambda entry: entry[0])
        ev = self.evaluator
        ev.reset()
        batch = self.config.eval_batch_size
        for start in range(0, len(generated), batch):
            chunk = generated[start:start + batch]
            ev.add(torch.stack([e[1] for e in chunk]), torch.stack([e[2] for e in chunk]), [e[3] for e in chunk])
        metrics = ev.compute()["metrics"]
        if self.pose_check:
            with open_scorer() as scorer:
                tally = PoseTally(scorer)
                tally.add(torch.stack([e[2] for e in generated]), [e[4] for e in generated])
            metrics.update(tally.result()["metrics"])
        entry = {"step": step, "epoch": epoch, "num_pairs": len(generated), "size": list(self.size),
                 "metrics": metrics, "time": time.time()}
        self.history.append(entry)
        self._write_history()
        if accelerator.log_with:
            accelerator.log({f"eval/{k}": v for k, v in metrics.items() if v is not None}, step=step)
        value = metrics.get(self.config.select_by)
        if value is not None and self._improves(value):
            self.best = {"step": step, "epoch": epoch, "metric": self.config.select_by, "value": value}
            record = json.dumps({**self.best, "metrics": metrics, "sampling": self.settings.to_dict()}, indent=2) + "\n"
            pipe.provenance = (f"The best weights of a `cfld train` run by {self.config.select_by} on held-out pairs, "
                               f"at step {step}; the selection is {BEST_FILE} beside this card")
            pipe.save_pretrained(self.output_dir / BEST_DIR, overwrite=True, extra_files={BEST_FILE: record})
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        mark = " (best so far)" if self.best and self.best["step"] == step else ""
        accelerator.print(f"step {step}: {shown}{mark}")
        return metrics

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        lower = self.config.select_by in LOWER_IS_BETTER
        return value < self.best["value"] if lower else value > self.best["value"]


def target_pose(dataset, item: dict[str, Any]) -> Pose | None:
    """The pose an evaluation item asks for: the row of its ``name_tgt`` in the dataset's keypoint ``table`` when it
    has one, else what its pose image shows (:func:`pose_from_image`)."""
    table = getattr(dataset, "table", None)
    if isinstance(table, PoseTable):
        with contextlib.suppress(KeyError):
            return table[str(item["name_tgt"])]
    return pose_from_image(item["pose_img_tgt"], str(item.get("name_tgt", "target")))


def pose_from_image(pose_img: torch.Tensor, name: str | None = None) -> Pose | None:
    """The joints a (21, H, W) pose image (:func:`cfld.pose.pose_image`) was drawn from, in its (H, W) frame: each
    joint at the peak of its heatmap (within a pixel), missing where its heatmap stays below 0.5 (a joint drawn
    outside the picture, or none). None for a pose image of another layout."""
    if pose_img.ndim != 3 or pose_img.shape[0] != 21:
        return None
    heat = pose_img[3:].float().flatten(1)
    peak, where = heat.max(dim=1)
    width = pose_img.shape[-1]
    xy = torch.stack([where % width, where // width], dim=1).double().numpy()
    return Pose(xy, (peak > 0.5).double().numpy(), tuple(pose_img.shape[-2:]), name)


def check_state(state: Any, source: object) -> None:
    """A checkpoint's evaluation state: ``{"best": null or {step, metric, value, ...}, "history": [...]}``."""
    if state is None:
        return
    best = state.get("best") if isinstance(state, dict) else None
    ok = isinstance(state, dict) and isinstance(state.get("history", []), list) and (
        best is None or (isinstance(best, dict) and isinstance(best.get("step"), int)
                         and isinstance(best.get("value"), (int, float)) and isinstance(best.get("metric"), str)))
    if not ok:
        raise InputError(source, "evaluation must be a mapping with a best entry (step, metric, value) or null, and "
                                 "a history list")


# -- the weights as they are now, for sample grids and evaluation ---------------------------------------------------


@contextlib.contextmanager
def inference(model, unet, vae, trainable: str, scheduler_name: str = "ddpm", scheduler=None):
    """A pipeline over the weights as they are now; afterwards training goes on exactly as without it: the
    global random stream, the VAE's batch slicing (which changes how it rounds the training batches), the
    trainable flags (``trainable``: the recipe's) and train mode are put back."""
    state, slicing = torch.get_rng_state(), vae.use_slicing
    config = dict(scheduler.config) if scheduler is not None else None
    try:
        yield CFLDPipeline(model, unet, vae, make_scheduler(scheduler_name, config))
    finally:
        torch.set_rng_state(state)
        vae.use_slicing = slicing
        set_trainable(model, unet, trainable)
        model.train(), unet.train()


@torch.no_grad()
def log_samples(accelerator, pipe, dataset, step: int, sample_steps: int, count: int = 4) -> None:
    """A grid (source | target pose | generated | target) of the first pairs of the dataset in TensorBoard."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]  # may draw flips from the global stream
    out = pipe(torch.stack([i["img_cond"] for i in items]), torch.stack([i["pose_img_tgt"] for i in items]),
               paired=True, num_inference_steps=sample_steps, output_type="pt", output_size=None,
               generator=torch.Generator().manual_seed(0), progress=False)
    size = out.images.shape[-2:]
    resize = lambda x: torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear")  # noqa: E731
    rows = [torch.cat([resize(((i["img_src"] + 1) / 2)[None])[0], resize(i["pose_img_tgt"][None, :3])[0],
                       out.images[n].cpu(), resize(((i["img_tgt"] + 1) / 2)[None])[0]], dim=2)
            for n, i in enumerate(items)]
    grid = torch.cat(rows, dim=1).clamp(0, 1)
    accelerator.get_tracker("tensorboard").writer.add_image("samples", grid, step)
