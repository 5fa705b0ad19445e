"""TrainConfig: one training run's recipe (model, initial weights, data, optimisation, checkpoints), read
from YAML or JSON, with the bundled presets.

Presets (``cfld train --config NAME`` or a file; ``cfld train --list-presets``):

* ``deepfashion-256`` / ``deepfashion-512``: the paper (Sec. 4.1): Stable Diffusion 1.5 UNet and VAE,
  Swin-B ImageNet-22k, DeepFashion at 256x176 / 512x352 (trained at 256x256 / 512x512 latents' image size
  as the original stretches them), total batch 224, 100 epochs, Adam, lr 5e-7 x total batch,
  1,000 warmup steps, x0.1 at epoch 50, 20 % condition dropout, fp16.
* ``synthetic-cpu``: the test-size model on synthetic persons, on a CPU in minutes. Beyond the paper it
  (1) trains the whole tiny UNet (there is no pretrained Stable Diffusion at that size), and (2) first
  trains a tiny VAE on the synthetic persons (there is no pretrained VAE at that size either).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..models.config import CFLDConfig

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
    init_checkpoint: str | None = None  # our checkpoint folder to start from instead (fine-tuning)
    trainable: str = "paper"
    # data: {"kind": "synthetic", ...SyntheticPersons arguments}, {"kind": "prepared", "root": DIR, ...
    # PoseTransferDataset arguments} or {"kind": "package.module:Class", ...}
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
    gradient_checkpointing: bool = True
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

    # -- reading -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: object = "training config") -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise InputError(source, "is not a mapping of training options")
        if unknown := sorted(set(data) - set(fields)):
            raise InputError(source, f"has unknown training options {', '.join(unknown)} "
                                     f"(known: {', '.join(fields)})")
        values = dict(data)
        defaults = cls()
        for name, value in values.items():  # YAML 1.1 reads 5e-7 (no dot) as a string
            if isinstance(getattr(defaults, name), float) and isinstance(value, str):
                try:
                    values[name] = float(value)
                except ValueError:
                    raise InputError(source, f"{name} must be a number, got {value!r}") from None
        for name in ("adam_betas", "decay_epochs"):
            if name in values:
                if not isinstance(values[name], (list, tuple)):
                    raise InputError(source, f"{name} must be a list, got {values[name]!r}")
                values[name] = tuple(values[name])
        config = cls(**values)
        config.validate(source)
        return config

    @classmethod
    def load(cls, spec: str | Path) -> "TrainConfig":
        """A preset name (see :func:`presets`) or a YAML/JSON file."""
        path = Path(spec)
        if not path.exists() and str(spec) in presets():
            with resources.as_file(resources.files("cfld") / "assets" / "train" / f"{spec}.yaml") as preset:
                return cls.load(preset)
        if not path.is_file():
            raise InputError(spec, f"is neither a training config file nor a preset ({', '.join(presets())})")
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
            raise InputError(path, f"cannot be read as a YAML/JSON training config ({error})") from None
        return cls.from_dict(data, source=path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def validate(self, source: object = "training config") -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
                raise InputError(source, f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")

        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "keep_checkpoints", "log_every", "sample_steps"):
            positive(name)
        for name in ("warmup_steps", "checkpoint_every", "sample_every", "num_workers", "seed"):
            positive(name, allow_zero=True)
        if self.max_steps is not None:
            positive("max_steps")
        if self.torch_threads is not None:
            positive("torch_threads")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InputError(source, f"lr must be a positive number, got {self.lr!r}")
        if self.trainable not in TRAINABLE:
            raise InputError(source, f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise InputError(source, f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        if not isinstance(self.data, dict) or "kind" not in self.data:
            raise InputError(source, "data must be a mapping with a 'kind' (synthetic, prepared, or package.module:Class)")
        if self.unet is None and self.trainable == "paper" and self.init_checkpoint is None:
            raise InputError(source, "a randomly initialised UNet (unet: null) must be trained whole: set trainable: unet")

    def model_config(self, source: object = "training config") -> CFLDConfig:
        """The :class:`CFLDConfig` of ``model``."""
        spec = self.model
        if isinstance(spec, dict):
            spec = dict(spec)
            base = CFLDConfig.preset(spec.pop("preset", "sd15")).to_dict()
            return CFLDConfig.from_dict(base | spec, source=f"{source} (model)")
        if str(spec) in ("sd15", "tiny"):
            return CFLDConfig.preset(str(spec))
        return CFLDConfig.from_json(spec)


def presets() -> list[str]:
    """Names of the bundled training configs (``src/cfld/assets/train/*.yaml``)."""
    folder = resources.files("cfld") / "assets" / "train"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
