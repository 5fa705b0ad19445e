"""CFLDConfig: every size of the CFLD model (paper Table 1) in one flat, JSON-serialisable dataclass.

Two presets: ``sd15`` is the paper (Swin-B, R = 8, Q = 16, C = 768, K = 4, Stable Diffusion 1.5 UNet) and
``tiny`` is the random-weight configuration of ``tests/data/reference_tiny``. ``from_original_yaml`` reads
the original implementation's ``config.yaml`` (a yacs dump), rejecting the options it has that CFLD does
not use, so a released checkpoint's configuration maps onto ours without guessing.

What follows from the UNet is derived rather than stored: the HGA (H_A) works on the up blocks of the
three highest resolutions, source feature f_l feeding the up block of f_l's resolution; the pose adapter
(H_P) produces one map per down block 0..2 with that block's channels.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import validation as V
from ..errors import InputError
from ..io import read_json, read_yaml

SCALES = 3
"""Scales l = 1, 2, 3 that carry fine-grained appearance (HGA) and pose (adapter) conditions."""
POSE_CHANNELS = 21
"""Channels of a pose image: the RGB skeleton and one heatmap per OpenPose-18 joint (:func:`cfld.pose.pose_image`)."""

SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
"""Stable Diffusion 1.5's ``unet/config.json`` (the keys that differ from diffusers' defaults, and the
block layout), so the full-size model can be built without downloading anything."""

TINY_UNET_CONFIG: dict[str, Any] = {
    **SD15_UNET_CONFIG,
    "sample_size": 16,
    "block_out_channels": [32, 32, 64, 64],
    "cross_attention_dim": 32,
    "attention_head_dim": 2,
    "norm_num_groups": 8,
}


def check_unet_config(unet: Any, source: object) -> dict[str, Any]:
    """The structure of a diffusers UNet config that CFLD relies on (a block type per width, at least four
    blocks, whole numbers), or one InputError naming ``source``; diffusers checks the rest when it builds."""
    unet = V.check_mapping(unet, "unet", source)
    blocks = V.check_ints(unet.get("block_out_channels"), "unet block_out_channels", source, None, 1, 16384)
    for key in ("down_block_types", "up_block_types"):
        types = unet.get(key)
        if (not isinstance(types, (list, tuple)) or len(types) != len(blocks)
                or not all(isinstance(t, str) for t in types)):
            raise InputError(source, f"unet {key} must list one block type per entry of block_out_channels, "
                                     f"got {V.shown(types)}")
    if len(blocks) < SCALES + 1:
        raise InputError(source, f"unet block_out_channels must have at least {SCALES + 1} entries, got {list(blocks)}")
    V.check_int(unet.get("layers_per_block", 2), "unet layers_per_block", source, 1, 64)
    for key in ("in_channels", "out_channels", "sample_size", "cross_attention_dim", "norm_num_groups"):
        if key in unet:
            V.check_int(unet[key], f"unet {key}", source, 1, 16384)
    return unet



PRESETS = ("sd15", "tiny")
"""The names :meth:`CFLDConfig.preset` takes: the paper's size, and the random-weight reference's."""

@dataclass
class CFLDConfig:
    """Sizes of every CFLD component. Field groups follow Fig. 2: H_S, H_D, H_A, H_P, the UNet H_N."""

    # H_S, source image encoder: Swin transformer over the condition image
    cond_size: tuple[int, int] = (256, 256)
    swin_embed_dim: int = 128
    swin_depths: tuple[int, ...] = (2, 2, 18, 2)
    swin_heads: tuple[int, ...] = (4, 8, 16, 32)
    swin_window: int = 16
    swin_drop_path: float = 0.2
    # H_D, perception-refined decoder: Q learnable queries of dim C refined by R blocks
    num_queries: int = 16
    prompt_dim: int = 768
    prd_depth: int = 8
    prd_heads: int = 24
    # H_A, hybrid-granularity attention: per scale l, phi_A's width and heads; K layers each
    hga_depth: int = 4
    hga_embed_dims: tuple[int, ...] = (64, 128, 256)
    hga_heads: tuple[int, ...] = (2, 4, 8)
    # H_P, pose adapter: pose image channels (3 skeleton + 18 heatmaps), pixel-unshuffle factor
    pose_channels: int = 21
    pose_downscale: int = 4
    pose_size: tuple[int, int] = (256, 256)
    # H_N, the Stable Diffusion UNet (diffusers UNet2DConditionModel config) and its image size
    unet: dict[str, Any] = field(default_factory=lambda: dict(SD15_UNET_CONFIG))
    image_size: tuple[int, int] = (512, 512)
    # training: probability eta of replacing the prompt by the learnable unconditional vector (Sec. 3.3)
    uncond_prob: float = 0.2

    # -- presets and serialisation -------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> CFLDConfig:
        """``"sd15"`` (the paper) or ``"tiny"`` (the random-weight reference of the tests): :data:`PRESETS`."""
        if name == "sd15":
            return cls()
        if name == "tiny":
            return cls(
                cond_size=(64, 64), swin_embed_dim=16, swin_depths=(2, 2, 2, 2), swin_heads=(1, 2, 2, 4),
                swin_window=4, num_queries=4, prompt_dim=32, prd_depth=2, prd_heads=2, hga_depth=2,
                hga_embed_dims=(8, 16, 32), hga_heads=(1, 2, 4), pose_size=(64, 64),
                unet=dict(TINY_UNET_CONFIG), image_size=(128, 128),
            )
        raise InputError(f"preset {name!r}", "is not a CFLD preset (choose 'sd15' or 'tiny')")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object = "config") -> CFLDConfig:
        """Inverse of :meth:`to_dict`; unknown or mistyped entries are an InputError naming them."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise InputError(source, "is not a JSON object of CFLD config fields")
        if unknown := sorted(set(data) - set(fields)):
            raise InputError(source, f"has unknown CFLD config fields {', '.join(unknown)}")
        defaults, values = cls(), {}
        for name, value in data.items():
            default = getattr(defaults, name)
            if isinstance(default, tuple):
                if not isinstance(value, (list, tuple)):
                    raise InputError(source, f"field {name} must be a list, got {value!r}")
                value = tuple(value)
            elif isinstance(default, dict) and not isinstance(value, dict):
                raise InputError(source, f"field {name} must be an object, got {value!r}")
            values[name] = value
        config = cls(**values)
        config.validate(source)
        return config

    @classmethod
    def from_json(cls, path: str | Path) -> CFLDConfig:
        """Our ``config.json``, or a ``CFLDModel`` folder's (diffusers' ``_``-prefixed bookkeeping keys are skipped)."""
        data = read_json(path, "CFLD config.json")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not k.startswith("_")}
        return cls.from_dict(data, source=path)

    def validate(self, source: object = "config") -> CFLDConfig:
        """Check every field's type and range (and that the prompt fits the UNet's cross-attention), so a
        damaged or hand-edited config is one InputError naming the field, not an error inside torch."""
        V.check_ints(self.cond_size, "cond_size", source, 2, 1, 4096)
        V.check_int(self.swin_embed_dim, "swin_embed_dim", source, 1, 4096)
        depths = V.check_ints(self.swin_depths, "swin_depths", source, SCALES + 1, 1, 128)
        V.check_ints(self.swin_heads, "swin_heads", source, len(depths), 1, 1024)
        V.check_int(self.swin_window, "swin_window", source, 1, 256)
        V.check_float(self.swin_drop_path, "swin_drop_path", source, 0, 1)
        V.check_int(self.num_queries, "num_queries", source, 1, 4096)
        V.check_int(self.prompt_dim, "prompt_dim", source, 1, 16384)
        V.check_int(self.prd_depth, "prd_depth", source, 1, 128)
        V.check_int(self.prd_heads, "prd_heads", source, 1, 1024)
        V.check_int(self.hga_depth, "hga_depth", source, 1, 128)
        V.check_ints(self.hga_embed_dims, "hga_embed_dims", source, SCALES, 1, 16384)
        V.check_ints(self.hga_heads, "hga_heads", source, SCALES, 1, 1024)
        if self.pose_channels != POSE_CHANNELS:
            raise InputError(source, f"pose_channels must be {POSE_CHANNELS} (3 skeleton + 18 heatmap channels), "
                                     f"got {V.shown(self.pose_channels)}")
        V.check_int(self.pose_downscale, "pose_downscale", source, 1, 64)
        V.check_ints(self.pose_size, "pose_size", source, 2, 1, 2048)
        V.check_ints(self.image_size, "image_size", source, 2, 8, 4096)
        V.check_float(self.uncond_prob, "uncond_prob", source, 0, 1)
        unet = check_unet_config(self.unet, source)
        if unet.get("cross_attention_dim", self.prompt_dim) != self.prompt_dim:
            raise InputError(source, f"unet cross_attention_dim ({V.shown(unet.get('cross_attention_dim'))}) "
                                     f"must equal prompt_dim ({self.prompt_dim}): the coarse prompt replaces the text "
                                     "prompt")
        return self

    # -- quantities derived from the UNet ----------------------------------------------------------------

    @property
    def attentions_per_up_block(self) -> int:
        return self.unet.get("layers_per_block", 2) + 1

    @property
    def hga_layers(self) -> tuple[tuple[int, ...], ...]:
        """UNet cross-attention layers biased by each scale, in the original's branch order.

        Layer ``k = up_block * attentions_per_up_block + j``; scale l = 1 (f_1) feeds the last up block,
        whose three layers are listed last-first (11, 10, 9 for SD 1.5), as the original numbers them.
        """
        n, per_block = len(self.unet["up_block_types"]), self.attentions_per_up_block
        return tuple(
            tuple(reversed(range((n - 1 - s) * per_block, (n - s) * per_block))) for s in range(SCALES)
        )

    @property
    def hga_feature_dims(self) -> tuple[int, ...]:
        """Channels of the Swin maps f_1..f_3 (the embedding dim doubles per stage)."""
        return tuple(self.swin_embed_dim * 2**s for s in range(SCALES))

    @property
    def unet_channels(self) -> tuple[int, ...]:
        """Channels of UNet down blocks 0..2, equal to those of the up blocks at the same resolutions."""
        return tuple(self.unet["block_out_channels"][:SCALES])

    @classmethod
    def from_original_yaml(cls, path: str | Path, unet: dict[str, Any] | None = None) -> CFLDConfig:
        """Read an original ``config.yaml``. The UNet config is not in it (the original loads it from a
        pretrained folder): pass ``unet`` for anything but Stable Diffusion 1.5.

        Options of the original that CFLD does not use (masked source images, other HGA targets, other
        trainable UNet parameters, ...) are rejected with an InputError naming the key.
        """
        return config_from_original_yaml(path, unet)


