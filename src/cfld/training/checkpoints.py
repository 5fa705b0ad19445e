"""Training checkpoints: ``OUTPUT/checkpoints/step-NNNNNNN/``, everything ``--resume`` needs to go on exactly.

A checkpoint folder holds:

* ``config.json``, ``model.safetensors``, ``unet.safetensors``: the weights, in our checkpoint format;
* ``optimizer.safetensors``: Adam's moments (tensors), its parameter groups going to ``trainer_state.json``;
* ``rng-N.safetensors``: process N's random generators (torch, CUDA, numpy, Python);
* ``trainer_state.json``: step, epoch and position in the epoch, the lr schedule, the fp16 loss scaler, the
  recipe, the periodic evaluation's history and ``data_digest``, the identity of the data trained on
  (:mod:`.data_identity`: ``--resume`` on other data is refused unless asked for). Written last: a folder
  without it is not a checkpoint.

It is written into ``.step-NNNNNNN.tmp`` by every process and renamed into place by the main process once
complete, so a killed run never leaves a half checkpoint under a ``step-*`` name. A write the system refuses
(a full disk) removes the temporary at once and stops the run with one sentence saying what was kept.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .. import checkpoint as ckpt
from .. import validation as V
from ..errors import InputError, one_line
from ..io import os_write_error, read_json_object, usual_permissions, write_failure
from ..models.config import CFLDConfig
from ..state_dict import check_finite, check_keys
from .evaluation import check_state as check_evaluation_state

CHECKPOINTS = "checkpoints"
OPTIMIZER, TRAINER_STATE = "optimizer.safetensors", "trainer_state.json"


# -- random generators, optimizer state in safetensors + JSON -----------------------------------------------------


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's random generators as tensors and text (for a safetensors file and its metadata)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    meta = {"numpy": json.dumps([kind, int(pos), int(has_gauss), float(gauss)]),
            "python": json.dumps(random.getstate())}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = json.loads(meta["numpy"])
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(state), gauss))


def optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """An optimizer's state dict as tensors (``"{index}.{name}"``) and its parameter groups. A plain number in a
    parameter's state (bitsandbytes keeps ``step`` as an int) is stored as a 0-d tensor named ``"...:number"``."""
    tensors = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.contiguous()
            elif isinstance(value, (bool, int, float)):
                tensors[f"{index}.{name}:number"] = torch.tensor(
                    value, dtype=torch.float64 if isinstance(value, float) else torch.int64)
    return tensors, state["param_groups"]


