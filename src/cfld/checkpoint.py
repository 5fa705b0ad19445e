"""CFLD checkpoints in two formats, and Stable Diffusion 1.5 components from wherever they are.

**Original** (the released ``checkpoints/`` of github.com/YanzuoLu/CFLD): a folder with
``pytorch_model.bin``, the conditioning networks (``learnable_vector``, ``backbone.*`` Swin in Microsoft's
naming with its ``relative_position_index``/``attn_mask`` buffers, ``appearance_encoder.*``,
``pose_encoder.*``, ``decoder.*``), and ``pytorch_model_1.bin``, the whole UNet under ``model.``. Both are
pickles, read with ``torch.load(weights_only=True)`` only.

**Ours**: a folder with ``config.json`` (:class:`CFLDConfig`, which includes the UNet config),
``model.safetensors`` (:class:`CFLDModel` state dict) and ``unet.safetensors`` (the *whole* UNet state
dict in diffusers naming). We keep the whole UNet rather than only the trained W_k, W_v: the frozen
weights are part of what the checkpoint computes, and a small model (like the test reference) has no
Stable Diffusion to take them from.

Every load is strict: missing, unexpected or mis-shaped keys raise one :class:`InputError` naming the
file and listing the first few of each kind with their counts. Keys are mapped between the layouts by
each module's own converter, so a checkpoint converted one way and back is identical.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import InputError, one_line
from .io import atomic_path, atomic_write_text, check_writable, path_kind, read_json_object
from .model_names import hub_problem, looks_like_hub_id, quiet_hub
from .models.cfld import CFLDModel, build_unet
from .models.config import PRESETS, CFLDConfig, check_unet_config
from .models.perception_refined_decoder import PerceptionRefinedDecoder
from .models.source_encoder import SourceImageEncoder
from .state_dict import add_prefix, check_finite, check_keys, listing, load_torch_file, strip_prefix

ORIGINAL_MODEL, ORIGINAL_UNET = "pytorch_model.bin", "pytorch_model_1.bin"
CONFIG, MODEL, UNET = "config.json", "model.safetensors", "unet.safetensors"
SWIN_BUFFERS = ("relative_position_index", "attn_mask")
MAX_PARAMETERS = 8_000_000_000  # a config describing more is damaged or hostile, not a CFLD model

# our CFLDModel attribute -> the original's top-level key prefix
ORIGINAL_PREFIX = {
    "source_encoder": "backbone.",
    "appearance_encoder": "appearance_encoder.",
    "pose_adapter": "pose_encoder.",
    "prompt_decoder": "decoder.",
}


# -- the original layout -------------------------------------------------------------------------------------


def to_original(model: CFLDModel, unet: UNet2DConditionModel) -> tuple[dict[str, torch.Tensor], ...]:
    """``(pytorch_model.bin, pytorch_model_1.bin)`` state dicts: the original's keys, order and buffers."""
    state = {"learnable_vector": model.learnable_vector.detach()}
    state |= model.source_encoder.to_original_state_dict(ORIGINAL_PREFIX["source_encoder"])
    state |= add_prefix(model.appearance_encoder.state_dict(), ORIGINAL_PREFIX["appearance_encoder"])
    state |= add_prefix(model.pose_adapter.state_dict(), ORIGINAL_PREFIX["pose_adapter"])
    state |= model.prompt_decoder.to_original_state_dict(ORIGINAL_PREFIX["prompt_decoder"])
    return state, add_prefix(unet.state_dict(), "model.")


def original_to_cfld_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``pytorch_model.bin``'s state dict -> :class:`CFLDModel`'s (the Swin buffers are dropped)."""
    converters = {
        "source_encoder": SourceImageEncoder.convert_original_state_dict,
        "appearance_encoder": dict,
        "pose_adapter": dict,
        "prompt_decoder": PerceptionRefinedDecoder.convert_original_state_dict,
    }
    ours = {"learnable_vector": state["learnable_vector"]}
    for name, convert in converters.items():
        ours |= add_prefix(convert(strip_prefix(state, ORIGINAL_PREFIX[name])), name + ".")
    return ours


def read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain ``torch.save``-d state dict, unpickled safely (tensors and containers only)."""
    state = load_torch_file(path, "PyTorch state dict")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "is not a state dict (a mapping of names to tensors)")
    return dict(state)


