"""Where the metric networks' weights come from: a path you give, or torchvision's cache.

Nothing is downloaded unless asked (``allow_download=True`` / ``--download-weights``); a missing file
is one sentence naming the file, where it goes and where to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ..state_dict import load_torch_file


def torchvision_cache_dir() -> Path:
    """torchvision's weight cache: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_torchvision_weights(url: str, path: str | os.PathLike | None, what: str, option: str,
                             allow_download: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weight file, read with ``weights_only=True``.

    ``path`` (a file the user gave) wins; otherwise the file named by ``url`` in torchvision's cache,
    downloaded there first only if ``allow_download``.
    """
    filename = url.rsplit("/", 1)[-1]
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise InputError(file, f"no such file; it should be the {what} weights {filename} ({url})")
    else:
        file = torchvision_cache_dir() / filename
        if not file.is_file():
            if not allow_download:
                raise InputError(
                    filename,
                    f"the {what} weights are missing: download {url} into {file.parent}/ (torchvision's cache), "
                    f"pass {option} PATH, or allow the download (--download-weights / allow_download=True)")
            torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    state = load_torch_file(file, f"{what} weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(file, f"is not a state dict of tensors, so not the {what} weights")
    return state
