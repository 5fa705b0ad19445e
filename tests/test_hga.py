"""Hybrid-granularity attention H_A: phi_A and the HGA attention processor on a stock diffusers UNet (Eq. 4)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from cfld.models.cfld import TRAINABLE_UNET, CFLDModel, build_unet
from cfld.models.config import CFLDConfig
from cfld.models.hybrid_granularity_attention import QUERY_BIASES, AppearanceEncoder, HGAAttnProcessor

TINY = CFLDConfig.preset("tiny")


@pytest.fixture(scope="module")
def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return build_unet(TINY).eval()


def _random_inputs(config: CFLDConfig, batch: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    h, w = config.unet["sample_size"], config.unet["sample_size"]
    latents = torch.randn(batch, 4, h, w, generator=gen)
    prompt = torch.randn(batch, config.num_queries, config.prompt_dim, generator=gen)
    return latents, prompt, gen


def _query_bias_shapes(config: CFLDConfig, batch: int) -> dict[int, tuple[int, ...]]:
    """The query shape of every up-block cross-attention layer: (B, tokens at its resolution, channels)."""
    size = config.unet["sample_size"]
    shapes = {}
    for s, layers in enumerate(config.hga_layers):
        for k in layers:
            shapes[k] = (batch, (size // 2**s) ** 2, config.unet_channels[s])
    return shapes


def test_bias_is_added_to_the_query_before_the_head_split():
    """Eq. 4 by hand: softmax((Q + B) K^T / sqrt(d)) V, one (tokens x channels) bias shared by all heads."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8).eval()
    attn.set_processor(HGAAttnProcessor(layer=5))
    x, context, bias = torch.randn(3, 10, 16), torch.randn(3, 4, 8), torch.randn(3, 10, 16)
    with torch.no_grad():
        ours = attn(x, context, **{QUERY_BIASES: {5: bias}})
        q = (attn.to_q(x) + bias).view(3, 10, 2, 8).transpose(1, 2)
        k = attn.to_k(context).view(3, 4, 2, 8).transpose(1, 2)
        v = attn.to_v(context).view(3, 4, 2, 8).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
        expected = attn.to_out[0]((weights @ v).transpose(1, 2).reshape(3, 10, 16))
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
        # a bias for another layer, or none, leaves the stock computation
        stock = AttnProcessor2_0()(attn, x, context)
        assert torch.equal(attn(x, context, **{QUERY_BIASES: {6: bias}}), stock)
        assert torch.equal(attn(x, context), stock)
        assert not torch.allclose(ours, stock, atol=1e-3)


@pytest.mark.parametrize("preset", ["tiny", "sd15"])
def test_processors_number_up_block_cross_attentions_as_the_original(preset):
    """Layer k = 3 * up_block + attention for every up-block attn2 (3..11), no number anywhere else."""
    config = CFLDConfig.preset(preset)
    with torch.device("meta"):
        unet = build_unet(config)
    layers = {name: p.layer for name, p in unet.attn_processors.items()}
    assert all(isinstance(p, HGAAttnProcessor) for p in unet.attn_processors.values())
    numbered = {name: k for name, k in layers.items() if k is not None}
    expected = {
        f"up_blocks.{u}.attentions.{j}.transformer_blocks.0.attn2.processor": 3 * u + j
        for u in (1, 2, 3) for j in range(3)
    }
    assert numbered == expected
    assert sorted(k for scale in config.hga_layers for k in scale) == list(range(3, 12))


def test_appearance_encoder_starts_at_zero_with_the_query_shapes():
    """Zero convolutions: every bias is exactly 0 at initialisation, shaped like its layer's query."""
    torch.manual_seed(0)
    model = CFLDModel.from_config(TINY).eval()
    source = torch.randn(2, 3, *TINY.cond_size)
    with torch.no_grad():
        biases = model.appearance_encoder(model.source_encoder(source)[:3])
    assert {k: tuple(b.shape) for k, b in biases.items()} == _query_bias_shapes(TINY, 2)
    assert all(torch.count_nonzero(b) == 0 for b in biases.values())


