"""Source image encoder H_S: stage maps, the original checkpoint layout, Microsoft ImageNet initialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cfld.errors import InputError
from cfld.models import SourceImageEncoder

MANIFEST = Path(__file__).parent / "data" / "manifest_sd15.json"
SWIN_B = dict(img_size=256, embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=16)


@pytest.fixture(scope="module")
def encoder(original_config, original_weights):
    encoder = SourceImageEncoder.from_original_config(original_config).eval()
    encoder.load_original_state_dict(original_weights, "reference checkpoint")
    return encoder


def test_maps_are_stage_outputs_before_patch_merging(encoder, original_config, golden):
    """f_i has stage i's width and resolution, and f_{i+1} is stage i+1 (merging, then blocks) applied to f_i:
    the maps are taken before each stage's patch merging, as the original takes them."""
    image = golden["input_img_cond"]
    with torch.no_grad():
        maps = encoder(image)
    stage = original_config["MODEL"]["COND_STAGE_CONFIG"]
    assert len(maps) == len(stage["DEPTHS"])
    batch, _, height, width = image.shape
    for i, f in enumerate(maps):
        assert f.shape == (batch, stage["EMBED_DIM"] * 2**i, height // 2 ** (i + 2), width // 2 ** (i + 2))
    with torch.no_grad():
        for i in range(len(maps) - 1):
            following = encoder.swin.layers[i + 1](maps[i].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            torch.testing.assert_close(following, maps[i + 1], rtol=0, atol=1e-6)


def test_drop_path_is_the_original_linear_rule_and_off_in_eval():
    encoder = SourceImageEncoder(img_size=32, embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=2,
                                 drop_path_rate=0.5)
    rates = [getattr(block.drop_path1, "drop_prob", 0.0) for stage in encoder.swin.layers for block in stage.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.5, 8).tolist())
    image = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    encoder.train()
    assert not torch.equal(encoder(image)[-1], encoder(image)[-1])
    encoder.eval()
    assert torch.equal(encoder(image)[-1], encoder(image)[-1])


def test_original_layout_round_trip(encoder, original_weights):
    """Export gives the original keys in the original order with the original values, buffers included."""
    exported = encoder.to_original_state_dict()
    original = {k: v for k, v in original_weights.items() if k.startswith("backbone.")}
    assert list(exported) == list(original)
    for key, value in original.items():
        assert exported[key].dtype == value.dtype and torch.equal(exported[key], value), key
    stripped = {k.removeprefix("backbone."): v for k, v in original.items()}
    assert SourceImageEncoder.convert_original_state_dict(stripped).keys() == \
        SourceImageEncoder.convert_original_state_dict(original_weights).keys()


def test_merging_moves_to_the_next_stage(original_weights):
    converted = SourceImageEncoder.convert_original_state_dict(original_weights)
    merging = original_weights["backbone.layers.0.downsample.reduction.weight"]
    assert torch.equal(converted["swin.layers.1.downsample.reduction.weight"], merging)
    assert not any("layers.0.downsample" in key or key.endswith(("attn_mask", "relative_position_index"))
                   for key in converted)


def test_bad_checkpoints_are_input_errors(original_config, original_weights):
    encoder = SourceImageEncoder.from_original_config(original_config)
    backbone = {k: v for k, v in original_weights.items() if k.startswith("backbone.")}
    missing = dict(backbone)
    del missing["backbone.patch_embed.norm.bias"]
    with pytest.raises(InputError, match=r"ckpt: .*missing keys \(swin\.patch_embed\.norm\.bias"):
        encoder.load_original_state_dict(missing, "ckpt")
    with pytest.raises(InputError, match=r"unexpected keys \(swin\.masked_embed"):
        encoder.load_original_state_dict({**backbone, "backbone.masked_embed": torch.zeros(1, 16)}, "ckpt")
    mask_key = next(k for k in backbone if k.endswith("attn_mask"))
    with pytest.raises(InputError, match="buffers differ .*" + mask_key.removeprefix("backbone.")):
        encoder.load_original_state_dict({**backbone, mask_key: torch.zeros_like(backbone[mask_key])}, "ckpt")
    stage = original_config["MODEL"]["COND_STAGE_CONFIG"]
    other_window = SourceImageEncoder(
        img_size=tuple(original_config["INPUT"]["COND"]["IMG_SIZE"]), embed_dim=stage["EMBED_DIM"],
        depths=stage["DEPTHS"], num_heads=stage["NUM_HEADS"], window_size=stage["WINDOW_SIZE"] // 2,
    )
    with pytest.raises(InputError, match="buffers differ"):
        other_window.load_original_state_dict(original_weights, "ckpt")


def test_unsupported_config_is_an_input_error(original_config):
    with pytest.raises(InputError, match="LAST_NORM"):
        SourceImageEncoder.from_original_config({**original_config, "MODEL": {
            **original_config["MODEL"], "COND_STAGE_CONFIG": {**original_config["MODEL"]["COND_STAGE_CONFIG"],
                                                              "LAST_NORM": True}}})
    with pytest.raises(InputError, match="has no key INPUT.COND.IMG_SIZE"):
        SourceImageEncoder.from_original_config({**original_config, "INPUT": {"COND": {"PRED_RATIO": []}}})


def test_full_size_layout_matches_the_released_checkpoint():
    """Swin-B at the paper's size exports exactly the released ``backbone.*`` keys and shapes; Table 1's 87.0M."""
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        encoder = SourceImageEncoder(**SWIN_B)
    exported = {k: list(v.shape) for k, v in encoder.to_original_state_dict().items()}
    assert exported == {k: v for k, v in manifest["pytorch_model.bin"].items() if k.startswith("backbone.")}
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert trainable == manifest["trainable"]["source_encoder (backbone)"] == 86_991_864


def _original_table_resize(table: torch.Tensor, size: int) -> torch.Tensor:
    """The original's resize of a ((2W-1)^2, heads) table: bicubic on the (2W-1)x(2W-1) grid, align_corners=False."""
    side, heads = int(table.shape[0] ** 0.5), table.shape[1]
    grid = table.permute(1, 0).reshape(1, heads, side, side)
    return F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False).reshape(heads, -1).permute(1, 0)


