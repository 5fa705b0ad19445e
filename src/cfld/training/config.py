"""TrainConfig: one training run's recipe (model, initial weights, data, optimisation, checkpoints), read
from YAML or JSON, with the bundled presets.

Presets (``cfld train --config NAME`` or a file; ``cfld train --list-presets``):

* ``deepfashion-256`` / ``deepfashion-512``: the paper (Sec. 4.1): Stable Diffusion 1.5 UNet and VAE,
  Swin-B ImageNet-22k, DeepFashion at 256x176 / 512x352 (trained at 256x256 / 512x512 latents' image size
  as the original stretches them), total batch 224, 100 epochs, Adam, lr 5e-7 x total batch,
  1,000 warmup steps, x0.1 at epoch 50, 20 % condition dropout, fp16.
* ``finetune-256``: fine-tuning a trained model (``init_checkpoint``) on a folder of ``cfld prepare photos``: the
  paper's trainable parts, total batch 32, lr 1e-5, 16 epochs, the best of 64 test pairs kept.
* ``synthetic-cpu``: the test-size model on synthetic persons, on a CPU in minutes. Beyond the paper it
  (1) trains the whole tiny UNet (there is no pretrained Stable Diffusion at that size), and (2) first
  trains a tiny VAE on the synthetic persons (there is no pretrained VAE at that size either).

:class:`TrainConfig` is longer than our other classes and reads better whole: its ~60 keys, each with the comment
that explains it, then the checks of those keys, so that a reader finds every key of a recipe and what it accepts
in one place.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import validation as V
from ..errors import InputError
from ..io import path_kind, read_json, read_yaml
from ..io.reading import MAX_CONFIG_BYTES, YAMLSyntaxError, parse_yaml
from ..metrics.evaluate import ALL_METRICS
from ..models.config import PRESETS as MODEL_PRESETS
from ..models.config import CFLDConfig
from ..schedulers import make_scheduler, scheduler_key
from .autoencoder import check_options
from .datasets import check_data_spec
from .step import OPTIMIZERS

TRAINABLE = ("paper", "unet")
"""``paper``: H_S, H_D, H_A, H_P, the learnable vector and the UNet's up-block cross-attention W_k, W_v
(Table 1); ``unet``: the same plus the whole UNet (only for models without pretrained Stable Diffusion)."""

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything a training run needs. Sizes of the model are a :class:`CFLDConfig` (``model``)."""

    # the model: a CFLDConfig preset name ("sd15", "tiny"), our config.json, or {"preset": ..., field: value}
    model: Any = "sd15"
    # initial weights. unet/vae: Stable Diffusion (hub id, diffusers folder or single file); unet None =
    # random init; vae {"train_steps": N, ...}: build a small VAE and train it on the data first
    unet: Any = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    vae: Any = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    swin: str | None = None  # Microsoft Swin checkpoint for H_S (swin_base_patch4_window12_384_22kto1k.pth)
    # a model to start from instead (fine-tuning): a pipeline folder (save_pretrained, a run's model/ or best/),
    # our checkpoint folder (cfld convert) or the released original checkpoints; its configuration must be `model`'s
    init_checkpoint: str | None = None
    trainable: str = "paper"
    # data: {"kind": "synthetic", ...SyntheticPersons arguments}, {"kind": "prepared", "root": DIR, ...
    # PoseTransferDataset arguments} or {"kind": NAME, ...} of a Dataset class registered with
    # cfld.training.register_dataset or a "cfld.datasets" entry point (a config never imports code)
    data: dict[str, Any] = field(default_factory=lambda: {"kind": "synthetic", "length": 1000})
    # optimisation (paper Sec. 4.1 / the original's defaults)
    batch_size: int = 224  # total over processes and gradient accumulation
    gradient_accumulation_steps: int = 1
    epochs: int = 100
    max_steps: int | None = None  # stop after this many optimizer steps (e.g. for a quick check)
    lr: float = 5e-7
    scale_lr: bool = True  # lr x total batch size, as the paper says
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_steps: int = 1000
    warmup_rate: float = 0.1  # warmup starts at lr x warmup_rate (the original's WARMUP_RATE)
    decay_epochs: tuple[int, ...] = (50,)
    decay_rate: float = 0.1
    cubic_sampling: bool = True
    mixed_precision: str = "fp16"
    gradient_checkpointing: bool = True  # the UNet's, as the original
    # memory and speed levers (docs/training.md, "Memory and speed"; benchmarks/train_cost.py measures each)
    condition_checkpointing: bool = True  # H_S (Swin) recomputed in backward too: exact, less memory per pair
    gradient_as_bucket_view: bool = True  # DDP's gradients are views of its buckets, not a second copy: exact
    cast_frozen_weights: bool = True  # on a GPU under fp16/bf16: frozen weights in that dtype, trainable ones fp32
    optimizer: str = "adam"  # adam, or adam8bit (bitsandbytes, CUDA only): Adam's moments in 8 bits
    # the VAE posterior (mean, std) of every training photo encoded once, to latent_cache_dir (default: a
    # latent-cache folder beside a prepared dataset); "auto": when the data is a prepared folder
    cache_latents: Any = "auto"
    latent_cache_dir: str | None = None
    allow_tf32: bool = True
    seed: int = 3407
    num_workers: int = 4
    torch_threads: int | None = None  # torch.set_num_threads for CPU runs (1 avoids oversubscribing a busy machine)
    noise_scheduler: dict[str, Any] | None = None  # DDPM training config; default Stable Diffusion 1.5's
    # checkpoints and logging
    checkpoint_every: int = 2000  # optimizer steps; 0 = only at the end
    keep_checkpoints: int = 2
    log_every: int = 10
    sample_every: int = 0  # optimizer steps between TensorBoard sample grids; 0 = never
    sample_steps: int = 20
    # evaluation during training (cfld.training.evaluation): every eval_every optimizer steps, eval_pairs fixed
    # test pairs are generated and scored; metrics.jsonl and TensorBoard get the numbers, best/ the best model
    eval_every: int = 0  # 0 = never
    eval_pairs: int = 64  # a fixed subset (drawn from seed) of the test pairs
    eval_data: dict[str, Any] | None = None  # default: data, with split test
    eval_steps: int = 50
    eval_scheduler: str = "ddpm"
    eval_guidance_pose: float = 2.0
    eval_guidance_appearance: float = 2.0
    eval_seed: int = 0  # each pair's noise comes from (eval_seed, source, target), as in cfld sample
    eval_batch_size: int = 8
    eval_size: tuple[int, int] | None = None  # default: the data's evaluation size (256x176 on DeepFashion)
    eval_metrics: tuple[str, ...] | None = None  # default: those whose weights are on the machine at the start
    eval_fid_reference: str | None = None  # FID's reference images (the paper: the training photos)
    select_by: str = "ssim"  # the metric best/ is chosen by: fid, fid_standard, lpips (lower is better), ssim...

    # -- reading -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: object = "training config") -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise InputError(source, "is not a mapping of training options")
        if unknown := sorted(str(k) for k in set(data) - set(fields)):
            raise InputError(source, f"has unknown training options {', '.join(unknown)} "
                                     f"(known: {', '.join(fields)})")
        config = cls(**data)
        config.validate(source)
        config.origin = str(source)  # named by errors found when the run starts (not a field: not saved)
        return config

    @classmethod
    def load(cls, spec: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """A preset name (see :func:`presets`) or a YAML/JSON file of at most 1 MiB (plain data: YAML tags that
        would build Python objects, anchors and aliases are refused), with ``overrides`` (``KEY=VALUE``, see
        :func:`apply_overrides`) applied."""
        path = Path(spec)
        if path_kind(path) is None and str(spec) in presets():
            with resources.as_file(resources.files("cfld") / "assets" / "train" / f"{spec}.yaml") as preset:
                return cls.load(preset, overrides)
        if path_kind(path) != "file":
            raise InputError(spec, f"is neither a training config file nor a preset ({', '.join(presets())})")
        data = (read_json(path, "training config", MAX_CONFIG_BYTES) if path.suffix.lower() == ".json"
                else read_yaml(path, "training config"))
        return cls.from_dict(apply_overrides(data, overrides), source=path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def validate(self, source: object = "training config") -> TrainConfig:
        """Check every option's type and range, normalising lists to tuples and YAML's ``5e-7`` strings to
        numbers; one InputError names the file and the option. Files the options name (weights, datasets)
        are checked when the run starts, before anything is written."""
        c = self
        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "keep_checkpoints", "log_every"):
            setattr(c, name, V.check_int(getattr(c, name), name, source, 1, 10**9))
        c.sample_steps = V.check_int(c.sample_steps, "sample_steps", source, 1, 1000)
        for name in ("warmup_steps", "checkpoint_every", "sample_every"):
            setattr(c, name, V.check_int(getattr(c, name), name, source, 0, 10**9))
        c.num_workers = V.check_int(c.num_workers, "num_workers", source, 0, 256)
        c.seed = V.check_int(c.seed, "seed", source, 0, 2**32 - 1)  # numpy's generators take 32 bits
        if c.max_steps is not None:
            c.max_steps = V.check_int(c.max_steps, "max_steps", source, 1, 10**12)
        if c.torch_threads is not None:
            c.torch_threads = V.check_int(c.torch_threads, "torch_threads", source, 1, 4096)
        c.lr = V.check_float(c.lr, "lr", source, 0, 1, low_open=True)
        c.adam_betas = V.check_floats(c.adam_betas, "adam_betas", source, 2, 0, 0.999999)
        c.adam_eps = V.check_float(c.adam_eps, "adam_eps", source, 0, 1, low_open=True)
        c.warmup_rate = V.check_float(c.warmup_rate, "warmup_rate", source, 0, 1)
        c.decay_rate = V.check_float(c.decay_rate, "decay_rate", source, 0, 1, low_open=True)
        if isinstance(c.decay_epochs, (list, tuple)) and not c.decay_epochs:
            c.decay_epochs = ()
        else:
            c.decay_epochs = V.check_ints(c.decay_epochs, "decay_epochs", source, None, 0, 10**9)
        for name in ("scale_lr", "cubic_sampling", "gradient_checkpointing", "allow_tf32", "condition_checkpointing",
                     "gradient_as_bucket_view", "cast_frozen_weights"):
            V.check_bool(getattr(c, name), name, source)
        V.check_str(c.optimizer, "optimizer", source, OPTIMIZERS)
        if c.cache_latents not in (True, False, "auto"):
            raise InputError(source, f"cache_latents must be true, false or auto, got {V.shown(c.cache_latents)}")
        if c.latent_cache_dir is not None and (not isinstance(c.latent_cache_dir, str)
                                               or not c.latent_cache_dir.strip()):
            raise InputError(source, f"latent_cache_dir must be a folder (or null), got {V.shown(c.latent_cache_dir)}")
        V.check_str(c.trainable, "trainable", source, TRAINABLE)
        V.check_str(c.mixed_precision, "mixed_precision", source, MIXED_PRECISION)
        for name in ("unet", "swin", "init_checkpoint"):
            value = getattr(c, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InputError(source, f"{name} must be a path or hub id (or null), got {V.shown(value)}")
        if isinstance(c.vae, dict):
            check_options(c.vae, f"{source} (vae)")
        elif not isinstance(c.vae, str) or not c.vae.strip():
            raise InputError(source, "vae must be a path or hub id, or the options of a VAE to train, "
                                     f"got {V.shown(c.vae)}")
        if not isinstance(c.data, dict) or not isinstance(c.data.get("kind"), str):
            raise InputError(source,
                             "data must be a mapping with a 'kind' (synthetic, prepared, or a registered dataset)")
        check_data_spec(c.data, f"{source} (data)")
        if c.noise_scheduler is not None:
            make_scheduler("ddpm", V.check_mapping(c.noise_scheduler, "noise_scheduler", source),
                           f"{source} (noise_scheduler)")
        self._validate_evaluation(source)
        if c.unet is None and c.trainable == "paper" and c.init_checkpoint is None:
            raise InputError(source,
                             "a randomly initialised UNet (unet: null) must be trained whole: set trainable: unet")
        model = c.model_config(source)
        latent = c.vae.get("latent_channels", 4) if isinstance(c.vae, dict) else 4
        if isinstance(c.vae, dict) and latent != model.unet.get("in_channels", 4):
            raise InputError(source, f"vae latent_channels ({latent}) must equal the UNet's in_channels "
                                     f"({model.unet.get('in_channels', 4)})")
        return self

    def _validate_evaluation(self, source: object) -> None:
        c = self
        c.eval_every = V.check_int(c.eval_every, "eval_every", source, 0, 10**9)
        c.eval_pairs = V.check_int(c.eval_pairs, "eval_pairs", source, 1, 10**7)
        c.eval_steps = V.check_int(c.eval_steps, "eval_steps", source, 1, 1000)
        c.eval_seed = V.check_int(c.eval_seed, "eval_seed", source, 0, 2**63 - 1)
        c.eval_batch_size = V.check_int(c.eval_batch_size, "eval_batch_size", source, 1, 4096)
        c.eval_guidance_pose = V.check_float(c.eval_guidance_pose, "eval_guidance_pose", source, 0, 100)
        c.eval_guidance_appearance = V.check_float(c.eval_guidance_appearance, "eval_guidance_appearance", source,
                                                   0, 100)
        V.check_str(c.eval_scheduler, "eval_scheduler", source)
        try:
            scheduler_key(c.eval_scheduler)
        except InputError as error:
            raise InputError(source, f"eval_scheduler: {error.source} {error.problem}") from None
        if c.eval_size is not None:
            c.eval_size = V.check_ints(c.eval_size, "eval_size", source, 2, 51, 4096)
        if c.eval_metrics is not None:
            c.eval_metrics = tuple(V.check_str(m, "eval_metrics", source, ALL_METRICS)
                                   for m in (c.eval_metrics if isinstance(c.eval_metrics, (list, tuple))
                                             else [c.eval_metrics]))
            if not c.eval_metrics:
                raise InputError(source,
                                 f"eval_metrics must name at least one of {', '.join(ALL_METRICS)} (or be null)")
        V.check_str(c.select_by, "select_by", source, ALL_METRICS)
        if c.eval_metrics is not None and c.select_by not in c.eval_metrics:
            raise InputError(source,
                             f"select_by {c.select_by} is not one of eval_metrics ({', '.join(c.eval_metrics)})")
        if c.eval_fid_reference is not None and (not isinstance(c.eval_fid_reference, str)
                                                 or not c.eval_fid_reference.strip()):
            raise InputError(source, "eval_fid_reference must be a folder of images (or null), "
                                     f"got {V.shown(c.eval_fid_reference)}")
        if c.eval_data is not None:
            if not isinstance(c.eval_data, dict) or not isinstance(c.eval_data.get("kind"), str):
                raise InputError(source, "eval_data must be a mapping with a 'kind', like data (or null)")
            check_data_spec(c.eval_data, f"{source} (eval_data)")

    def model_config(self, source: object = "training config") -> CFLDConfig:
        """The :class:`CFLDConfig` of ``model``."""
        spec = self.model
        if isinstance(spec, dict):
            spec = dict(spec)
            preset = spec.pop("preset", "sd15")
            if preset not in MODEL_PRESETS:
                raise InputError(f"{source} (model)",
                                 f"preset must be {' or '.join(MODEL_PRESETS)}, got {V.shown(preset)}")
            base = CFLDConfig.preset(preset).to_dict()
            if isinstance(spec.get("unet"), dict):  # UNet options change the preset's UNet, not replace it
                spec["unet"] = base["unet"] | spec["unet"]
            return CFLDConfig.from_dict(base | spec, source=f"{source} (model)")
        if not isinstance(spec, str):
            raise InputError(source, f"model must be sd15, tiny, a config.json or a mapping, got {V.shown(spec)}")
        if spec in MODEL_PRESETS:
            return CFLDConfig.preset(spec)
        path = Path(spec)
        # a checkpoint folder, a pipeline folder in diffusers' layout, or one of cfld's older layout
        for candidate in (path / "config.json", path / "model" / "config.json", path / "cfld" / "config.json"):
            if path.is_dir() and candidate.is_file():
                return CFLDConfig.from_json(candidate)
        if not path.is_file():
            raise InputError(f"{source} (model)", f"{spec} is neither a preset ({', '.join(MODEL_PRESETS)}) "
                                                  "nor a model folder or its config.json")
        return CFLDConfig.from_json(path)


def apply_overrides(data: Any, overrides: Sequence[str]) -> Any:
    """``data`` (a config's mapping) with each ``KEY=VALUE`` of ``overrides`` set: ``VALUE`` is read as YAML (``5e-6``,
    ``null``, ``[256, 176]``, text; bounded and free of anchors and aliases as a config file is: see
    :func:`cfld.io.reading.parse_yaml`), a dotted ``KEY`` reaches into a mapping (``data.root=DIR``). Unknown keys
    are refused later, by :meth:`TrainConfig.from_dict`, with the others."""
    if not overrides or not isinstance(data, dict):
        return data
    data = dict(data)
    for item in overrides:
        key, sep, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.strip() for part in parts):
            raise InputError(f"--set {item}", "must be KEY=VALUE, e.g. --set data.root=data/mine or --set lr=1e-5")
        try:
            value = parse_yaml(text, f"--set {key.strip()}", "training option") if text.strip() else ""
        except YAMLSyntaxError:
            value = text  # not YAML: the text itself
        if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
            value = text.strip()  # YAML 1.1 reads no/yes/on/off as booleans: mixed_precision=no means "no"
        target = data
        for part in parts[:-1]:
            inner = target.get(part)
            if inner is None:
                inner = {}
            elif not isinstance(inner, dict):
                raise InputError(f"--set {item}", f"{part} is not a mapping, so it has no {parts[-1]!r} to set")
            target[part] = inner = dict(inner)
            target = inner
        target[parts[-1]] = value
    return data


def presets() -> list[str]:
    """Names of the bundled training configs (``src/cfld/assets/train/*.yaml``)."""
    folder = resources.files("cfld") / "assets" / "train"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