def load_original(folder: str | Path, config: CFLDConfig) -> tuple[CFLDModel, UNet2DConditionModel]:
    """Load an original checkpoint folder (``pytorch_model.bin`` + ``pytorch_model_1.bin``) into a model of
    ``config``; the stored Swin buffers must equal the ones of ``config`` (window and image size)."""
    folder = Path(folder)
    model_state, unet_state = read_torch_file(folder / ORIGINAL_MODEL), read_torch_file(folder / ORIGINAL_UNET)
    model, unet = build_models(config, folder, materialize=False)
    meta_model, meta_unet = to_original(model, unet)
    for name, expected, state in ((ORIGINAL_MODEL, meta_model, model_state), (ORIGINAL_UNET, meta_unet, unet_state)):
        check_keys(expected, state, folder / name)  # against shapes only: nothing allocated yet
        check_finite(state, folder / name)
    model = CFLDModel.from_config(config).eval()
    expected_model, _ = to_original(model, unet)
    buffers = [k for k in expected_model if k.endswith(SWIN_BUFFERS)]
    if differ := [k for k in buffers if not torch.equal(expected_model[k], model_state[k].to(expected_model[k]))]:
        problem = "was made for another Swin window or image size: " + listing("buffers differ", differ)
        raise InputError(folder / ORIGINAL_MODEL, problem)
    model.load_state_dict(original_to_cfld_keys(model_state))
    unet.load_state_dict(strip_prefix(unet_state, "model."), assign=True)
    return model, unet


def save_original(folder: str | Path, model: CFLDModel, unet: UNet2DConditionModel, overwrite: bool = False) -> Path:
    """Write ``model`` and ``unet`` as an original checkpoint folder (readable by the original code).

    A file the disk has no room for is an :class:`~cfld.errors.WriteError` naming it and its size; the files
    this call had created before it are removed, so a folder never holds half a checkpoint it did not hold.
    """
    folder = Path(folder)
    states = to_original(model, unet)
    for name in (ORIGINAL_MODEL, ORIGINAL_UNET):
        check_writable(folder / name, overwrite)
    with _whole_or_nothing(folder, (ORIGINAL_MODEL, ORIGINAL_UNET)):
        for name, state, what in zip((ORIGINAL_MODEL, ORIGINAL_UNET), states, ("the condition model's weights",
                                                                               "the UNet's weights")):
            state = {k: v.contiguous() for k, v in state.items()}
            # into an open file: torch.save then fails with the file's OSError as its context (a full disk is
            # seen as one), where with a path it only says "unexpected pos"
            with atomic_path(folder / name, overwrite=overwrite, what=what,
                             needed=tensor_bytes(state.values())) as tmp, open(tmp, "wb") as handle:
                torch.save(state, handle)
    return folder


def tensor_bytes(tensors: Iterable[Any]) -> int:
    """About the bytes tensors take in a file (their data; anything else among them counts nothing)."""
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


@contextlib.contextmanager
def _whole_or_nothing(folder: Path, names: tuple[str, ...]) -> Iterator[None]:
    """On a failed write, remove the files of ``names`` that were not in ``folder`` before (each file is whole,
    written atomically; this keeps the folder from holding some files of a new checkpoint and not the others)."""
    new = [folder / name for name in names if not (folder / name).exists()]
    try:
        yield
    except BaseException:
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise


# -- our format ---------------------------------------------------------------------------------------------------


def save_checkpoint(folder: str | Path, model: CFLDModel, unet: UNet2DConditionModel, overwrite: bool = False) -> Path:
    """Write our checkpoint folder: ``config.json``, ``model.safetensors``, ``unet.safetensors``."""
    folder = Path(folder)
    for name in (CONFIG, MODEL, UNET):
        check_writable(folder / name, overwrite)
    with _whole_or_nothing(folder, (CONFIG, MODEL, UNET)):
        for name, module, what in ((MODEL, model, "the condition model's weights"), (UNET, unet, "the UNet's weights")):
            state = {k: v.contiguous() for k, v in module.state_dict().items()}
            # a full disk: safetensors' SafetensorError "... (os error 28)" becomes a WriteError naming the file
            with atomic_path(folder / name, overwrite=overwrite, what=what, needed=tensor_bytes(state.values())) as tmp:
                save_file(state, str(tmp), metadata={"format": "pt"})
        atomic_write_text(folder / CONFIG, model.config.to_json() + "\n", overwrite=overwrite)
    return folder