# -- the original implementation's config.yaml -------------------------------------------------------------


class _OriginalOptions:
    """The options of an original ``config.yaml`` by dotted key (``MODEL.DECODER_CONFIG.N_CTX``); every refusal
    names the file."""

    def __init__(self, path: str | Path):
        self.path = path
        self.raw = read_yaml(path, "original CFLD config.yaml")
        if not isinstance(self.raw, dict):
            raise InputError(path, "is not a mapping of options, so not an original CFLD config.yaml")

    def get(self, dotted: str) -> Any:
        value = self.raw
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise InputError(self.path, f"has no key {dotted}")
            value = value[part]
        return value

    def require(self, dotted: str, expected: Any, why: str = "CFLD supports only") -> None:
        value = self.get(dotted)
        if (list(value) if isinstance(value, (list, tuple)) else value) != expected:
            raise InputError(self.path, f"{dotted} is {value!r}; {why} {expected!r}")


def config_from_original_yaml(path: str | Path, unet: dict[str, Any] | None = None) -> CFLDConfig:
    """:meth:`CFLDConfig.from_original_yaml`."""
    options = _OriginalOptions(path)
    model, hga = "MODEL.", "MODEL.APPEARANCE_GUIDANCE_CONFIG."
    for key, expected in {
        model + "COND_STAGE_CONFIG.LAST_NORM": False, model + "DECODER_CONFIG.POSE_QUERY": False,
        "INPUT.COND.PRED_RATIO": [], hga + "TO_SELF_ATTN": False, hga + "TO_QUERIES": True,
        hga + "TO_KEYS": False, hga + "TO_VALUES": False, hga + "DETACH_INPUT": False,
        model + "U_COND_DOWN_BLOCK_GUIDANCE": False, model + "U_COND_UP_BLOCK_GUIDANCE": False,
        model + "UNET_CONFIG.TRAIN_CROSS_ATTN_K": True, model + "UNET_CONFIG.TRAIN_CROSS_ATTN_V": True,
        model + "UNET_CONFIG.TRAIN_CROSS_ATTN_Q": False, model + "UNET_CONFIG.TRAIN_SELF_ATTN_Q": False,
        model + "UNET_CONFIG.TRAIN_SELF_ATTN_K": False, model + "UNET_CONFIG.TRAIN_SELF_ATTN_V": False,
    }.items():
        options.require(key, expected)
    try:
        return _config_of(options, unet)
    except InputError:
        raise
    except (TypeError, ValueError) as error:  # a value of the wrong kind (a number where a list belongs ...)
        raise InputError(path, f"holds a value of the wrong type or size ({error})") from None


