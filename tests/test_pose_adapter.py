"""Pose adapter H_P: its maps, and where the stock UNet adds them (end of down blocks 0..2)."""

from __future__ import annotations

import pytest
import torch

from cfld.models.cfld import build_unet
from cfld.models.config import CFLDConfig
from cfld.models.pose_adapter import PoseAdapter

TINY = CFLDConfig.preset("tiny")


def _adapter(config: CFLDConfig) -> PoseAdapter:
    return PoseAdapter(config.pose_channels, config.unet_channels, config.pose_downscale)


def _down_block_outputs(unet, latents, prompt, residuals):
    """Each down block's output before its downsampler (the last of its skip states)."""
    outputs = []
    hooks = [
        block.register_forward_hook(lambda module, args, out: outputs.append(out[1][len(module.resnets) - 1]))
        for block in unet.down_blocks
    ]
    try:
        with torch.no_grad():
            unet(latents, 500, prompt, down_intrablock_additional_residuals=list(residuals))
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


@pytest.mark.parametrize("preset", ["tiny", "sd15"])
def test_maps_have_the_shapes_of_down_blocks_0_to_2(preset):
    config = CFLDConfig.preset(preset)
    with torch.device("meta"):
        maps = _adapter(config)(torch.empty(2, config.pose_channels, *config.pose_size))
    latent = config.unet["sample_size"]
    assert [tuple(m.shape) for m in maps] == [
        (2, channels, latent // 2**i, latent // 2**i)
        for i, channels in enumerate(config.unet["block_out_channels"][:3])
    ]


def test_unet_adds_map_i_at_the_end_of_down_block_i():
    """With only map i non-zero, down block i's pre-downsampling output moves by exactly map i (so the map
    enters after the block's last attention, before its downsampler) and earlier blocks do not move."""
    torch.manual_seed(0)
    unet = build_unet(TINY).eval()
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 16, 16, generator=gen)
    prompt = torch.randn(2, TINY.num_queries, TINY.prompt_dim, generator=gen)
    with torch.device("meta"):
        shapes = [m.shape for m in _adapter(TINY)(torch.empty(2, TINY.pose_channels, *TINY.pose_size))]
    zeros = [torch.zeros(s) for s in shapes]
    base = _down_block_outputs(unet, latents, prompt, zeros)
    for i, shape in enumerate(shapes):
        residual = torch.randn(shape, generator=gen)
        moved = _down_block_outputs(unet, latents, prompt, zeros[:i] + [residual] + zeros[i + 1:])
        for j in range(i):
            assert torch.equal(moved[j], base[j])
        torch.testing.assert_close(moved[i] - base[i], residual, atol=1e-5, rtol=0)


def test_loads_the_original_pose_encoder_weights(ref_dir, golden):
    """Same parameter names and shapes as ``pose_encoder.*``; with them, the maps of the golden poses
    have the golden shapes (values: tests/test_reference.py)."""
    original = torch.load(ref_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    weights = {k.removeprefix("pose_encoder."): v for k, v in original.items() if k.startswith("pose_encoder.")}
    channels = tuple(weights[f"resnets.{i}.conv2.weight"].shape[0] for i in range(3))
    pose_channels = golden["input_pose_img"].shape[1]
    downscale = int((weights["conv_in.weight"].shape[1] // pose_channels) ** 0.5)
    adapter = PoseAdapter(pose_channels, channels, downscale)
    assert list(adapter.state_dict()) == list(weights)
    adapter.load_state_dict(weights, strict=True)
    with torch.no_grad():
        maps = adapter(golden["input_pose_img"])
    assert [m.shape for m in maps] == [golden[f"cond_down_{i}"].shape for i in range(3)]
