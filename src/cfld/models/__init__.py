"""CFLD's networks, one module per paper component (Sec. 3.2)."""

from .source_encoder import SourceImageEncoder

__all__ = ["SourceImageEncoder"]