def test_microsoft_pretrained_tables_are_resized_like_the_original(tmp_path):
    """A Microsoft-layout file (window 4 everywhere, with head, final norm, buffers) into window 8: stage 1 tables
    grow 7x7 -> 15x15, stage 3 keeps 7x7, stage 4 (2x2 map, window 2) shrinks to 3x3; the rest is copied."""
    tiny = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
    torch.manual_seed(0)
    source = SourceImageEncoder(img_size=128, window_size=4, **tiny)
    weights = source.to_original_state_dict(prefix="")
    weights.update({"norm.weight": torch.ones(128), "norm.bias": torch.zeros(128),
                    "head.weight": torch.randn(10, 128), "head.bias": torch.zeros(10)})
    path = tmp_path / "swin_tiny_window4.pth"
    torch.save({"model": weights}, path)

    target = SourceImageEncoder(img_size=64, window_size=8, **tiny)
    target.load_microsoft_pretrained(path)
    loaded = target.to_original_state_dict(prefix="")
    sizes = {0: 15, 1: 15, 2: 7, 3: 3}
    for key, value in weights.items():
        if key.startswith(("head.", "norm.")) or key.endswith(("attn_mask", "relative_position_index")):
            continue
        if key.endswith("relative_position_bias_table"):
            expected = _original_table_resize(value, sizes[int(key.split(".")[1])])
            torch.testing.assert_close(loaded[key], expected, rtol=0, atol=1e-7)
        else:
            assert torch.equal(loaded[key], value), key

    other_heads = SourceImageEncoder(img_size=64, window_size=8, **{**tiny, "num_heads": (2, 2, 2, 4)})
    with pytest.raises(InputError, match="heads"):
        other_heads.load_microsoft_pretrained(path)
    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_text("not a checkpoint")
    with pytest.raises(InputError, match="notes.pth"):
        target.load_microsoft_pretrained(not_a_checkpoint)
