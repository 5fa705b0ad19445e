"""The datasets a training config may name, and how a config's ``data`` entry becomes one.

A training config is data: it is shared and downloaded like data, so it must never run code. Its ``data``
entry names a dataset *kind* and gives it options (text, numbers, lists); the kind must be one of

* ``synthetic``: :class:`cfld.data.synthetic.SyntheticPersons` (the test-size recipe's drawn persons);
* ``prepared``: :class:`cfld.data.PoseTransferDataset` over a folder written by ``cfld prepare``;
* a name registered from Python with :func:`register_dataset` (your own code, run by you), or declared by
  an installed package in the entry-point group ``cfld.datasets``
  (``[project.entry-points."cfld.datasets"] mine = "my_package.data:MyDataset"``).

Whatever the kind, only a ``torch.utils.data.Dataset`` subclass is ever called, with the config's options as
keyword arguments that its ``__init__`` declares. A config cannot name a module or a function: a
``package.module:Class`` kind is refused before anything is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from torch.utils.data import Dataset

from .. import validation as V
from ..data.dataset import PoseTransferDataset
from ..data.synthetic import SyntheticPersons
from ..errors import InputError, one_line

ENTRY_POINT_GROUP = "cfld.datasets"
BUILTIN = ("synthetic", "prepared")
# options the trainer sets itself from the model config; a config must not set them
RESERVED = ("config", "generator", "image_size", "cond_size", "pose_size")

_registered: dict[str, type] = {}


def register_dataset(name: str, cls: type) -> None:
    """Make ``cls`` (a ``torch.utils.data.Dataset`` subclass) available to training configs as ``kind: name``."""
    if not (isinstance(cls, type) and issubclass(cls, Dataset)):
        raise TypeError(f"{cls!r} is not a torch.utils.data.Dataset subclass")
    if not isinstance(name, str) or not name or ":" in name or name in BUILTIN:
        raise ValueError(f"{name!r} cannot name a dataset (it must be a new plain name)")
    _registered[name] = cls


def _entry_points() -> dict[str, Any]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def known_kinds() -> list[str]:
    return [*BUILTIN, *sorted(_registered), *sorted(set(_entry_points()) - set(_registered) - set(BUILTIN))]


def dataset_class(kind: Any, source: object = "training config (data)") -> type:
    """The Dataset class of ``kind``; a kind that names code, or an unknown one, is an InputError."""
    if not isinstance(kind, str):
        raise InputError(source, f"kind must be a name, got {V.shown(kind)}")
    if ":" in kind:
        raise InputError(source, f"kind {kind[:60]!r} names Python code; a training config is data and cannot import "
                                 "code: register the class (cfld.training.register_dataset, or an entry point in the "
                                 f"group '{ENTRY_POINT_GROUP}' of an installed package) and give its name")
    if kind == "synthetic":
        return SyntheticPersons
    if kind == "prepared":
        return PoseTransferDataset
    cls = _registered.get(kind)
    if cls is None:
        point = _entry_points().get(kind)
        if point is None:
            raise InputError(source, f"kind {kind[:60]!r} is not a known dataset ({', '.join(known_kinds())})")
        try:
            cls = point.load()
        except Exception as error:  # noqa: BLE001 - a broken plugin package
            raise InputError(source, f"kind {kind!r}: the installed package declaring it fails to load "
                                     f"({type(error).__name__}: {error})") from None
    if not (isinstance(cls, type) and issubclass(cls, Dataset)):
        raise InputError(source, f"kind {kind!r} is not a torch.utils.data.Dataset subclass, so it is not called")
    return cls


def _parameters(cls: type) -> tuple[set[str], bool]:
    """The keyword options ``cls.__init__`` takes, and whether it takes any (``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def check_data_spec(spec: Any, source: object = "training config (data)") -> type:
    """Check a config's ``data`` entry without building the dataset: the kind, and option names that its
    class declares (none of those the trainer sets). Returns the class."""
    spec = V.check_mapping(spec, "data", source)
    cls = dataset_class(spec.get("kind"), source)
    options = {k: v for k, v in spec.items() if k != "kind"}
    if reserved := sorted(set(options) & set(RESERVED)):
        raise InputError(source, f"sets {', '.join(reserved)}, which the trainer takes from the model config")
    names, any_keyword = _parameters(cls)
    if not any_keyword and (unknown := sorted(set(options) - names)):
        raise InputError(source, f"has options {', '.join(unknown)} that {spec['kind']} does not take "
                                 f"(it takes: {', '.join(sorted(names - set(RESERVED))) or 'none'})")
    if spec["kind"] == "prepared" and "root" not in options:
        raise InputError(source, "kind 'prepared' needs a 'root': the folder written by `cfld prepare`")
    return cls


def build_dataset(spec: dict[str, Any], model_config, split: str = "train",
                  source: object = "training config (data)") -> Dataset:
    """The dataset of a config's ``data`` entry (see the module docstring), sized by ``model_config``;
    ``split`` (and, for synthetic persons, ``flip_cond``) default to the training ones.

    Options of the wrong type or value are an InputError naming ``source``, whatever the class raises."""
    cls = check_data_spec(spec, source)
    options = {k: v for k, v in spec.items() if k != "kind"}
    names, any_keyword = _parameters(cls)
    if "split" in names or any_keyword:
        options.setdefault("split", split)
    if spec["kind"] == "synthetic":
        options.setdefault("flip_cond", split == "train")
    sizes = {"image_size": model_config.image_size, "cond_size": model_config.cond_size,
             "pose_size": model_config.pose_size}
    if spec["kind"] == "prepared":
        build: Callable[[], Dataset] = lambda: cls(config=model_config, **options)  # noqa: E731
    elif spec["kind"] == "synthetic" or any_keyword or set(sizes) <= names:
        build = lambda: cls(**(sizes | options))  # noqa: E731
    else:
        build = lambda: cls(**options)  # noqa: E731
    try:
        return build()
    except InputError as error:
        raise InputError(source, f"{error.source}: {error.problem}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, OSError) as error:
        raise InputError(source, f"cannot make a {spec['kind']} dataset from these options "
                                 f"({type(error).__name__}: {one_line(error, 200)})") from None


def check_items(dataset: Dataset, model_config, source: object = "training config (data)") -> None:
    """Read the dataset's first pair and check that it has every training input at the model's sizes, so a
    wrong dataset fails before the run writes anything, not at the first step."""
    expected = {
        "img_src": (3, *model_config.image_size), "img_tgt": (3, *model_config.image_size),
        "img_cond": (3, *model_config.cond_size),
        "pose_img_src": (model_config.pose_channels, *model_config.pose_size),
        "pose_img_tgt": (model_config.pose_channels, *model_config.pose_size),
    }
    try:
        length = len(dataset)
        item = dataset[0] if length else None
    except InputError as error:
        raise InputError(source, f"{error.source}: {error.problem}") from None
    except Exception as error:  # noqa: BLE001 - whatever a dataset raises reading its first item
        raise InputError(source, f"the dataset fails to read its first pair ({type(error).__name__}: "
                                 f"{one_line(error, 200)})") from None
    if not length:
        raise InputError(source, "the dataset is empty")
    if not isinstance(item, dict):
        raise InputError(source, f"the dataset's items must be mappings of tensors, got {type(item).__name__}")
    for key, shape in expected.items():
        value = item.get(key)
        got = tuple(getattr(value, "shape", ()))
        if value is None or got != shape:
            raise InputError(source, f"the dataset's item {key!r} is "
                                     f"{'missing' if value is None else f'of shape {got}'}, "
                                     f"but the model needs {shape}")
