"""Checkpoints: the original .bin pair, our safetensors folder, `cfld convert`, Stable Diffusion components."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from cfld import checkpoint as ckpt
from cfld.cli import main
from cfld.errors import InputError
from cfld.models.cfld import build_unet
from cfld.models.config import CFLDConfig
from cfld.models.hybrid_granularity_attention import HGAAttnProcessor


@pytest.fixture(scope="module")
def config(ref_dir, golden_json) -> CFLDConfig:
    return CFLDConfig.from_original_yaml(ref_dir / "config.yaml", unet=golden_json["unet_config"])


@pytest.fixture(scope="module")
def original(ref_dir):
    """The reference's two state dicts, as stored."""
    return tuple(torch.load(ref_dir / name, map_location="cpu", weights_only=True)
                 for name in (ckpt.ORIGINAL_MODEL, ckpt.ORIGINAL_UNET))


@pytest.fixture(scope="module")
def loaded(ref_dir, config):
    return ckpt.load_original(ref_dir, config)


def _same_state(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _write_original(folder, model_state, unet_state):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model_state, folder / ckpt.ORIGINAL_MODEL)
    torch.save(unet_state, folder / ckpt.ORIGINAL_UNET)
    return folder


def test_original_to_ours_and_back_is_lossless(tmp_path, loaded, original):
    """original -> safetensors folder -> original gives the very same state dicts: keys, order, dtypes,
    values, including the Swin buffers; the loaded UNet carries the HGA processors."""
    model, unet = loaded
    assert all(isinstance(p, HGAAttnProcessor) for p in unet.attn_processors.values())
    ckpt.save_checkpoint(tmp_path / "ours", model, unet)
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == [ckpt.CONFIG, ckpt.MODEL, ckpt.UNET]
    assert CFLDConfig.from_json(tmp_path / "ours" / ckpt.CONFIG) == model.config
    assert set(load_file(str(tmp_path / "ours" / ckpt.MODEL))) == set(model.state_dict())
    assert len(load_file(str(tmp_path / "ours" / ckpt.UNET))) == len(original[1])  # the whole UNet

    model2, unet2 = ckpt.load_checkpoint(tmp_path / "ours")
    ckpt.save_original(tmp_path / "back", model2, unet2)
    back = [torch.load(tmp_path / "back" / n, weights_only=True) for n in (ckpt.ORIGINAL_MODEL, ckpt.ORIGINAL_UNET)]
    assert _same_state(back[0], original[0]) and _same_state(back[1], original[1])


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path, ref_dir, config, original):
    model_state, unet_state = (dict(s) for s in original)
    dropped = [k for k in model_state if k.startswith("pose_encoder.")]
    for key in dropped:
        del model_state[key]
    model_state["decoder.extra"] = torch.zeros(1)
    model_state["learnable_vector"] = torch.zeros(1, 3, 3)
    folder = _write_original(tmp_path / "bad", model_state, unet_state)
    with pytest.raises(InputError) as error:
        ckpt.load_original(folder, config)
    message = str(error.value)
    assert ckpt.ORIGINAL_MODEL in message
    assert f"{len(dropped)} missing keys ({dropped[0]}" in message and f"({len(dropped)} in all)" in message
    assert "1 unexpected keys (decoder.extra)" in message
    assert "learnable_vector (1, 3, 3) instead of" in message

    unet_state = {k.replace("model.", "unet.", 1): v for k, v in original[1].items()}  # wrong prefix
    folder = _write_original(tmp_path / "bad_unet", original[0], unet_state)
    with pytest.raises(InputError, match=re.escape(ckpt.ORIGINAL_UNET) + ".*missing keys.*unexpected keys"):
        ckpt.load_original(folder, config)


def test_swin_buffers_must_fit_the_configuration(tmp_path, config, original):
    model_state = dict(original[0])
    key = next(k for k in model_state if k.endswith("relative_position_index"))
    model_state[key] = model_state[key].flip(-1)
    folder = _write_original(tmp_path / "other_window", model_state, original[1])
    with pytest.raises(InputError, match="another Swin window or image size: 1 buffers differ"):
        ckpt.load_original(folder, config)


class _NotATensor:
    pass


def test_unsafe_or_foreign_pickles_are_refused(tmp_path, config, original):
    """weights_only=True: an arbitrary object is never unpickled; a non-state-dict is named as such."""
    folder = _write_original(tmp_path / "evil", {"x": _NotATensor()}, original[1])
    with pytest.raises(InputError,
                       match=r"evil/pytorch_model\.bin: holds Python code or objects \(.*\) that safe loading"):
        ckpt.load_original(folder, config)
    folder = _write_original(tmp_path / "list", [torch.zeros(1)], original[1])
    with pytest.raises(InputError, match="is not a state dict"):
        ckpt.load_original(folder, config)
    with pytest.raises(InputError, match="no such file"):
        ckpt.load_original(tmp_path / "nowhere", config)


def test_our_format_is_strict_and_never_overwritten_silently(tmp_path, loaded):
    model, unet = loaded
    folder = ckpt.save_checkpoint(tmp_path / "ours", model, unet)
    with pytest.raises(InputError, match="already exists"):
        ckpt.save_checkpoint(folder, model, unet)
    ckpt.save_checkpoint(folder, model, unet, overwrite=True)

    state = load_file(str(folder / ckpt.UNET))
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(folder / ckpt.UNET))
    with pytest.raises(InputError, match=r"unet\.safetensors.*1 missing keys.*1 unexpected keys \(extra\.weight\)"):
        ckpt.load_checkpoint(folder)
    (folder / ckpt.MODEL).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="cannot be read as safetensors"):
        ckpt.load_checkpoint(folder)
    (folder / ckpt.CONFIG).write_text(json.dumps({"swin_depth": 3}))
    with pytest.raises(InputError, match="unknown CFLD config fields swin_depth"):
        ckpt.load_checkpoint(folder)


