"""The model folders cfld reads, and the components of those that diffusers cannot load itself.

:meth:`cfld.CFLDPipeline.from_pretrained` takes any of these, local or on the Hugging Face Hub:

* ``diffusers``: what ``save_pretrained`` writes, diffusers' own layout. ``model_index.json`` names each
  component: ``"model": ["cfld", "CFLDModel"]`` (``model/``: ``config.json`` + ``diffusion_pytorch_model.safetensors``),
  ``"unet": ["diffusers", "UNet2DConditionModel"]`` (a plain UNet folder: the HGA processors and the pose adapter's
  residuals are put on at load), ``vae/``, ``scheduler/``; diffusers loads it (variants, ``torch_dtype``, the Hub
  cache, ``local_files_only``).
* ``cfld-0.1``: what cfld 0.1's ``save_pretrained`` wrote: ``model_index.json`` with ``guidance_type`` and ``scheduler``
  (our name of it), ``cfld/`` (``config.json``, ``model.safetensors``, ``unet.safetensors``), ``vae/``, ``scheduler/``.
* ``checkpoint``: a bare checkpoint (cfld 0.1's ``cfld convert``, ``cfld train``'s ``checkpoints/step-N``):
  ``config.json`` + ``model.safetensors`` + ``unet.safetensors``; VAE and noise schedule from ``base``.
* ``original``: the released checkpoints of github.com/YanzuoLu/CFLD (``pytorch_model.bin`` +
  ``pytorch_model_1.bin``, read with ``weights_only=True``); VAE and noise schedule from ``base``.

The last three give the pipeline's components here (:func:`components`); saving such a pipeline writes the first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download, snapshot_download

from . import checkpoint, guidance
from .errors import InputError, one_line
from .io import path_kind, read_json_object
from .model_names import UNREACHABLE, hub_problem, looks_like_hub_id, quiet_hub
from .models.cfld import CFLDModel
from .models.config import CFLDConfig
from .schedulers import check_schedule, make_scheduler, scheduler_key
from .state_dict import check_finite, check_keys
from .validation import shown

MODEL_INDEX = "model_index.json"
LAYOUTS = ("diffusers", "cfld-0.1", "checkpoint", "original")
NOT_A_MODEL = (
    "is not a CFLD model: expected a folder written by CFLDPipeline.save_pretrained / `cfld convert` "
    "(model_index.json, model/, unet/, vae/, scheduler/), a Hugging Face Hub id holding one, or the released original "
    "checkpoints (pytorch_model.bin + pytorch_model_1.bin, linked from the README of github.com/YanzuoLu/CFLD); "
    "see docs/checkpoints-datasets.md"
)


def layout(folder: Path) -> str | None:
    """Which of :data:`LAYOUTS` a local folder holds, or None."""
    if checkpoint.is_original_checkpoint(folder):
        return "original"
    if (folder / MODEL_INDEX).is_file():
        return "cfld-0.1" if (folder / "cfld").is_dir() and not (folder / "model").is_dir() else "diffusers"
    if (folder / checkpoint.CONFIG).is_file() and (folder / checkpoint.MODEL).is_file():
        return "checkpoint"
    return None


def locate(name: str, **hub_kwargs: Any) -> tuple[Path, str]:
    """Where the model called ``name`` is and which layout it has: a local folder, or a Hub repository (``hub_kwargs``:
    ``cache_dir``, ``revision``, ``token``, ``local_files_only``); one of diffusers' layout is left to diffusers to
    fetch (its path is then the Hub id), one of an older layout is downloaded whole."""
    folder = Path(name)
    if path_kind(folder) is None and looks_like_hub_id(name):
        if hub_layout(name, **hub_kwargs) == "diffusers":
            return folder, "diffusers"
        folder = hub_snapshot(name, **hub_kwargs)
    elif path_kind(folder) != "folder":
        raise InputError(name, NOT_A_MODEL)
    kind = layout(folder)
    if kind is None:
        raise InputError(name, NOT_A_MODEL)
    return folder, kind


COMPONENTS = {"model": ("cfld", "CFLDModel"), "unet": ("diffusers", "UNet2DConditionModel"),
              "vae": ("diffusers", "AutoencoderKL")}
"""What model_index.json must name for each network of a CFLD pipeline (the scheduler: any diffusers scheduler)."""


def check_diffusers_folder(folder: Path, variant: str | None = None) -> None:
    """A local folder of diffusers' layout checked before diffusers loads it, reading only its JSON files and the
    safetensors headers: what diffusers would fail on deep inside, or not at all (a damaged index or config, weights
    that do not fit the sizes the config gives, a model of absurd size), is one InputError naming the file."""
    import diffusers

    index_file = folder / MODEL_INDEX
    index = read_json_object(index_file, "CFLD pipeline's model_index.json")
    for name in (*COMPONENTS, "scheduler"):
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise InputError(index_file, f"must name the {name} component as [library, class], got {shown(entry)}")
        library, class_name = entry
        wanted = COMPONENTS.get(name)
        if wanted is not None and (library.split(".")[0], class_name) != wanted:
            raise InputError(index_file, f"names {entry} as the {name}; a CFLD pipeline's is {list(wanted)}")
        scheduler = getattr(diffusers, class_name, None) if library == "diffusers" else None
        if wanted is None and not (isinstance(scheduler, type) and issubclass(scheduler, diffusers.SchedulerMixin)):
            raise InputError(index_file, f"names {entry} as the scheduler, which is not a diffusers scheduler")
    guidance_type = index.get("guidance_type", "uc_down_full")
    if guidance_type not in guidance.GUIDANCE_TYPES:
        raise InputError(index_file, f"guidance_type must be one of {', '.join(guidance.GUIDANCE_TYPES)}, got "
                                     f"{shown(guidance_type)}")
    schedule = folder / "scheduler" / "scheduler_config.json"
    if path_kind(schedule) is None:
        raise InputError(schedule, "is missing")
    check_schedule(read_json_object(schedule, "scheduler config"), schedule)
    config_file = folder / "model" / "config.json"
    config = CFLDConfig.from_json(config_file)
    model, unet = checkpoint.build_models(config, config_file, materialize=False)  # shapes only; absurd sizes refused
    weights = "diffusion_pytorch_model" + (f".{variant}" if variant else "") + ".safetensors"
    for part, module in (("model", model), ("unet", unet)):
        file = folder / part / weights
        sharded = (folder / part / (file.name[: -len(".safetensors")] + ".safetensors.index.json")).is_file()
        if not sharded:  # a sharded model is left to diffusers
            check_keys(module.state_dict(), checkpoint.safetensors_shapes(file), file)


def hub_layout(repo_id: str, **hub_kwargs: Any) -> str:
    """The layout of a Hub repository, from its ``model_index.json`` alone ("diffusers" also when it has none to
    read: diffusers then says why it cannot be loaded); ``hub_kwargs``: ``cache_dir``, ``revision``, ``token``,
    ``local_files_only``. A repository that is not there (or gated) is one InputError saying so."""
    try:
        with quiet_hub():
            index = read_json_object(Path(hf_hub_download(repo_id, MODEL_INDEX, **hub_kwargs)), "model_index.json")
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - no model_index.json: an original or bare checkpoint, or nothing loadable
        problem = hub_problem(error)
        if problem is not None and problem not in UNREACHABLE:  # no such repository: no snapshot to try either
            raise InputError(repo_id, problem) from None
        return "snapshot"
    return "cfld-0.1" if "guidance_type" in index and "model" not in index else "diffusers"


def hub_snapshot(repo_id: str, **hub_kwargs: Any) -> Path:
    """A whole Hub repository (a layout diffusers' download does not know), downloaded once into huggingface_hub's
    cache, or one InputError saying why not."""
    try:
        with quiet_hub():
            return Path(snapshot_download(repo_id, **hub_kwargs))
    except Exception as error:  # noqa: BLE001 - offline, unknown repository, gated, network errors ...
        raise InputError(repo_id, hub_problem(error) or "is not a local folder and cannot be downloaded from the "
                                  f"Hugging Face Hub ({type(error).__name__}: {one_line(error, 200)})") from None


def components(folder: Path, kind: str, base: str | os.PathLike | None = None,
               config: CFLDConfig | str | os.PathLike | None = None) -> tuple[dict[str, Any], str]:
    """The pipeline's components (``model``, ``unet``, ``vae``, ``scheduler``, ``guidance_type``) of a folder of an
    older ``kind`` (not "diffusers"), and one line on where they came from (the model card's provenance).

    ``base``: Stable Diffusion 1.5 (hub id, diffusers folder or single file; default the hub id) for the VAE and
    noise schedule of the ``checkpoint`` and ``original`` layouts. ``config``: the original layout's sizes (see
    :func:`original_components`).
    """
    if kind == "original":
        return (original_components(folder, base, config),
                f"converted from the original CFLD checkpoints in {folder.name}/")
    if kind == "checkpoint":
        model, unet = checkpoint.load_checkpoint(folder)
        return ({"model": model, "unet": unet, **base_components(base)},
                f"converted from cfld's checkpoint {folder.name}/")
    index = read_json_object(folder / MODEL_INDEX, "part of a CFLD model folder")
    name = _index_entry(index, "scheduler", "ddpm", folder)
    try:
        scheduler_key(name)
    except InputError as error:
        raise InputError(folder / MODEL_INDEX, f"{error.source} {error.problem}") from None
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    if path_kind(scheduler_file) is None:
        raise InputError(scheduler_file, "is missing")
    scheduler = make_scheduler(name, read_json_object(scheduler_file, "part of a CFLD model folder"),
                               source=scheduler_file)
    guidance_type = _index_entry(index, "guidance_type", "uc_down_full", folder)
    if guidance_type not in guidance.GUIDANCE_TYPES:
        raise InputError(folder / MODEL_INDEX, f"guidance_type must be one of {', '.join(guidance.GUIDANCE_TYPES)}, "
                                               f"got {guidance_type!r}")
    from diffusers import AutoencoderKL

    model, unet = checkpoint.load_checkpoint(folder / "cfld")
    vae = checkpoint.load_sd_component(AutoencoderKL, folder, "vae", {})
    parts = {"model": model, "unet": unet, "vae": vae, "scheduler": scheduler, "guidance_type": guidance_type}
    return parts, f"re-saved from a cfld 0.1 model folder ({folder.name}/)"


def model_and_unet(folder: str | os.PathLike, config: CFLDConfig):
    """The condition model and the UNet (prepared for CFLD) of any model folder training can start from
    (``init_checkpoint``): a pipeline folder of any layout (``save_pretrained``, ``cfld train``'s ``model/`` or
    ``best/``, ``cfld convert``), a bare checkpoint (``checkpoints/step-N``), or the released original checkpoints
    (read with ``config``). Nothing but the two networks is read."""
    folder = Path(folder)
    kind = path_kind(folder)
    if kind != "folder":
        raise InputError(folder, ("no such folder" if kind is None else f"is a {kind}, not a folder")
                                 + "; give a model folder (save_pretrained, cfld train's model/, cfld convert) or "
                                 f"the released checkpoints ({checkpoint.ORIGINAL_MODEL} + {checkpoint.ORIGINAL_UNET})")
    kind = layout(folder)
    if kind == "original":
        return checkpoint.load_original(folder, config)
    if kind in ("checkpoint", "cfld-0.1"):
        return checkpoint.load_checkpoint(folder / "cfld" if kind == "cfld-0.1" else folder)
    if kind is None:
        raise InputError(folder, NOT_A_MODEL)
    from diffusers import UNet2DConditionModel

    try:
        model = CFLDModel.from_pretrained(folder / "model")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    except Exception as error:  # noqa: BLE001 - diffusers raises OSError, ValueError, SafetensorError ...
        raise InputError(folder, f"cannot be read as a CFLD model folder ({type(error).__name__}: "
                                 f"{one_line(error, 200)})") from None
    for part, module in (("model", model), ("unet", unet)):
        check_finite(module.state_dict(), folder / part)
    return model, CFLDModel.prepare_unet(unet)


def original_components(folder: Path, base: str | os.PathLike | None = None,
                        config: CFLDConfig | str | os.PathLike | None = None) -> dict[str, Any]:
    """The released CFLD checkpoints plus Stable Diffusion 1.5's VAE and DDPM schedule.

    ``base``: where SD 1.5 lives (hub id, diffusers folder, or single file; default the hub id); its ``scheduler/``
    and ``unet/config.json`` are used when present. ``config``: a :class:`CFLDConfig`, our ``config.json``, or the
    original ``config.yaml`` (default: ``folder/config.yaml`` if present, else the paper's ``sd15`` preset).
    """
    base = base if base is not None else checkpoint.SD15_HUB_ID
    base_dir = Path(base) if Path(base).is_dir() else None
    unet_file = base_dir / "unet" / "config.json" if base_dir else None
    unet_config = checkpoint.read_unet_config(unet_file) if unet_file and unet_file.is_file() else None
    model, unet = checkpoint.load_original(folder, checkpoint.resolve_config(config, folder, unet_config))
    return {"model": model, "unet": unet, **base_components(base)}


def base_components(base: str | os.PathLike | None) -> dict[str, Any]:
    """Stable Diffusion's VAE and a DDPM scheduler (with ``base``'s own ``scheduler/`` config if it has one)."""
    base = base if base is not None else checkpoint.SD15_HUB_ID
    vae = checkpoint.load_sd15_vae(base)
    scheduler_file = Path(base) / "scheduler" / "scheduler_config.json"
    scheduler_config = read_json_object(scheduler_file, "a scheduler config") if scheduler_file.is_file() else None
    return {"vae": vae, "scheduler": make_scheduler("ddpm", scheduler_config, source=scheduler_file)}


def _index_entry(index: dict[str, Any], key: str, default: str, folder: Path) -> str:
    value = index.get(key, default)
    if not isinstance(value, str):
        raise InputError(folder / MODEL_INDEX, f"{key} must be a name, got {value!r}")
    return value