def load_checkpoint(folder: str | Path) -> tuple[CFLDModel, UNet2DConditionModel]:
    """Read our checkpoint folder (see :func:`save_checkpoint`); the UNet comes prepared for CFLD."""
    folder = Path(folder)
    config = CFLDConfig.from_json(folder / CONFIG)
    model, unet = build_models(config, folder / CONFIG, materialize=False)
    for name, module in ((MODEL, model), (UNET, unet)):  # shapes from the headers: nothing allocated yet
        check_keys(module.state_dict(), safetensors_shapes(folder / name), folder / name)
    model = CFLDModel.from_config(config).eval()
    for name, module, assign in ((MODEL, model, False), (UNET, unet, True)):
        state = read_safetensors(folder / name)
        check_keys(module.state_dict(), state, folder / name)
        check_finite(state, folder / name)
        module.load_state_dict(state, assign=assign)
    return model, unet


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors on the CPU, or one InputError naming it (missing, truncated, not safetensors)."""
    with _safetensors_errors(path):
        return load_file(str(path))


@contextlib.contextmanager
def _safetensors_errors(path: Path) -> Iterator[None]:
    """Around reading a safetensors file: a missing file, or one that safetensors refuses, is one InputError."""
    kind = path_kind(path)
    if kind != "file":
        raise InputError(path, "is missing" if kind is None else f"is a {kind}, not a safetensors file")
    try:
        yield
    except (OSError, SafetensorError, ValueError, RuntimeError) as error:
        raise InputError(path, f"cannot be read as safetensors; it may be truncated or damaged "
                               f"({one_line(error, 200)})") from None


def build_models(config: CFLDConfig, source: object, materialize: bool = True
                 ) -> tuple[CFLDModel, UNet2DConditionModel]:
    """The condition model (random weights; unless ``materialize``, a shared meta-device model to read shapes
    from, never to change) and the UNet (on the meta device, weights to be assigned) of ``config``. A config
    that torch, timm or diffusers cannot build, or that describes an absurdly large model, is one InputError
    naming ``source``; nothing is allocated before that."""
    try:
        unet = _empty_unet(config)
        model = _meta_condition_model(config.to_json())
    except Exception as error:  # noqa: BLE001 - the config's values did not make a model (e.g. heads not dividing dims)
        raise InputError(source, f"does not describe a model cfld can build ({type(error).__name__}: "
                                 f"{one_line(error, 200)})") from None
    size = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in unet.parameters())
    if size > MAX_PARAMETERS:
        raise InputError(source, f"describes a model of {size / 1e9:.1f} billion parameters; the paper's sd15 CFLD "
                                 f"has 1.1 billion, and cfld refuses more than {MAX_PARAMETERS / 1e9:.0f} billion")
    return (CFLDModel.from_config(config).eval() if materialize else model), unet


@functools.lru_cache(maxsize=8)
def _meta_condition_model(config_json: str) -> CFLDModel:
    """The condition model of a config on the meta device (shapes, no memory); cached: building it costs as
    much as building the real one."""
    with torch.device("meta"):
        return CFLDModel.from_config(CFLDConfig.from_dict(json.loads(config_json))).eval()


def check_runnable(config: CFLDConfig, latent_size: tuple[int, int], source: object) -> None:
    """Run the whole model once on the meta device (shapes only, no arithmetic, no memory) at ``latent_size``:
    a config whose parts do not fit together (pose maps or HGA biases of another resolution than the UNet's
    blocks, a Swin that cannot tile its input ...) is one InputError naming ``source`` now, not a shape
    error in the middle of sampling or training. Checked once per configuration and size."""
    _check_runnable(config.to_json(), tuple(latent_size), str(source))


@functools.lru_cache(maxsize=16)
def _check_runnable(config_json: str, latent_size: tuple[int, int], source: str) -> None:
    config = CFLDConfig.from_dict(json.loads(config_json), source)
    model, unet = build_models(config, source, materialize=False)
    try:
        with torch.device("meta"), torch.no_grad():
            conditions = model(torch.zeros(1, 3, *config.cond_size),
                               torch.zeros(1, config.pose_channels, *config.pose_size))
            latents = torch.zeros(1, unet.config.in_channels, *latent_size)
            unet(latents, torch.tensor([1]), **conditions.unet_kwargs())
    except Exception as error:  # noqa: BLE001 - whichever part does not fit raises its own kind
        raise InputError(source, f"describes parts that do not fit together at {latent_size[0]}x{latent_size[1]} "
                                 f"latents ({type(error).__name__}: {one_line(error, 200)}); check "
                                 "image_size, cond_size, pose_size and pose_downscale against the UNet") from None


def safetensors_shapes(path: Path) -> dict[str, torch.Tensor]:
    """The tensors a safetensors file declares, as empty meta tensors of their shapes (nothing is read but
    the header, whose sizes safetensors checks against the file's: a truncated file is refused), or one
    InputError naming the file (missing, truncated, not safetensors)."""
    with _safetensors_errors(path), safe_open(str(path), "pt") as handle:
        return {k: torch.empty(handle.get_slice(k).get_shape(), device="meta") for k in handle.keys()}


def resolve_config(spec: CFLDConfig | str | Path | None, folder: str | Path,
                   unet: dict[str, Any] | None = None) -> CFLDConfig:
    """The CFLDConfig of an original checkpoint ``folder``: a :class:`CFLDConfig`, a preset name, an original
    ``config.yaml`` or our ``config.json``; by default ``folder/config.yaml`` if present, else ``sd15``.

    ``unet`` is the diffusers UNet config, which the original ``config.yaml`` does not hold (default SD 1.5).
    """
    if isinstance(spec, CFLDConfig):
        return spec
    if spec is None and (Path(folder) / "config.yaml").is_file():
        spec = Path(folder) / "config.yaml"
    if spec is None or str(spec) in PRESETS:
        config = CFLDConfig.preset(str(spec or "sd15"))
        if unet is not None:
            config.unet = unet
        return config
    if str(spec).endswith((".yaml", ".yml")):
        return CFLDConfig.from_original_yaml(spec, unet=unet)
    if unet is not None:
        raise InputError(spec, "is our config.json, which has its own UNet config; give no other")
    return CFLDConfig.from_json(spec)


def read_unet_config(path: str | Path) -> dict[str, Any]:
    """A diffusers UNet ``config.json`` without its ``_``-prefixed bookkeeping keys."""
    data = read_json_object(path, "diffusers UNet config.json")
    check_unet_config(data, path)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def is_original_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / ORIGINAL_MODEL).is_file()


def _empty_unet(config: CFLDConfig) -> UNet2DConditionModel:
    """The UNet without initialising weights: they are all about to be loaded (with ``assign=True``)."""
    with torch.device("meta"):
        return build_unet(config).eval()


# -- Stable Diffusion 1.5 components ---------------------------------------------------------------------------

SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}


def load_sd_component(
    cls: type, source: str | Path, subfolder: str, config: Mapping[str, Any], local_files_only: bool = False
):
    """One diffusers component (``cls``, e.g. ``UNet2DConditionModel`` or ``AutoencoderKL``) of a Stable
    Diffusion checkpoint given as

    * a single file (``.safetensors`` / ``.ckpt``, original LDM layout): converted by diffusers'
      ``from_single_file``, with ``config`` (the component's diffusers config) so no config is fetched;
    * a local diffusers folder (the pipeline folder with ``subfolder``, or the component folder itself);
    * a Hub id (``owner/name``), downloaded once by ``huggingface_hub`` into its cache; with
      ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) only that cache is looked at. The Hub client's log is held
      back: an id that cannot be downloaded (no network, no such repository ...) is one InputError saying why.
    """
    path = Path(source)
    try:
        if path.is_file():
            if path.suffix not in (".safetensors", ".ckpt"):
                raise InputError(path, "is not a single-file checkpoint (.safetensors or .ckpt)")
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / subfolder).mkdir()
                (Path(tmp) / subfolder / "config.json").write_text(json.dumps(dict(config)))
                return cls.from_single_file(str(path), config=tmp, subfolder=subfolder, local_files_only=True)
        if path.is_dir():
            has_sub = (path / subfolder / "config.json").is_file()
            return cls.from_pretrained(str(path), subfolder=subfolder if has_sub else None)
        if not looks_like_hub_id(str(source)):
            raise InputError(source, "is neither a file, a folder, nor a Hugging Face Hub id (owner/name)")
        with quiet_hub():
            return cls.from_pretrained(str(source), subfolder=subfolder, local_files_only=local_files_only)
    except InputError:
        raise
    except Exception as error:  # diffusers and huggingface_hub raise OSError, ValueError, KeyError, ...
        problem = hub_problem(error) if path_kind(path) is None else None
        raise InputError(source, problem or f"has no loadable {subfolder} ({type(error).__name__}: "
                                            f"{one_line(error, 200)})") from None


def load_sd15_unet(
    source: str | Path = SD15_HUB_ID, config: CFLDConfig | None = None, local_files_only: bool = False
) -> UNet2DConditionModel:
    """The Stable Diffusion UNet to start CFLD training from, prepared for CFLD (HGA processors, trainable
    W_k, W_v only); it must have the shapes of ``config.unet`` (default: the sd15 preset)."""
    config = config or CFLDConfig.preset("sd15")
    unet = load_sd_component(UNet2DConditionModel, source, "unet", config.unet, local_files_only)
    check_keys(_empty_unet(config).state_dict(), unet.state_dict(), source)
    return CFLDModel.prepare_unet(unet)


def load_sd15_vae(
    source: str | Path = SD15_HUB_ID, config: Mapping[str, Any] = SD15_VAE_CONFIG, local_files_only: bool = False
):
    """Stable Diffusion's VAE (encoder E and decoder D of the paper)."""
    from diffusers import AutoencoderKL

    return load_sd_component(AutoencoderKL, source, "vae", config, local_files_only)