def test_cfld_convert_both_ways(tmp_path, ref_dir, golden_json, original, capsys):
    """The released layout becomes a pipeline folder in diffusers' layout (VAE and schedule from --base), and back."""
    unet_config = tmp_path / "unet_config.json"
    unet_config.write_text(json.dumps(golden_json["unet_config"]))
    ours, back = tmp_path / "ours", tmp_path / "back"
    assert main(["convert", str(ref_dir), str(ours), "--unet-config", str(unet_config), "--base", str(ref_dir)]) == 0
    assert "in diffusers' layout" in capsys.readouterr().out
    assert json.loads((ours / "model_index.json").read_text())["model"] == ["cfld", "CFLDModel"]
    assert (ours / "vae" / "config.json").is_file() and (ours / "README.md").is_file()
    assert main(["convert", str(ours), str(back)]) == 0
    assert _same_state(torch.load(back / ckpt.ORIGINAL_MODEL, weights_only=True), original[0])
    assert _same_state(torch.load(back / ckpt.ORIGINAL_UNET, weights_only=True), original[1])
    assert "wrote the original checkpoints" in capsys.readouterr().out
    assert main(["convert", str(ref_dir), str(tmp_path / "z"), "--to", "original"]) == 2
    assert "already holds the original checkpoints" in capsys.readouterr().err

    assert main(["convert", str(ours), str(back)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(ours), str(back), "--overwrite"]) == 0
    assert main(["convert", str(ref_dir), str(tmp_path / "x"), "--config", "sd15", "--base", str(ref_dir)]) == 2
    assert "missing keys" in capsys.readouterr().err  # the wrong config
    assert main(["convert", str(tmp_path), str(tmp_path / "y")]) == 2
    assert "holds neither" in capsys.readouterr().err


# -- Stable Diffusion components ----------------------------------------------------------------------------


def _to_ldm(unet_state: dict) -> dict:
    """A diffusers SD UNet state dict in the original LDM single-file layout (the inverse of the conversion
    diffusers' ``from_single_file`` applies), to test that path without downloading a checkpoint."""
    blocks = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
              "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
              "mid_block.attentions.0.": "middle_block.1."}
    for j in range(2):
        blocks[f"mid_block.resnets.{j}."] = f"middle_block.{2 * j}."
    for i in range(4):
        for j in range(2):
            blocks[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{3 * i + j + 1}.0."
            blocks[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{3 * i + j + 1}.1."
        for j in range(3):
            blocks[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{3 * i + j}.0."
            blocks[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{3 * i + j}.1."
        blocks[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{3 * (i + 1)}.0.op."
        blocks[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}."
    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
    out = {}
    for key, value in unet_state.items():
        prefix = max((p for p in blocks if key.startswith(p)), key=len)
        rest = key[len(prefix):]
        if ".resnets." in prefix:
            name, _, param = rest.partition(".")
            rest = f"{resnet[name]}.{param}"
        out["model.diffusion_model." + blocks[prefix] + rest] = value
    return out


@pytest.fixture(scope="module")
def sd_unet():
    torch.manual_seed(0)
    return build_unet(CFLDConfig.preset("tiny"))


@pytest.mark.parametrize("kind", ["diffusers folder", "single .safetensors", "single .ckpt"])
def test_stable_diffusion_unet_from_folder_or_single_file(tmp_path, sd_unet, kind):
    tiny = CFLDConfig.preset("tiny")
    if kind == "diffusers folder":
        sd_unet.save_pretrained(tmp_path / "sd" / "unet")
        source = tmp_path / "sd"
    elif kind == "single .safetensors":
        source = tmp_path / "sd.safetensors"
        save_file(_to_ldm(sd_unet.state_dict()), str(source))
    else:
        source = tmp_path / "sd.ckpt"
        torch.save({"state_dict": _to_ldm(sd_unet.state_dict())}, source)
    unet = ckpt.load_sd15_unet(source, config=tiny)
    assert _same_state(unet.state_dict(), sd_unet.state_dict())
    assert all(isinstance(p, HGAAttnProcessor) for p in unet.attn_processors.values())
    assert sum(p.requires_grad for p in unet.parameters()) == 18


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_stable_diffusion_sources_that_cannot_load(tmp_path, sd_unet):
    with pytest.raises(InputError, match="owner/name-that-is-not-cached: cannot be downloaded from the Hugging"):
        ckpt.load_sd15_unet("owner/name-that-is-not-cached", local_files_only=True)  # never downloads
    with pytest.raises(InputError, match="neither a file, a folder, nor a Hugging Face Hub id"):
        ckpt.load_sd15_unet(str(tmp_path / "missing" / "sd"))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"not a single-file checkpoint \(\.safetensors or \.ckpt\)"):
        ckpt.load_sd15_unet(tmp_path / "weights.bin")
    sd_unet.save_pretrained(tmp_path / "tiny" / "unet")  # a UNet, but not one of the sd15 config
    with pytest.raises(InputError, match="wrong shapes"):
        ckpt.load_sd15_unet(tmp_path / "tiny")
