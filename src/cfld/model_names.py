"""What a model's name can be: the bundled demo model (``demo``), a path, or a Hugging Face Hub id (``owner/name``);
and, when a Hub id cannot be loaded, why, in a few words (:func:`hub_problem`), with the Hub client's own log held
back meanwhile (:func:`quiet_hub`).

Light on purpose: the commands resolve names with it before anything heavy (torch, diffusers) is imported;
huggingface_hub is imported only once a Hub load has failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

DEMO_MODEL = "demo"
"""The name of the demo model shipped inside the package, in ``from_pretrained`` and ``-m``."""

HUB_LOGGERS = ("huggingface_hub", "diffusers")
"""The libraries whose log :func:`quiet_hub` holds back (their retries, "Retrying in 8s", warnings)."""

NO_NETWORK = "cannot be downloaded from the Hugging Face Hub (no network connection?) and is not a local folder"
OFFLINE = ("cannot be downloaded from the Hugging Face Hub (HF_HUB_OFFLINE=1), is not in its cache and is not a "
           "local folder")
NOT_CACHED = ("is not in the Hugging Face Hub cache, which alone was to be read (local_files_only), and is not a local "
              "folder")
UNREACHABLE = (NO_NETWORK, OFFLINE, NOT_CACHED)
"""What :func:`hub_problem` says when the Hub could not be asked at all (what is in its cache may still do)."""


def demo_model_dir() -> Path:
    """The demo model folder inside the installed package (a ``CFLDPipeline.save_pretrained`` folder)."""
    return Path(str(resources.files("cfld") / "assets" / "demo_model"))


def resolve_model_name(name: str | os.PathLike) -> str | Path:
    """``"demo"`` -> the bundled demo model, unless a file or folder named ``demo`` exists here (then that)."""
    return demo_model_dir() if os.fspath(name) == DEMO_MODEL and not Path(name).exists() else name


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` reads as a Hugging Face Hub id (``owner/name``) rather than a path."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).suffix


_quiet = {"depth": 0, "levels": []}
_quiet_lock = threading.Lock()


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Around a load that may reach the Hugging Face Hub: huggingface_hub's and diffusers' warnings and notes (each
    retry of a refused connection is two lines) are held back, their errors still shown; what went wrong is said
    once, by the caller, with :func:`hub_problem`. Loads in several threads at once restore the levels once, when
    the last one ends."""
    loggers = [logging.getLogger(name) for name in HUB_LOGGERS]
    with _quiet_lock:
        if _quiet["depth"] == 0:
            _quiet["levels"] = [logger.level for logger in loggers]
            for logger in loggers:
                logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                for logger, level in zip(loggers, _quiet["levels"]):
                    logger.setLevel(level)


def hub_problem(error: BaseException) -> str | None:
    """Why a Hub id could not be loaded, from ``error`` or the errors it was raised from (diffusers re-raises the
    Hub client's as OSError), as the rest of a sentence that starts with the id; None when the Hub client did
    not fail (a repository without the file asked for, a damaged file ...): the caller says what was missing."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hub

    chain: list[BaseException] = []
    while error is not None and len(chain) < 32 and not any(error is seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__

    def found(*kinds: type) -> bool:
        return any(isinstance(seen, kinds) for seen in chain)

    if found(hub.GatedRepoError):
        return ("is a gated repository on the Hugging Face Hub: accept its conditions on its page and log in "
                "(hf auth login)")
    if found(hub.RepositoryNotFoundError):
        return ("is neither a local folder nor a repository on the Hugging Face Hub (a private one needs you to "
                "log in: hf auth login)")
    if found(hub.RevisionNotFoundError):
        return "has no such revision on the Hugging Face Hub"
    if found(hub.HFValidationError):
        return "is neither a local folder nor a valid Hugging Face Hub id (owner/name)"
    if found(hub.OfflineModeIsEnabled) or (found(hub.LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE):
        return OFFLINE
    if found(ConnectionError, TimeoutError) or any(
            type(seen).__module__.split(".")[0] in ("httpx", "httpcore", "requests", "urllib3") for seen in chain):
        return NO_NETWORK
    if found(hub.LocalEntryNotFoundError):  # not in the cache, and the network was not asked
        return NOT_CACHED
    return None