def _config_of(options: _OriginalOptions, unet: dict[str, Any] | None) -> CFLDConfig:
    get, require, path = options.get, options.require, options.path
    model, hga, pose = "MODEL.", "MODEL.APPEARANCE_GUIDANCE_CONFIG.", "MODEL.POSE_GUIDANCE_CONFIG."
    branches = len(get(hga + "ATTN_RESIDUAL_BLOCK_IDX"))
    for key, value in (("CONVIN_KERNEL_SIZE", 1), ("CONVIN_STRIDE", 1), ("CONVIN_PADDING", 0)):
        require(hga + key, [value] * branches)

    def per_scale(key: str) -> tuple[int, ...]:
        """HGA per-layer list -> one value per scale (the original repeats it for each scale's layers)."""
        values, per = list(get(hga + key)), branches // SCALES
        scales = tuple(values[::per])
        if branches % SCALES or values != [v for v in scales for _ in range(per)]:
            raise InputError(path, f"{hga}{key} = {values} does not give one value per scale")
        return scales

    config = CFLDConfig(
        cond_size=tuple(get("INPUT.COND.IMG_SIZE")),
        swin_embed_dim=get(model + "COND_STAGE_CONFIG.EMBED_DIM"),
        swin_depths=tuple(get(model + "COND_STAGE_CONFIG.DEPTHS")),
        swin_heads=tuple(get(model + "COND_STAGE_CONFIG.NUM_HEADS")),
        swin_window=get(model + "COND_STAGE_CONFIG.WINDOW_SIZE"),
        swin_drop_path=get(model + "COND_STAGE_CONFIG.DROP_PATH_RATE"),
        num_queries=get(model + "DECODER_CONFIG.N_CTX"),
        prompt_dim=get(model + "DECODER_CONFIG.CTX_DIM"),
        prd_depth=get(model + "DECODER_CONFIG.DEPTH"),
        prd_heads=get(model + "DECODER_CONFIG.HEADS"),
        hga_depth=get(hga + "DEPTH"),
        hga_embed_dims=per_scale("EMBED_DIMS"),
        hga_heads=per_scale("HEADS"),
        pose_channels=get(pose + "POSE_CHANNELS"),
        pose_downscale=get(pose + "DOWNSCALE_FACTOR"),
        pose_size=tuple(get("INPUT.POSE.IMG_SIZE")),
        unet=dict(SD15_UNET_CONFIG if unet is None else unet),
        image_size=tuple(get("INPUT.GT.IMG_SIZE")),
        uncond_prob=get(model + "U_COND_PERCENT"),
    )
    # what we derive from the UNet and the Swin must be what the original stored
    layers = [k for scale in config.hga_layers for k in scale]
    derived = {
        hga + "ATTN_RESIDUAL_BLOCK_IDX": layers,
        hga + "INNER_DIMS": [d for d in config.hga_feature_dims for _ in range(branches // SCALES)],
        hga + "CTX_DIMS": [d for d in config.unet_channels for _ in range(branches // SCALES)],
        pose + "CHANNELS": list(config.unet_channels),
        pose + "IN_CHANNELS": config.unet_channels[0],
    }
    why = "the Swin and UNet configs give (pass the UNet config if it is not SD 1.5)"
    for key, expected in derived.items():
        require(key, expected, why)
    if sorted(get(model + "UNET_CONFIG.TRAINABLE_BLOCK_IDX")) != sorted(layers):
        raise InputError(path, f"{model}UNET_CONFIG.TRAINABLE_BLOCK_IDX must list the HGA layers {layers}")
    return config.validate(path)