def optimizer_from_files(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        if name.endswith(":number"):
            name, value = name[: -len(":number")], value.item()
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def find_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir/checkpoints`` (incomplete ones are never named step-*)."""
    folder = Path(output_dir) / CHECKPOINTS
    found = sorted(folder.glob("step-*")) if folder.is_dir() else []
    found = [p for p in found if (p / TRAINER_STATE).is_file()]
    return found[-1] if found else None


def remove_partial(output_dir: Path) -> None:
    """Checkpoints that were being written when the last run was killed."""
    for tmp in (Path(output_dir) / CHECKPOINTS).glob(".step-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


# -- writing and reading ------------------------------------------------------------------------------------------


def save_checkpoint(accelerator, output_dir: Path, model, unet, optimizer, schedule, *, step: int, epoch: int,
                    batch_in_epoch: int, config: dict[str, Any], evaluation: dict[str, Any] | None, keep: int,
                    last: Path | None, data_digest: str | None = None) -> Path:
    """Write ``checkpoints/step-NNNNNNN`` (every process calls this: each writes its random state), then remove
    the checkpoints beyond the newest ``keep``. ``last``: the newest complete checkpoint, named when a write is
    refused. Returns the new checkpoint's folder."""
    folder = Path(output_dir) / CHECKPOINTS
    final = folder / f"step-{step:07d}"
    tmp = folder / f".step-{step:07d}.tmp"
    main = accelerator.is_main_process
    optimizer_state = optimizer.state_dict()
    failure: BaseException | None = None
    try:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
    except OSError as error:
        failure = error
    accelerator.wait_for_everyone()
    try:
        if failure is None:
            tensors, meta = rng_state()
            save_file(tensors, str(tmp / f"rng-{accelerator.process_index}.safetensors"), metadata=meta)
        if failure is None and main:
            ckpt.save_checkpoint(tmp, model, unet)
            tensors, groups = optimizer_to_files(optimizer_state)
            save_file(tensors, str(tmp / OPTIMIZER), metadata={"format": "pt"})
            state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                     "num_processes": accelerator.num_processes, "optimizer_param_groups": groups,
                     "lr_scheduler": schedule.state_dict(),
                     "grad_scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                     "config": config, "time": time.time(), "evaluation": evaluation, "data_digest": data_digest}
            (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2, default=_json_default) + "\n")
    except Exception as error:  # noqa: BLE001 - a refused write is the user's environment; anything else is raised
        if os_write_error(error) is None:
            raise
        failure = error
    refused = accelerator.reduce(torch.tensor([0.0 if failure is None else 1.0], device=accelerator.device), "sum")
    if refused.item() > 0:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)  # at once: the disk is full
        accelerator.wait_for_everyone()
        needed = ckpt.tensor_bytes([*model.state_dict().values(), *unet.state_dict().values(),
                                    *(v for entry in optimizer_state["state"].values() for v in entry.values())])
        error = os_write_error(failure) if failure is not None else None
        if error is None:
            error = OSError(0, "another process could not write its part")
        kept = (f"the last good checkpoint is {last.name}: free space and run again with --resume" if last is not None
                else "no checkpoint had been written yet: free space and run again")
        raise write_failure(final, error, what="the checkpoint", needed=needed, kept=kept) from None
    if main:
        usual_permissions(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in sorted(folder.glob("step-*"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(folder: Path, state: dict[str, Any], accelerator, model, unet, optimizer,
                    schedule) -> tuple[int, int, int]:
    """Restore weights, optimizer, schedules and random streams from a checkpoint and the ``state`` that
    :func:`check_checkpoint` passed; whatever still does not fit is one InputError naming the checkpoint.
    Returns ``(step, epoch, batch_in_epoch)``."""
    for name, module in ((ckpt.MODEL, model), (ckpt.UNET, unet)):
        weights = ckpt.read_safetensors(folder / name)
        check_keys(module.state_dict(), weights, folder / name)
        check_finite(weights, folder / name)
        module.load_state_dict(weights)
    try:
        tensors = load_file(str(folder / OPTIMIZER), device="cpu")
        optimizer.load_state_dict(optimizer_from_files(tensors, state["optimizer_param_groups"]))
        schedule.load_state_dict(state["lr_scheduler"])
        if accelerator.scaler is not None and state.get("grad_scaler"):
            accelerator.scaler.load_state_dict(state["grad_scaler"])
        tensors, meta = read_rng_file(folder / f"rng-{accelerator.process_index}.safetensors")
        set_rng_state(tensors, meta)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - torch's optimizer and RNG loaders raise many kinds
        raise InputError(folder, f"cannot be resumed: its optimizer, schedule or random state does not fit this "
                                 f"run ({type(error).__name__}: {one_line(error, 200)})") from None
    return state["step"], state["epoch"], state["batch_in_epoch"]


def read_rng_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A process's random states (``rng-N.safetensors``), checked, or one InputError naming the file."""
    if not path.is_file():
        raise InputError(path, "is missing: the checkpoint is incomplete")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        numpy_state, python_state = json.loads(meta["numpy"]), json.loads(meta["python"])
        ok = (isinstance(numpy_state, list) and len(numpy_state) == 4 and isinstance(python_state, list)
              and len(python_state) == 3 and isinstance(python_state[1], list)
              and tensors["torch"].dtype == torch.uint8 and tensors["numpy"].numel() == 624)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as error:
        raise InputError(path,
                         f"is not a random-state file of a checkpoint ({type(error).__name__}: {error})") from None
    if not ok:
        raise InputError(path, "is not a random-state file of a checkpoint (its states have the wrong form)")
    return tensors, meta


def check_checkpoint(folder: Path, num_processes: int, model_config: CFLDConfig) -> dict[str, Any]:
    """Check a training checkpoint before a resumed run writes anything: its state file's entries, its model
    configuration, and that every file is there and complete (safetensors headers cover the whole file).
    Returns the state."""
    state_file = folder / TRAINER_STATE
    state = read_json_object(state_file, "training checkpoint state")
    for key in ("step", "epoch", "batch_in_epoch", "num_processes"):
        V.check_int(state.get(key), key, state_file, 1 if key == "num_processes" else 0)
    groups = state.get("optimizer_param_groups")
    if not (isinstance(groups, list) and groups and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                      for g in groups)):
        raise InputError(state_file, "optimizer_param_groups must be a list of parameter groups")
    if not isinstance(state.get("lr_scheduler"), dict):
        raise InputError(state_file, "lr_scheduler must be a mapping (the learning-rate schedule's state)")
    if state.get("grad_scaler") is not None and not isinstance(state["grad_scaler"], dict):
        raise InputError(state_file, "grad_scaler must be a mapping or null")
    check_evaluation_state(state.get("evaluation"), state_file)
    if state.get("data_digest") is not None and not isinstance(state["data_digest"], str):
        raise InputError(state_file, "data_digest must be the digest of the run's data (text) or null")
    if state["num_processes"] != num_processes:
        raise InputError(folder, f"was written by {state['num_processes']} processes; resume it with as many "
                                 f"(now {num_processes}) to continue exactly")
    config = CFLDConfig.from_json(folder / ckpt.CONFIG)
    if config.to_dict() != model_config.to_dict():
        raise InputError(folder, "holds a model of another configuration than the training config's")
    for name in (ckpt.MODEL, ckpt.UNET, OPTIMIZER):
        path = folder / name
        if not path.is_file():
            raise InputError(path, "is missing: the checkpoint is incomplete")
        ckpt.safetensors_shapes(path)
    for index in range(num_processes):
        read_rng_file(folder / f"rng-{index}.safetensors")
    return state


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
