"""CFLD's networks, one module per paper component (Sec. 3.2), and the glue that joins them to the UNet.

The names below are imported on first use, so that :mod:`cfld.models.config` (the sizes, plain Python) is read
without torch or diffusers.
"""

import importlib

#: name -> the module of this package that defines it
_WHERE = {
    "CFLDModel": "cfld", "Conditions": "cfld", "build_unet": "cfld", "CFLDConfig": "config",
    "AppearanceEncoder": "hybrid_granularity_attention", "HGAAttnProcessor": "hybrid_granularity_attention",
    "set_hga_processors": "hybrid_granularity_attention", "PerceptionRefinedDecoder": "perception_refined_decoder",
    "PoseAdapter": "pose_adapter", "SourceImageEncoder": "source_encoder",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_WHERE)
