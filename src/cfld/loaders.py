"""Loading and saving a :class:`cfld.CFLDPipeline`, as diffusers' loader mixins add them to its pipelines.

``from_pretrained`` reads every layout of :mod:`cfld.model_folders` (diffusers' own through diffusers, the older
ones component by component), checks the parts fit together and their weights are finite; ``save_pretrained``
writes diffusers' layout atomically with a model card (:mod:`cfld.model_card`), and ``push_to_hub`` uploads ours
where the repository has no card.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, model_folders
from .errors import InputError, one_line
from .io import atomic_folder
from .model_card import is_blank, model_card, provenance_of
from .model_names import hub_problem, quiet_hub, resolve_model_name
from .schedulers import check_scheduler
from .state_dict import check_finite


class CFLDLoadersMixin:
    """``from_pretrained`` / ``save_pretrained`` / the model card of a push, over diffusers' ``DiffusionPipeline``."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, base: str | os.PathLike | None = None,
                        config=None, device: str | torch.device | None = None, **kwargs: Any):
        """A local folder or Hub id of any layout of :mod:`cfld.model_folders` (``"demo"``: the demo model shipped
        with cfld). diffusers' layout is loaded by diffusers
        (``torch_dtype``, ``variant``, ``cache_dir``, ``local_files_only`` ...); the released original checkpoints and
        bare checkpoints take the VAE and noise schedule from ``base`` (Stable Diffusion 1.5: hub id, diffusers
        folder or single file; default the hub id), the original ones their sizes from ``config``."""
        name = os.fspath(resolve_model_name(pretrained_model_name_or_path))
        hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
        folder, kind = model_folders.locate(name, **hub)
        if kind == "diffusers":
            if folder.is_dir():
                model_folders.check_diffusers_folder(folder, kwargs.get("variant"))
            try:
                with quiet_hub() if not folder.is_dir() else contextlib.nullcontext():
                    pipe = super().from_pretrained(name, **kwargs)
            except (InputError, MemoryError):
                raise
            except Exception as error:  # noqa: BLE001 - diffusers and huggingface_hub raise many kinds
                problem = None if folder.is_dir() else hub_problem(error)
                raise InputError(name, problem or f"cannot be loaded as a CFLD pipeline ({type(error).__name__}: "
                                                  f"{one_line(error, 200)})") from None
            for part, module in (("model", pipe.model), ("unet", pipe.unet)):
                check_finite(module.state_dict(), f"{name} ({part})")
            pipe.provenance = provenance_of(folder / "README.md") if folder.is_dir() else f"from the Hub: {name}"
        else:
            dtype = kwargs.pop("torch_dtype", None)
            if unknown := sorted(set(kwargs) - set(hub)):
                raise InputError(name, f"is a model folder of cfld's {kind} layout, which {', '.join(unknown)} does "
                                       "not apply to (re-save it with save_pretrained for diffusers' layout)")
            parts, provenance = model_folders.components(folder, kind, base, config)
            pipe = cls(**parts).to(dtype=dtype) if dtype is not None else cls(**parts)
            pipe.provenance = provenance
            pipe.register_to_config(_name_or_path=name)
        check_parts(pipe, name)
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True,
                        variant: str | None = None, *, overwrite: bool = False,
                        extra_files: dict[str, str] | None = None, **kwargs: Any) -> Path:
        """diffusers' ``save_pretrained`` (``variant``, ``max_shard_size``, ``push_to_hub``), written into a temporary
        folder beside ``save_directory`` and renamed into place, so an interrupted save never leaves half a model;
        an existing folder is replaced only with ``overwrite``. Adds a model card (``README.md``) and
        ``extra_files`` (name -> text). Weights are always safetensors."""
        if not safe_serialization:
            raise InputError("safe_serialization",
                             "cfld writes safetensors only (pickled weights can run code when read)")
        target = Path(save_directory)
        # an empty folder holds nothing to lose
        overwrite = overwrite or (target.is_dir() and not any(target.iterdir()))
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", target.name)
        with atomic_folder(target, overwrite=overwrite) as tmp:
            if is_blank(tmp / "README.md"):  # diffusers writes its card only when it pushes
                (tmp / "README.md").write_text(model_card(self, os.fspath(save_directory)), encoding="utf-8")
            for file_name, text in (extra_files or {}).items():
                (tmp / file_name).write_text(text, encoding="utf-8")
            super().save_pretrained(str(tmp), safe_serialization=True, variant=variant, **kwargs)
        return target

    def _upload_folder(self, working_dir, repo_id: str, **kwargs: Any):
        """Before diffusers uploads, it writes the Hub repository's own card there, or a blank one where it has
        none: a blank one becomes ours."""
        readme = Path(working_dir) / "README.md"
        if is_blank(readme):
            readme.write_text(model_card(self, repo_id), encoding="utf-8")
        return super()._upload_folder(working_dir, repo_id, **kwargs)


def check_parts(pipe, source: object) -> None:
    """Refuse parts that do not fit together (e.g. a VAE whose latents the UNet cannot take)."""
    latent, unet, config = pipe.vae.config.latent_channels, pipe.unet.config, pipe.model.config
    if not (latent == unet.in_channels == unet.out_channels):
        raise InputError(source, f"holds a VAE with {latent} latent channels but a UNet taking {unet.in_channels} "
                                 f"and giving {unet.out_channels}; they do not belong together")
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if any(s % factor for s in config.image_size):
        raise InputError(source, f"has an image size {config.image_size} that its VAE does not divide into "
                                 f"latents (a multiple of {factor} is needed)")
    check_scheduler(pipe.scheduler, source)
    checkpoint.check_runnable(config, pipe.latent_size, source)
