"""State-dict plumbing shared by every loader: safe reading, prefixes, and strict key and value checks with
one clear error each."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import InputError
from .io import path_kind

REFUSED_PICKLE = (
    "holds Python code or objects ({}) that safe loading (torch.load with weights_only=True) refuses to run; cfld "
    "never executes code from a weight file: re-save it as a plain dict of tensors, or as safetensors"
)


def load_torch_file(path: str | os.PathLike, what: str = "PyTorch weight file") -> Any:
    """A ``torch.save``-d file (``.bin``/``.pt``/``.pth``/``.ckpt``) unpickled safely: tensors and plain containers
    only, never code. Every failure is one InputError naming the file; a file that would run code says so."""
    path = Path(path)
    kind = path_kind(path)
    if kind != "file":
        raise InputError(path, f"no such file (the {what})" if kind is None else f"is a {kind}, not the {what}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it is about to refuse
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused:
            raise InputError(path, REFUSED_PICKLE.format(refused[1])) from None
        raise InputError(path, f"cannot be read as a {what}: it is not a file written by torch.save, or it is "
                               "damaged") from None
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError ... for damaged files
        raise InputError(path, f"cannot be read as a {what} ({type(error).__name__}: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0][:200] if text else "") or type(error).__name__


def check_finite(state_dict: Mapping[str, torch.Tensor], source: object) -> None:
    """Raise an InputError if a floating-point tensor holds NaN or infinity (damaged weights, or a run that
    diverged): such a model would silently draw black images."""
    def finite(value: torch.Tensor) -> bool:
        # a finite sum means every element is finite (inf or NaN anywhere makes it inf or NaN), and a sum is
        # ~25x faster than an element-wise test; only a sum that overflowed or is NaN needs that test
        wide = torch.float32 if value.element_size() < 4 else None  # fp16 sums overflow at 65504
        return bool(torch.isfinite(value.sum(dtype=wide))) or bool(torch.isfinite(value).all())

    bad = [key for key, value in state_dict.items()
           if isinstance(value, torch.Tensor) and value.is_floating_point() and not finite(value)]
    if bad:
        raise InputError(source, "is damaged: " + listing("tensors hold NaN or infinite values", bad))


def listing(kind: str, keys: list[str], shown: int = 5) -> str:
    """``"3 missing keys (a, b, c)"``: the count and the first ``shown`` names."""
    more = f", ... ({len(keys)} in all)" if len(keys) > shown else ""
    return f"{len(keys)} {kind} ({', '.join(keys[:shown])}{more})"


def check_keys(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], source: object) -> None:
    """Raise an InputError unless ``given`` has exactly the keys and shapes of ``expected``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        listing(kind, keys)
        for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes))
        if keys
    ]
    if problems:
        raise InputError(source, "does not fit the model: " + "; ".join(problems))


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: object,
                assign: bool = False) -> None:
    """``module.load_state_dict`` after :func:`check_keys`, so a bad checkpoint is one clear error."""
    check_keys(module.state_dict(), state_dict, source)
    module.load_state_dict(state_dict, assign=assign)


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str,
                 optional: bool = False) -> dict[str, torch.Tensor]:
    """The entries under ``prefix``, with it removed. With ``optional``, a state dict in which no key has
    the prefix (already stripped) is returned whole."""
    if optional and not any(key.startswith(prefix) for key in state_dict):
        return dict(state_dict)
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state_dict.items()}
