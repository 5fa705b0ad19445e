"""What a model's name can be: the bundled demo model (``demo``), a path, or a Hugging Face Hub id (``owner/name``).

Light on purpose: the commands resolve names with it before anything heavy (torch, diffusers) is imported.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DEMO_MODEL = "demo"
"""The name of the demo model shipped inside the package, in ``from_pretrained`` and ``-m``."""


def demo_model_dir() -> Path:
    """The demo model folder inside the installed package (a ``CFLDPipeline.save_pretrained`` folder)."""
    return Path(str(resources.files("cfld") / "assets" / "demo_model"))


def resolve_model_name(name: str | os.PathLike) -> str | Path:
    """``"demo"`` -> the bundled demo model, unless a file or folder named ``demo`` exists here (then that)."""
    return demo_model_dir() if os.fspath(name) == DEMO_MODEL and not Path(name).exists() else name


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` reads as a Hugging Face Hub id (``owner/name``) rather than a path."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).suffix
