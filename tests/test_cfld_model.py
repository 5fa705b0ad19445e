"""CFLDModel glue and CFLDConfig: guidance batches, condition dropout, presets and the original config.yaml."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from cfld.errors import InputError
from cfld.guidance import FULL, POSE_ONLY, UNCOND
from cfld.models.cfld import CFLDModel, Conditions
from cfld.models.config import CFLDConfig

TINY = CFLDConfig.preset("tiny")


@pytest.fixture(scope="module")
def model() -> CFLDModel:
    torch.manual_seed(0)
    return CFLDModel.from_config(TINY).eval()


def _conditions(batch: int, seed: int = 0) -> Conditions:
    gen = torch.Generator().manual_seed(seed)
    return Conditions(
        prompt=torch.randn(batch, TINY.num_queries, TINY.prompt_dim, generator=gen),
        pose=[torch.randn(batch, 8, 4, 4, generator=gen), torch.randn(batch, 8, 2, 2, generator=gen)],
        query_biases={11: torch.randn(batch, 16, 8, generator=gen)},
    )


def test_guidance_batch_lays_out_eq7_branches(model):
    """(∅,∅), (∅,pose), (src,pose): learnable prompt / zero pose / zero bias where a branch lacks them."""
    c = _conditions(2)
    batch = model.guidance_batch(c, [UNCOND, POSE_ONLY, FULL])
    uncond = model.learnable_vector.expand(2, -1, -1)
    assert torch.equal(batch.prompt, torch.cat([uncond, uncond, c.prompt]))
    for ours, p in zip(batch.pose, c.pose):
        assert torch.equal(ours, torch.cat([torch.zeros_like(p), p, p]))
    b = c.query_biases[11]
    assert torch.equal(batch.query_biases[11], torch.cat([torch.zeros_like(b), torch.zeros_like(b), b]))
    kwargs = batch.unet_kwargs()
    assert kwargs["down_intrablock_additional_residuals"] is not batch.pose  # the UNet pops from it
    assert kwargs["cross_attention_kwargs"]["query_biases"] is batch.query_biases


def test_condition_dropout_replaces_prompts_with_probability_eta(model):
    """Rows drawn by ``torch.rand(B, 1, 1) < eta`` (the original's draw) become the learnable vector; pose
    maps and HGA biases are kept, as in the original training."""
    c = _conditions(2000)
    dropped = model.drop_conditions(c, generator=torch.Generator().manual_seed(3))
    expected = (torch.rand((2000, 1, 1), generator=torch.Generator().manual_seed(3)) < TINY.uncond_prob).flatten()
    is_uncond = (dropped.prompt == model.learnable_vector).flatten(1).all(1)
    assert torch.equal(is_uncond, expected)
    assert torch.equal(dropped.prompt[~expected], c.prompt[~expected])
    assert 0.17 < expected.float().mean() < 0.23
    assert dropped.pose is c.pose and dropped.query_biases is c.query_biases
    # the learnable vector gets gradients only through dropped rows
    dropped.prompt.sum().backward()
    assert model.learnable_vector.grad.sum() == expected.sum() * TINY.num_queries * TINY.prompt_dim


def test_original_yaml_gives_the_reference_configuration(ref_dir, golden_json):
    config = CFLDConfig.from_original_yaml(ref_dir / "config.yaml", unet=golden_json["unet_config"])
    raw = yaml.safe_load((ref_dir / "config.yaml").read_text())
    hga = raw["MODEL"]["APPEARANCE_GUIDANCE_CONFIG"]
    assert [k for scale in config.hga_layers for k in scale] == hga["ATTN_RESIDUAL_BLOCK_IDX"]
    assert config.hga_depth == hga["DEPTH"] and config.prd_depth == raw["MODEL"]["DECODER_CONFIG"]["DEPTH"]
    assert config.uncond_prob == raw["MODEL"]["U_COND_PERCENT"]
    if ref_dir.name == "reference_tiny":
        assert config == CFLDConfig.preset("tiny")


def test_original_yaml_options_cfld_does_not_use_are_refused(tmp_path, ref_dir, golden_json):
    raw = yaml.safe_load((ref_dir / "config.yaml").read_text())
    raw["MODEL"]["APPEARANCE_GUIDANCE_CONFIG"]["TO_KEYS"] = True
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="MODEL.APPEARANCE_GUIDANCE_CONFIG.TO_KEYS is True; CFLD supports only False"):
        CFLDConfig.from_original_yaml(path, unet=golden_json["unet_config"])
    with pytest.raises(InputError, match="CTX_DIMS is .* the Swin and UNet configs give"):
        CFLDConfig.from_original_yaml(ref_dir / "config.yaml")  # without its UNet: SD 1.5 does not fit
    del raw["MODEL"]["DECODER_CONFIG"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="has no key MODEL.DECODER_CONFIG.POSE_QUERY"):
        CFLDConfig.from_original_yaml(path, unet=golden_json["unet_config"])


@pytest.mark.parametrize("preset", ["sd15", "tiny"])
def test_json_round_trip_and_errors(tmp_path, preset):
    config = CFLDConfig.preset(preset)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert CFLDConfig.from_json(path) == config
    path.write_text(json.dumps({**config.to_dict(), "swin_depths": 4}))
    with pytest.raises(InputError, match="field swin_depths must be a list"):
        CFLDConfig.from_json(path)
    path.write_text("{")
    with pytest.raises(InputError, match="is not valid JSON"):
        CFLDConfig.from_json(path)
    with pytest.raises(InputError, match="not a CFLD preset"):
        CFLDConfig.preset("sdxl")
