"""State-dict plumbing shared by every loader: prefixes, and strict key checks with one clear error."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import InputError


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


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: object, assign: bool = False) -> None:
    """``module.load_state_dict`` after :func:`check_keys`, so a bad checkpoint is one clear error."""
    check_keys(module.state_dict(), state_dict, source)
    module.load_state_dict(state_dict, assign=assign)


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str, optional: bool = False) -> dict[str, torch.Tensor]:
    """The entries under ``prefix``, with it removed. With ``optional``, a state dict in which no key has
    the prefix (already stripped) is returned whole."""
    if optional and not any(key.startswith(prefix) for key in state_dict):
        return dict(state_dict)
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state_dict.items()}
