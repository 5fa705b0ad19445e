"""The full-size model (paper Table 1) without downloading anything: the sd15 preset built on the meta
device, exported in the original layout, against manifest_sd15.json (every key and shape of the released
checkpoint files, and the trainable parameter counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cfld.checkpoint import to_original
from cfld.models.cfld import CFLDModel, build_unet, trainable_parameter_counts
from cfld.models.config import CFLDConfig

MANIFEST = Path(__file__).parent / "data" / "manifest_sd15.json"

# manifest "trainable" entry -> our component
COMPONENTS = {
    "source_encoder (backbone)": "source_encoder",
    "appearance_encoder (HGA phi_A)": "appearance_encoder",
    "prompt_decoder (PRD)": "prompt_decoder",
    "pose_adapter (pose_encoder)": "pose_adapter",
    "learnable_vector": "learnable_vector",
    "unet (up-block cross-attn K,V)": "unet",
    "total": "total",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@pytest.fixture(scope="module")
def sd15():
    """The paper's model with no weights at all (meta tensors): only names and shapes exist."""
    config = CFLDConfig.preset("sd15")
    with torch.device("meta"):
        return CFLDModel.from_config(config), build_unet(config)


def test_preset_is_the_paper_configuration():
    """Table 1: Swin-B, R = 8, Q = 16, C = 768, K = 4, SD 1.5 UNet; eta = 20 %."""
    c = CFLDConfig.preset("sd15")
    assert (c.swin_embed_dim, c.swin_depths, c.swin_heads) == (128, (2, 2, 18, 2), (4, 8, 16, 32))
    assert (c.prd_depth, c.num_queries, c.prompt_dim, c.hga_depth, c.uncond_prob) == (8, 16, 768, 4, 0.2)
    assert c.unet["block_out_channels"] == [320, 640, 1280, 1280] and c.unet["cross_attention_dim"] == 768


@pytest.mark.parametrize("name", ["pytorch_model.bin", "pytorch_model_1.bin"])
def test_original_export_has_exactly_the_released_keys_and_shapes(sd15, manifest, name):
    model, unet = sd15
    ours = dict(zip(("pytorch_model.bin", "pytorch_model_1.bin"), to_original(model, unet)))[name]
    expected = manifest[name]
    assert sorted(set(expected) - set(ours))[:5] == [] and sorted(set(ours) - set(expected))[:5] == []
    wrong = [(k, list(ours[k].shape), v) for k, v in expected.items() if list(ours[k].shape) != v]
    assert wrong == []
    assert list(ours) == list(expected)  # and in the original's order


def test_trainable_parameters_match_table_1(sd15, manifest):
    model, unet = sd15
    counts = trainable_parameter_counts(model, unet)
    assert {ours: counts[ours] for ours in COMPONENTS.values()} == {
        ours: manifest["trainable"][theirs] for theirs, ours in COMPONENTS.items()
    }
    assert counts["total"] == 248_224_312
    trainable_unet = sorted("model." + n for n, p in unet.named_parameters() if p.requires_grad)
    assert trainable_unet == sorted(manifest["trainable_unet_keys"])
