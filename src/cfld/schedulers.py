"""Noise schedulers by name: any diffusers scheduler built from the model's DDPM training config.

CFLD is trained as a DDPM (T = 1000, SD 1.5's scaled-linear betas) and the paper samples with DDPM in
50 steps. Because every diffusers scheduler can be built from the same training config, faster samplers
(DDIM, DPM-Solver++, UniPC, Euler) are one name away; only DDPM reproduces the paper's numbers.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError, one_line

# user-facing name -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++-karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
}

# SD 1.5's training schedule, the one CFLD keeps (used when no scheduler config is at hand).
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


ALIASES = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpmpp": "dpm++", "euler-ancestral": "euler-a"}


def scheduler_key(name: str) -> str:
    """The :data:`SCHEDULERS` key of a user's scheduler name (any case, ``_`` or ``-``, common aliases)."""
    key = str(name).lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in SCHEDULERS:
        raise InputError(f"scheduler {str(name)[:40]!r}", f"is not one of {', '.join(SCHEDULERS)}")
    return key


# what a training schedule's entries must be (others are passed on; diffusers ignores those a class lacks)
_CHOICES = {
    "beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    "prediction_type": ("epsilon", "v_prediction", "sample"),
    "timestep_spacing": ("leading", "trailing", "linspace"),
}


def check_schedule(config: Any, source: object = "scheduler config") -> dict[str, Any]:
    """A DDPM training schedule (``scheduler_config.json``, a training config's ``noise_scheduler``) checked
    entry by entry: one InputError naming ``source`` and the entry instead of an error deep in diffusers."""
    if not isinstance(config, dict):
        raise InputError(source, f"must be a mapping of scheduler settings, got {type(config).__name__}")

    def fail(key: str, wanted: str) -> None:
        raise InputError(source, f"{key} must be {wanted}, got {config[key]!r}")

    for key, value in config.items():
        if key.startswith("_"):
            continue
        is_int = isinstance(value, int) and not isinstance(value, bool)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if key == "num_train_timesteps" and not (is_int and 1 <= value <= 100_000):
            fail(key, "a whole number from 1 to 100000")
        elif key in ("beta_start", "beta_end") and not (is_number and 0 < value < 1):
            fail(key, "a number between 0 and 1")
        elif key == "steps_offset" and not (is_int and 0 <= value < 1000):
            fail(key, "a whole number from 0 to 999")
        elif key in ("clip_sample", "set_alpha_to_one") and not isinstance(value, bool):
            fail(key, "true or false")
        elif key in _CHOICES and value not in _CHOICES[key]:
            fail(key, "one of " + ", ".join(_CHOICES[key]))
        elif key == "trained_betas" and value is not None:
            fail(key, "null (cfld reads schedules by their betas' start, end and shape)")
    return config


def make_scheduler(name: str | Any = "ddpm", config: dict[str, Any] | None = None, source: object = "scheduler config"):
    """A diffusers scheduler called ``name`` (see :data:`SCHEDULERS`) from a training ``config``.

    ``name`` may also be a scheduler instance, returned as is. Config keys that a scheduler class does
    not know are ignored by diffusers, so one DDPM config serves every class. A config diffusers cannot
    build, or whose noise levels are not all in (0, 1), is an InputError naming ``source``.
    """
    if not isinstance(name, str):
        return name
    import diffusers
    import torch

    class_name, extra = SCHEDULERS[scheduler_key(name)]
    base = {k: v for k, v in check_schedule(config or SD15_SCHEDULER_CONFIG, source).items() if not k.startswith("_")}
    try:
        scheduler = getattr(diffusers, class_name).from_config({**base, **extra})
    except Exception as error:  # noqa: BLE001 - diffusers raises ValueError, NotImplementedError, TypeError ...
        raise InputError(source, f"cannot make a {class_name} ({type(error).__name__}: {one_line(error)})") from None
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is not None and not (torch.isfinite(alphas).all() and (alphas > 0).all() and (alphas <= 1).all()):
        raise InputError(source, "gives noise levels outside (0, 1]; check beta_start, beta_end and beta_schedule")
    return scheduler


def check_scheduler(scheduler: Any, source: object) -> None:
    """A loaded scheduler's training schedule checked as :func:`make_scheduler` checks one it builds."""
    check_schedule(dict(scheduler.config), source)
    import torch

    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is not None and not (torch.isfinite(alphas).all() and (alphas > 0).all() and (alphas <= 1).all()):
        raise InputError(source, "has a scheduler whose noise levels lie outside (0, 1]; check beta_start, beta_end "
                                 "and beta_schedule")


def scheduler_name(scheduler: Any, default: str = "ddpm") -> str:
    """Our name of a diffusers scheduler (see :data:`SCHEDULERS`), ``default`` for others."""
    config = getattr(scheduler, "config", {})
    for name, (class_name, extra) in SCHEDULERS.items():
        if type(scheduler).__name__ == class_name and all(config.get(k) == v for k, v in extra.items()):
            return name
    return default
