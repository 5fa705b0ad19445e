"""Noise schedulers by name: any diffusers scheduler built from the model's DDPM training config.

CFLD is trained as a DDPM (T = 1000, SD 1.5's scaled-linear betas) and the paper samples with DDPM in
50 steps. Because every diffusers scheduler can be built from the same training config, faster samplers
(DDIM, DPM-Solver++, UniPC, Euler) are one name away; only DDPM reproduces the paper's numbers.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError

# user-facing name -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
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


def make_scheduler(name: str | Any = "ddpm", config: dict[str, Any] | None = None):
    """A diffusers scheduler called ``name`` (see :data:`SCHEDULERS`) from a training ``config``.

    ``name`` may also be a scheduler instance, returned as is. Config keys that a scheduler class does
    not know are ignored by diffusers, so one DDPM config serves every class.
    """
    if not isinstance(name, str):
        return name
    import diffusers

    key = name.lower().replace("_", "-")
    aliases = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpmpp": "dpm++", "euler-ancestral": "euler-a"}
    key = aliases.get(key, key)
    if key not in SCHEDULERS:
        raise InputError(f"scheduler {name!r}", f"is not one of {', '.join(SCHEDULERS)}")
    class_name, extra = SCHEDULERS[key]
    base = {k: v for k, v in (config or SD15_SCHEDULER_CONFIG).items() if not k.startswith("_")}
    return getattr(diffusers, class_name).from_config({**base, **extra})
