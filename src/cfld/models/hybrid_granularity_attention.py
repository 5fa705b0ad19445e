"""Hybrid-Granularity Attention H_A (paper Sec. 3.2, Eq. 4): where fine-grained appearance enters the UNet.

Eq. 4 biases the *queries* of the UNet's up-block cross-attention with fine-grained source features:

    Q = W_q F_h,   K = W_k F_d^out,   V = W_v F_d^out,   B = phi_A(f_l),
    F_o = softmax((Q + B) K^T / sqrt(d)) V

This module holds both halves of that equation:

* :class:`AppearanceEncoder` is phi_A. For each biased UNet layer it takes one source-encoder feature map
  f_l, applies a zero-initialised 1x1 conv, K transformer layers and a zero-initialised 1x1 conv, and
  returns B as ``(batch, tokens, channels)``, the shape of that layer's query *before* the head split.
* :class:`HGAAttnProcessor` is the diffusers attention processor that computes ``to_q(x) + B``. It is set on
  the stock ``UNet2DConditionModel`` by :func:`set_hga_processors`; the biases travel through the UNet call
  as ``cross_attention_kwargs={"query_biases": {layer: B}}``.

Layers are numbered as in the original code: ``layer = up_block_index * attentions_per_block +
attention_index``, so with Stable Diffusion 1.5 the up-block cross-attentions are 3..11 and 9..11 run at
the highest resolution, fed by the highest-resolution Swin feature f_1.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

QUERY_BIASES = "query_biases"
_UP_CROSS_ATTN = re.compile(r"up_blocks\.(\d+)\.attentions\.(\d+)\..*\.attn2\.processor")


class AppearanceEncoder(nn.Module):
    """phi_A: source features f_1..f_3 -> one query bias per up-block cross-attention layer.

    Each scale ``s`` (0 = f_1, the highest resolution) feeds the layers ``layers[s]`` with one branch per
    layer: ``Conv1x1(feature_dims[s] -> embed_dims[s])`` (zero init), ``depth`` diffusers
    ``BasicTransformerBlock`` s whose second attention is a second self-attention (``double_self_attention``:
    there is no context to attend to), ``Conv1x1(embed_dims[s] -> out_dims[s])`` (zero init). The zero
    convolutions make every bias 0 at initialisation, so training starts from the pre-trained SD behaviour.

    Branches are stored in order (scale 0's layers first), which is the original ``blocks.i``,
    ``zero_conv_ins.i``, ``zero_conv_outs.i`` numbering, so the original ``appearance_encoder.*`` keys
    load unchanged.
    """

    def __init__(
        self,
        feature_dims: tuple[int, ...],
        embed_dims: tuple[int, ...],
        heads: tuple[int, ...],
        out_dims: tuple[int, ...],
        layers: tuple[tuple[int, ...], ...],
        depth: int,
    ):
        super().__init__()
        self.layers = [layer for scale_layers in layers for layer in scale_layers]
        self.scales = [s for s, scale_layers in enumerate(layers) for _ in scale_layers]

        def transformer(s: int) -> nn.Sequential:
            dim, n = embed_dims[s], heads[s]
            blocks = (BasicTransformerBlock(dim, n, dim // n, double_self_attention=True) for _ in range(depth))
            return nn.Sequential(*blocks)

        self.blocks = nn.ModuleList(transformer(s) for s in self.scales)
        self.zero_conv_ins = nn.ModuleList(nn.Conv2d(feature_dims[s], embed_dims[s], 1) for s in self.scales)
        self.zero_conv_outs = nn.ModuleList(nn.Conv2d(embed_dims[s], out_dims[s], 1) for s in self.scales)
        for conv in (*self.zero_conv_ins, *self.zero_conv_outs):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        """``features[s]``: ``(B, C_s, H_s, W_s)``. Returns ``{layer: (B, H_s * W_s, out_dim)}``."""
        biases = {}
        for scale, layer, conv_in, blocks, conv_out in zip(
            self.scales, self.layers, self.zero_conv_ins, self.blocks, self.zero_conv_outs
        ):
            x = conv_in(features[scale])
            b, c, h, w = x.shape
            x = blocks(x.flatten(2).transpose(1, 2))
            x = conv_out(x.transpose(1, 2).reshape(b, c, h, w))
            biases[layer] = x.flatten(2).transpose(1, 2)
        return biases


class HGAAttnProcessor(AttnProcessor2_0):
    """Scaled-dot-product attention whose query gets the HGA bias of its layer (Eq. 4).

    The bias ``B`` is added to ``to_q(hidden_states)`` before the split into heads (one ``(tokens,
    channels)`` bias shared by all heads). Without a bias for this layer in ``query_biases`` (self-attention,
    down/mid blocks, or a call without appearance) this is exactly the stock ``AttnProcessor2_0``. The biased
    path covers the attention of the UNet's transformer blocks: no group or spatial norm, no residual inside,
    output scale 1, no mask.
    """

    def __init__(self, layer: int | None = None):
        super().__init__()
        self.layer = layer

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        query_biases: dict[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        bias = None if query_biases is None or self.layer is None else query_biases.get(self.layer)
        if bias is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("HGA query biases support unmasked attention over (batch, tokens, channels) inputs")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.to_q(hidden_states) + bias.to(hidden_states.dtype)
        key, value = attn.to_k(context), attn.to_v(context)
        batch, tokens, channels = query.shape
        q, k, v = (t.view(batch, -1, attn.heads, channels // attn.heads).transpose(1, 2) for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, tokens, channels)
        return attn.to_out[1](attn.to_out[0](out))


def set_hga_processors(unet: UNet2DConditionModel) -> None:
    """Give every attention of ``unet`` an :class:`HGAAttnProcessor`; up-block cross-attentions get their layer.

    Every layer needs a processor that accepts ``query_biases`` because the UNet hands
    ``cross_attention_kwargs`` to all of its attentions; layers without a number run the stock computation.
    """
    processors = {}
    for name in unet.attn_processors:
        match = _UP_CROSS_ATTN.fullmatch(name)
        layer = None
        if match:
            up_block = int(match[1])
            layer = up_block * len(unet.up_blocks[up_block].attentions) + int(match[2])
        processors[name] = HGAAttnProcessor(layer)
    unet.set_attn_processor(processors)
