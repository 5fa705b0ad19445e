"""CFLD's networks, one module per paper component (Sec. 3.2)."""

from .perception_refined_decoder import PerceptionRefinedDecoder
from .source_encoder import SourceImageEncoder

__all__ = ["PerceptionRefinedDecoder", "SourceImageEncoder"]