def test_appearance_encoder_keys_are_the_original_ones(ref_dir):
    """``appearance_encoder.*`` of the original checkpoint loads unchanged (same names, shapes, order)."""
    original = torch.load(ref_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    original = {k.removeprefix("appearance_encoder."): v for k, v in original.items()
                if k.startswith("appearance_encoder.")}
    config = TINY
    encoder = AppearanceEncoder(config.hga_feature_dims, config.hga_embed_dims, config.hga_heads,
                                config.unet_channels, config.hga_layers, config.hga_depth)
    ours = encoder.state_dict()
    assert list(ours) == list(original)
    assert all(ours[k].shape == original[k].shape for k in ours)


def test_without_biases_the_unet_is_the_stock_unet(tiny_unet):
    """HGA processors with no (or zero) biases compute what the stock processors compute."""
    latents, prompt, _ = _random_inputs(TINY)
    stock = UNet2DConditionModel(**TINY.unet).eval()
    stock.load_state_dict(tiny_unet.state_dict())
    stock.set_attn_processor(AttnProcessor2_0())
    zeros = {k: torch.zeros(shape) for k, shape in _query_bias_shapes(TINY, 2).items()}
    with torch.no_grad():
        expected = stock(latents, 500, prompt).sample
        assert torch.equal(tiny_unet(latents, 500, prompt).sample, expected)
        with_zero = tiny_unet(latents, 500, prompt, cross_attention_kwargs={QUERY_BIASES: zeros}).sample
    torch.testing.assert_close(with_zero, expected, atol=1e-6, rtol=0)


def test_each_layer_bias_reaches_the_output(tiny_unet):
    """A bias on any single up-block cross-attention layer k changes the noise prediction."""
    latents, prompt, gen = _random_inputs(TINY)
    with torch.no_grad():
        base = tiny_unet(latents, 500, prompt).sample
        for k, shape in _query_bias_shapes(TINY, 2).items():
            bias = {k: torch.randn(shape, generator=gen)}
            eps = tiny_unet(latents, 500, prompt, cross_attention_kwargs={QUERY_BIASES: bias}).sample
            assert (eps - base).abs().max() > 1e-4, f"layer {k} has no effect"


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_query_biases_reach_every_attention_without_warnings(tiny_unet):
    """The UNet hands cross_attention_kwargs to all its attentions; every one accepts ``query_biases``
    silently (a stock processor would warn that it ignores the keyword)."""
    latents, prompt, _ = _random_inputs(TINY)
    kwargs = {QUERY_BIASES: {k: torch.zeros(s) for k, s in _query_bias_shapes(TINY, 2).items()}}
    records, logger = _Records(), logging.getLogger("diffusers")
    logger.addHandler(records)
    stock = UNet2DConditionModel(**TINY.unet).eval()
    try:
        with torch.no_grad():
            tiny_unet(latents, 500, prompt, cross_attention_kwargs=kwargs)
            assert not [m for m in records.messages if "not expected" in m]
            stock(latents, 500, prompt, cross_attention_kwargs=kwargs)  # the check can fail
            assert [m for m in records.messages if "not expected" in m]
    finally:
        logger.removeHandler(records)


def test_only_up_block_cross_attention_keys_and_values_train():
    """prepare_unet freezes the UNet except W_k, W_v of the up-block cross-attentions; gradients agree,
    and they flow back into the HGA biases."""
    unet = build_unet(TINY)
    trainable = sorted(n for n, p in unet.named_parameters() if p.requires_grad)
    assert trainable == sorted(
        f"up_blocks.{u}.attentions.{j}.transformer_blocks.0.attn2.{w}.weight"
        for u in (1, 2, 3) for j in range(3) for w in ("to_k", "to_v")
    )
    assert all(TRAINABLE_UNET.fullmatch(n) for n in trainable)
    latents, prompt, gen = _random_inputs(TINY)
    biases = {k: torch.randn(s, generator=gen, requires_grad=True) for k, s in _query_bias_shapes(TINY, 2).items()}
    unet(latents, 500, prompt, cross_attention_kwargs={QUERY_BIASES: biases}).sample.square().mean().backward()
    assert sorted(n for n, p in unet.named_parameters() if p.grad is not None) == trainable
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in biases.values())

