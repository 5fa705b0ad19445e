"""cfld: Coarse-to-Fine Latent Diffusion (CVPR 2024) for pose-guided person image synthesis.

Heavy modules (torch, diffusers) are imported lazily so that ``import cfld`` and ``cfld --help``
stay fast: ``from cfld import CFLDPipeline`` imports the pipeline on first use.

Two diffusers pipelines share one model: :class:`CFLDPipeline` (:mod:`cfld.pipeline`) re-poses a person;
:class:`CFLDEditPipeline` (:mod:`cfld.editing`) does the paper's appearance editing (Sec. 4.6). Their condition model
:class:`CFLDModel` is a diffusers model; :class:`PersonImageProcessor` frames person photos for them.
"""

import importlib

__version__ = "0.1.0.dev0"

from .errors import CFLDError, InputError  # noqa: E402,F401

_LAZY = {
    "CFLDPipeline": "cfld.pipeline",
    "CFLDEditPipeline": "cfld.editing",
    "CFLDPipelineOutput": "cfld.pipeline",
    "SourceEncoding": "cfld.pipeline",
    "CFLDModel": "cfld.models",
    "PersonImageProcessor": "cfld.image_processor",
    "CFLDConfig": "cfld.models",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cfld' has no attribute {name!r}")


__all__ = ["CFLDConfig", "CFLDEditPipeline", "CFLDError", "CFLDModel", "CFLDPipeline", "CFLDPipelineOutput",
           "InputError", "PersonImageProcessor", "SourceEncoding", "__version__"]
