"""CFLD's networks, one module per paper component (Sec. 3.2), and the glue that joins them to the UNet."""

from .cfld import CFLDModel, Conditions, build_unet
from .config import CFLDConfig
from .hybrid_granularity_attention import AppearanceEncoder, HGAAttnProcessor, set_hga_processors
from .perception_refined_decoder import PerceptionRefinedDecoder
from .pose_adapter import PoseAdapter
from .source_encoder import SourceImageEncoder

__all__ = [
    "AppearanceEncoder", "CFLDConfig", "CFLDModel", "Conditions", "HGAAttnProcessor", "PerceptionRefinedDecoder",
    "PoseAdapter", "SourceImageEncoder", "build_unet", "set_hga_processors",
]  # fmt: skip
