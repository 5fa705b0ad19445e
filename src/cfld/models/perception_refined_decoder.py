"""Perception-refined decoder H_D: learnable queries -> the coarse-grained prompt F_d^out (paper Sec. 3.2, Fig. 2b).

Q learnable queries F_d^in (Q x C) representing person semantics (body parts, age, gender, hairstyle,
clothing, ...) are refined by R transformer decoder blocks that attend to the flattened last Swin map f4.
F_d^out replaces the text prompt of Stable Diffusion: it is the ``encoder_hidden_states`` of every UNet
cross-attention.

Details of the original implementation kept here, because its checkpoints only compute the same with them:

* each block runs cross-attention (to f4) *before* self-attention, then a GEGLU feed-forward, every sub-layer
  pre-LayerNorm with a residual (a diffusers ``BasicTransformerBlock`` with the first two swapped);
* the query positional embedding is *added to the residual stream* (not only to the attention input)
  before the cross-attention and again before the self-attention of every block;
* f4 tokens get a learned positional embedding ``kv_pos_embed`` of their own;
* queries and both positional embeddings start as N(0, 0.02^2); no dropout.

Parameter names equal the original ``decoder.*`` keys.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from ..errors import InputError
from ..state_dict import load_strict, strip_prefix
from .source_encoder import config_value


class CrossAttentionFirstBlock(nn.Module):
    """One refinement block: queries attend to f4 (cross), then to each other (self), then a feed-forward."""

    def __init__(self, dim: int, num_heads: int, context_dim: int):
        super().__init__()
        head_dim = dim // num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=num_heads, dim_head=head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=context_dim, heads=num_heads, dim_head=head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x: torch.Tensor, query_pos: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + query_pos
        x = x + self.attn2(self.norm2(x), encoder_hidden_states=context)
        x = x + query_pos
        x = x + self.attn1(self.norm1(x))
        return x + self.ff(self.norm3(x))


class PerceptionRefinedDecoder(nn.Module):
    """H_D: f4 ``(B, context_dim, H4, W4)`` -> prompt F_d^out ``(B, num_queries, dim)``.

    Args:
        num_queries: Q, the number of learnable queries (prompt tokens); paper 16.
        dim: C, the prompt width = the UNet's cross-attention dimension (768 for SD 1.5).
        depth: R, the number of refinement blocks; paper 8.
        num_heads: attention heads per block (original default 24); must divide ``dim``.
        context_dim: channels of f4 (1024 for Swin-B).
        context_size: (H4, W4), the spatial size of f4 (1/32 of the source image: 8x8 for 256x256).
    """

    def __init__(
        self,
        num_queries: int = 16,
        dim: int = 768,
        depth: int = 8,
        num_heads: int = 24,
        context_dim: int = 1024,
        context_size: tuple[int, int] = (8, 8),
    ):
        super().__init__()
        if depth < 1 or dim % num_heads:
            problem = f"needs depth >= 1 and num_heads dividing dim, got {depth}, {num_heads}, {dim}"
            raise InputError("PerceptionRefinedDecoder", problem)
        self.query_feat = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.kv_pos_embed = nn.Parameter(torch.randn(1, context_size[0] * context_size[1], context_dim) * 0.02)
        self.blocks = nn.ModuleList(CrossAttentionFirstBlock(dim, num_heads, context_dim) for _ in range(depth))

    @classmethod
    def from_original_config(cls, cfg: Mapping) -> PerceptionRefinedDecoder:
        """Build from the original yacs config (a nested mapping): ``MODEL.DECODER_CONFIG`` plus the Swin's
        ``MODEL.COND_STAGE_CONFIG`` and ``INPUT.COND.IMG_SIZE``, which fix the shape of f4."""
        if config_value(cfg, "MODEL.DECODER_CONFIG.POSE_QUERY"):
            raise InputError("config MODEL.DECODER_CONFIG.POSE_QUERY", "True is not supported (CFLD uses False)")
        if config_value(cfg, "MODEL.COND_STAGE_CONFIG.LAST_NORM"):
            raise InputError("config MODEL.COND_STAGE_CONFIG.LAST_NORM", "True is not supported (CFLD uses False)")
        height, width = config_value(cfg, "INPUT.COND.IMG_SIZE")
        num_stages = len(config_value(cfg, "MODEL.COND_STAGE_CONFIG.DEPTHS"))
        return cls(
            num_queries=config_value(cfg, "MODEL.DECODER_CONFIG.N_CTX"),
            dim=config_value(cfg, "MODEL.DECODER_CONFIG.CTX_DIM"),
            depth=config_value(cfg, "MODEL.DECODER_CONFIG.DEPTH"),
            num_heads=config_value(cfg, "MODEL.DECODER_CONFIG.HEADS"),
            context_dim=config_value(cfg, "MODEL.COND_STAGE_CONFIG.EMBED_DIM") * 2 ** (num_stages - 1),
            context_size=(height // 32, width // 32),
        )

    def forward(self, f4: torch.Tensor) -> torch.Tensor:
        batch = f4.shape[0]
        context = f4.flatten(2).transpose(1, 2) + self.kv_pos_embed
        x = self.query_feat.expand(batch, -1, -1)
        query_pos = self.pos_embed.expand(batch, -1, -1)
        for block in self.blocks:
            x = block(x, query_pos, context)
        return x

    # -- checkpoints in the original layout: same names, under ``decoder.`` ----------------------------

    @staticmethod
    def convert_original_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The ``decoder.*`` entries of a whole CFLD checkpoint without the prefix (or all, if already stripped)."""
        return strip_prefix(state_dict, "decoder.", optional=True)

    def to_original_state_dict(self, prefix: str = "decoder.") -> dict[str, torch.Tensor]:
        return {prefix + key: value for key, value in self.state_dict().items()}

    def load_original_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: object = "state dict") -> None:
        load_strict(self, self.convert_original_state_dict(state_dict), source)
