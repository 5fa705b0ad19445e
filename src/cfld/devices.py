"""Which device and precision a command runs on: checked before anything is loaded, one sentence when it cannot be."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch device that exists here; ``None`` is CUDA when available, else the CPU."""
    import torch

    if device is None or (isinstance(device, str) and not device.strip()):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = f"device {str(device)!r}"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(name, "is not a device torch knows; use cpu, cuda, cuda:1, mps ...") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(name, "is not available: torch finds no CUDA GPU on this machine (use --device cpu)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(name, f"does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif resolved.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(name, "is not available: this machine has no Apple GPU (use --device cpu)")
    elif resolved.type != "cpu":
        backend = getattr(torch, resolved.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise InputError(name, "is not available on this machine (use cpu, or cuda where there is a GPU)")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The weights' precision: ``fp32``/``fp16``/``bf16`` (or a torch dtype); by default fp16 on CUDA, else
    the weights' own (fp32)."""
    import torch

    if dtype is None:
        return torch.float16 if device.type == "cuda" else None
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r}", f"is not one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])
