"""Source image encoder H_S: a Swin transformer giving the multi-scale maps F_s = [f1, f2, f3, f4] (paper Sec. 3.2).

The paper's H_S is Swin-B [22] (patch 4, window 16, 256x256 source image), initialised from Microsoft's
ImageNet-22k Swin-B. ``f1``..``f3`` feed the hybrid-granularity attention (Eq. 4), ``f4`` the
perception-refined decoder. We configure timm's ``SwinTransformer`` and only add what CFLD changes:

* ``f_i`` is the output of stage ``i``'s transformer blocks, *before* that stage's patch merging (the
  original, built on Microsoft's code where patch merging ends a stage, takes it there). timm merges at the
  *start* of the next stage, so timm's stage outputs are exactly these tensors.
* there is no final LayerNorm (the original's ``LAST_NORM: False``) and no classifier.
* checkpoints use the original (Microsoft) layout: ``layers.i.downsample`` at the end of stage ``i`` and the
  buffers ``relative_position_index`` / ``attn_mask`` stored with the weights. timm keeps its merging in
  ``layers.{i+1}.downsample`` (same 2x2 channel order, so the weights map unchanged) and recomputes the buffers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from timm.layers import resize_rel_pos_bias_table_simple
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from ..errors import InputError
from ..state_dict import load_strict, load_torch_file, strip_prefix

BUFFERS = ("relative_position_index", "attn_mask")
"""Persistent buffers of the original layout that timm recomputes (non-persistent there)."""


class SourceImageEncoder(nn.Module):
    """H_S: ``(B, 3, H, W)`` image in [-1, 1] -> ``[f1, f2, f3, f4]``, NCHW, ``f_i`` of shape
    ``(B, embed_dim * 2**(i-1), H / 2**(i+1), W / 2**(i+1))``.

    Defaults are the paper's Swin-B; ``drop_path_rate`` (stochastic depth, linear in block index as in the
    original) acts in training mode only.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 256,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 16,
        drop_path_rate: float = 0.2,
        patch_size: int = 4,
        in_chans: int = 3,
    ):
        super().__init__()
        self.swin = SwinTransformer(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0, global_pool="",
            embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(num_heads), window_size=window_size,
            drop_path_rate=drop_path_rate,
        )
        self.swin.norm = nn.Identity()  # the maps are handed on un-normalised

    @classmethod
    def from_original_config(cls, cfg: Mapping) -> SourceImageEncoder:
        """Build from the original yacs config (a nested mapping): ``MODEL.COND_STAGE_CONFIG`` and ``INPUT.COND``."""
        def stage(key: str):
            return config_value(cfg, "MODEL.COND_STAGE_CONFIG." + key)

        if stage("LAST_NORM"):
            raise InputError("config MODEL.COND_STAGE_CONFIG.LAST_NORM", "True is not supported (CFLD uses False)")
        if config_value(cfg, "INPUT.COND.PRED_RATIO"):
            raise InputError("config INPUT.COND.PRED_RATIO", "masked source images are not supported (CFLD uses [])")
        return cls(
            img_size=tuple(config_value(cfg, "INPUT.COND.IMG_SIZE")),
            embed_dim=stage("EMBED_DIM"),
            depths=tuple(stage("DEPTHS")),
            num_heads=tuple(stage("NUM_HEADS")),
            window_size=stage("WINDOW_SIZE"),
            drop_path_rate=stage("DROP_PATH_RATE"),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.swin.forward_intermediates(x, intermediates_only=True)

    # -- checkpoints in the original layout ------------------------------------------------------------

    @staticmethod
    def convert_original_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Original (Microsoft-layout) backbone keys -> our keys; the buffers are dropped (timm recomputes them).

        Accepts the ``backbone.*`` keys of a whole CFLD checkpoint (other components are ignored) or the
        backbone's own keys without prefix.
        """
        state_dict = strip_prefix(state_dict, "backbone.", optional=True)
        out = {}
        for key, value in state_dict.items():
            if key.rsplit(".", 1)[-1] in BUFFERS:
                continue
            key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) + 1}.downsample", key)
            out["swin." + key] = value
        return out

    def to_original_state_dict(self, prefix: str = "backbone.") -> dict[str, torch.Tensor]:
        """Our weights in the original key layout and order, with the buffers ``relative_position_index`` and
        ``attn_mask`` (of shifted blocks) that the original stores."""
        ours = self.swin.state_dict()
        out: dict[str, torch.Tensor] = {}
        for key, value in ours.items():
            if match := re.fullmatch(r"layers\.(\d+)\.downsample\.(.*)", key):
                stage, name = int(match[1]), match[2]
                if name == "reduction.weight":
                    continue  # emitted before the norm, in Microsoft's order
                if name == "norm.weight":
                    out[f"layers.{stage - 1}.downsample.reduction.weight"] = ours[key.replace("norm", "reduction")]
                key = f"layers.{stage - 1}.downsample.{name}"
            elif match := re.fullmatch(r"(layers\.(\d+)\.blocks\.(\d+)\.)(.*)", key):
                block = self.swin.layers[int(match[2])].blocks[int(match[3])]
                if match[4] == "norm1.weight" and block.attn_mask is not None:
                    out[match[1] + "attn_mask"] = block.attn_mask
                if match[4] == "attn.qkv.weight":
                    out[match[1] + "attn.relative_position_index"] = block.attn.relative_position_index
            out[key] = value
        return {prefix + key: value for key, value in out.items()}

    def load_original_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: object = "state dict") -> None:
        """Load original-layout weights, after checking that the stored buffers equal the ones timm computed
        for our configuration (a different window or image size shows up here)."""
        given = strip_prefix(state_dict, "backbone.", optional=True)
        expected = self.to_original_state_dict(prefix="")
        wrong = [
            key for key, value in given.items()
            if key.rsplit(".", 1)[-1] in BUFFERS
            and not (key in expected and expected[key].shape == value.shape
                     and torch.equal(expected[key], value.to(expected[key])))
        ]
        if wrong:
            problem = f"buffers differ from this Swin configuration (window or image size?): {', '.join(wrong)}"
            raise InputError(source, problem)
        load_strict(self, self.convert_original_state_dict(given), source)

    def load_microsoft_pretrained(self, path: str | Path) -> None:
        """Initialise from a Microsoft Swin checkpoint (e.g. ``swin_base_patch4_window12_384_22kto1k.pth``,
        weights under ``'model'``), as the original does for training: classifier and final norm dropped,
        relative position bias tables resized bicubically (``align_corners=False``, no antialiasing) to our
        window sizes."""
        checkpoint = load_torch_file(path, "Swin checkpoint")
        state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
        if not isinstance(state_dict, Mapping):
            raise InputError(path, "holds no state dict (expected a dict, optionally under 'model')")
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("head.", "norm."))}
        state_dict = self.convert_original_state_dict(state_dict)
        own = self.state_dict()
        for key, table in state_dict.items():
            if key.endswith("relative_position_bias_table") and key in own and table.shape != own[key].shape:
                if table.shape[1] != own[key].shape[1]:
                    raise InputError(path, f"{key} has {table.shape[1]} heads, the model {own[key].shape[1]}")
                window = self.get_submodule(key.rsplit(".", 1)[0]).window_size
                state_dict[key] = resize_rel_pos_bias_table_simple(table, window, own[key].shape)
        load_strict(self, state_dict, path)


def config_value(cfg: Mapping, dotted: str):
    """``cfg["A"]["B"]...`` for ``"A.B..."``, as an InputError naming the key when it is absent."""
    value = cfg
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise InputError("config", f"has no key {dotted}")
        value = value[part]
    return value
