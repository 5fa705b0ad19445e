"""Perception-refined decoder H_D: the original's prompts, checkpoint layout and full-size parameter count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cfld.errors import InputError
from cfld.models import PerceptionRefinedDecoder, SourceImageEncoder

MANIFEST = Path(__file__).parent / "data" / "manifest_sd15.json"


@pytest.fixture(scope="module")
def decoder(original_config, original_weights):
    decoder = PerceptionRefinedDecoder.from_original_config(original_config).eval()
    decoder.load_original_state_dict(original_weights, "reference checkpoint")
    return decoder


def test_prompt_matches_the_original(original_config, original_weights, decoder, golden):
    """H_D(H_S(x_s)) = cond_c rows B.. (eval mode) within 1e-5; rows ..B are the learnable vector."""
    encoder = SourceImageEncoder.from_original_config(original_config).eval()
    encoder.load_original_state_dict(original_weights, "reference checkpoint")
    images = golden["input_img_cond"]
    batch = images.shape[0]
    with torch.no_grad():
        prompt = decoder(encoder(images)[-1])
    decoder_config = original_config["MODEL"]["DECODER_CONFIG"]
    assert prompt.shape == (batch, decoder_config["N_CTX"], decoder_config["CTX_DIM"])
    assert (prompt - golden["cond_c"][batch:]).abs().max().item() <= 1e-5
    assert torch.equal(golden["cond_c"][:batch], original_weights["learnable_vector"].expand(batch, -1, -1))


def test_cross_attention_precedes_self_attention(decoder):
    order = []
    hooks = [module.register_forward_hook(lambda module, args, out, name=name: order.append(name))
             for name, module in decoder.blocks[0].named_children() if name.startswith(("attn", "ff"))]
    f4 = torch.randn(1, decoder.kv_pos_embed.shape[2], 1, decoder.kv_pos_embed.shape[1])
    with torch.no_grad():
        decoder(f4)
    for hook in hooks:
        hook.remove()
    assert order == ["attn2", "attn1", "ff"]


def test_original_layout_round_trip(decoder, original_weights):
    exported = decoder.to_original_state_dict()
    original = {k: v for k, v in original_weights.items() if k.startswith("decoder.")}
    assert list(exported) == list(original)
    assert all(torch.equal(exported[k], v) for k, v in original.items())
    stripped = {k.removeprefix("decoder."): v for k, v in original.items()}
    assert list(PerceptionRefinedDecoder.convert_original_state_dict(original_weights)) == list(stripped)
    assert list(PerceptionRefinedDecoder.convert_original_state_dict(stripped)) == list(stripped)


def test_bad_checkpoint_and_config_are_input_errors(original_config, original_weights):
    decoder = PerceptionRefinedDecoder.from_original_config(original_config)
    weights = {k: v for k, v in original_weights.items() if k.startswith("decoder.")}
    del weights["decoder.kv_pos_embed"]
    with pytest.raises(InputError, match=r"ckpt: .*missing keys \(kv_pos_embed"):
        decoder.load_original_state_dict(weights, "ckpt")
    decoder_config = {**original_config["MODEL"]["DECODER_CONFIG"], "POSE_QUERY": True}
    pose_query = {**original_config, "MODEL": {**original_config["MODEL"], "DECODER_CONFIG": decoder_config}}
    with pytest.raises(InputError, match="POSE_QUERY"):
        PerceptionRefinedDecoder.from_original_config(pose_query)
    with pytest.raises(InputError, match="heads"):
        PerceptionRefinedDecoder(dim=30, num_heads=4)


def test_full_size_layout_matches_the_released_checkpoint():
    """R = 8, Q = 16, C = 768 on Swin-B's f4 (1024 x 8 x 8): the released ``decoder.*`` keys; Table 1's 97.7M."""
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        decoder = PerceptionRefinedDecoder(num_queries=16, dim=768, depth=8, context_dim=1024, context_size=(8, 8))
    exported = {k: list(v.shape) for k, v in decoder.to_original_state_dict().items()}
    assert exported == {k: v for k, v in manifest["pytorch_model.bin"].items() if k.startswith("decoder.")}
    trainable = sum(p.numel() for p in decoder.parameters() if p.requires_grad)
    assert trainable == manifest["trainable"]["prompt_decoder (PRD)"] == 97_712_128
