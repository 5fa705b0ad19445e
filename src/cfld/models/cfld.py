"""CFLDModel: the conditioning networks of CFLD (Fig. 2a) and how they plug into a stock diffusers UNet.

    source image x_s --H_S--> [f1, f2, f3, f4]
        f4          --H_D--> prompt c = F_d^out       -> encoder_hidden_states of every cross-attention
        f1, f2, f3  --H_A--> query biases B (Eq. 4)    -> up-block cross-attention queries (HGA processors)
    target pose x_tp --H_P--> pose maps                -> added at the end of down blocks 0..2

The UNet itself stays a stock ``UNet2DConditionModel``: :meth:`CFLDModel.prepare_unet` gives it the HGA
attention processors and freezes all of it except the up-block cross-attention W_k, W_v (Sec. 3.2), and
:meth:`Conditions.unet_kwargs` turns the conditions into the UNet's keyword arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from torch import nn

from .config import SCALES, CFLDConfig
from .hybrid_granularity_attention import QUERY_BIASES, AppearanceEncoder, set_hga_processors
from .perception_refined_decoder import PerceptionRefinedDecoder
from .pose_adapter import PoseAdapter
from .source_encoder import SourceImageEncoder

TRAINABLE_UNET = re.compile(r"up_blocks\.\d+\.attentions\.\d+\.transformer_blocks\.\d+\.attn2\.to_[kv]\.\w+")
"""The only UNet parameters CFLD trains: W_k, W_v of the up-block cross-attentions (10.3M for SD 1.5)."""


class Branch(Protocol):
    """Which conditions one guidance branch sees (``cfld.guidance.Branch``)."""

    appearance: bool
    pose: bool
    bias: bool


@dataclass
class Conditions:
    """The UNet's conditions for a batch: prompt c ``(B, Q, C)``, one pose map per down block 0..2, and an
    HGA query bias ``(B, tokens, channels)`` per up-block cross-attention layer."""

    prompt: torch.Tensor
    pose: list[torch.Tensor]
    query_biases: dict[int, torch.Tensor]

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``UNet2DConditionModel.forward`` (after ``prepare_unet``)."""
        return {
            "encoder_hidden_states": self.prompt,
            # a fresh list: the UNet pops the maps from it as it adds them
            "down_intrablock_additional_residuals": list(self.pose),
            "cross_attention_kwargs": {QUERY_BIASES: self.query_biases},
        }


_PAPER = CFLDConfig()  # the paper's sizes (the sd15 preset): CFLDModel's defaults


class CFLDModel(ModelMixin, ConfigMixin):
    """H_S, H_D, H_A, H_P and the learnable unconditional prompt; parameter groups named as in the paper.

    A diffusers model: ``save_pretrained`` / ``from_pretrained`` write and read ``config.json`` (the fields of
    :class:`CFLDConfig`) and ``diffusion_pytorch_model[.variant].safetensors``. Build one of a given size with
    ``CFLDModel.from_config(CFLDConfig.preset("tiny"))`` (or the fields as keywords). ``model.config`` is that
    :class:`CFLDConfig` (attribute access as on any diffusers config, plus the sizes derived from the UNet).
    """

    config_name = "config.json"

    def __init__(
        self,
        cond_size: tuple[int, int] = _PAPER.cond_size,
        swin_embed_dim: int = _PAPER.swin_embed_dim,
        swin_depths: tuple[int, ...] = _PAPER.swin_depths,
        swin_heads: tuple[int, ...] = _PAPER.swin_heads,
        swin_window: int = _PAPER.swin_window,
        swin_drop_path: float = _PAPER.swin_drop_path,
        num_queries: int = _PAPER.num_queries,
        prompt_dim: int = _PAPER.prompt_dim,
        prd_depth: int = _PAPER.prd_depth,
        prd_heads: int = _PAPER.prd_heads,
        hga_depth: int = _PAPER.hga_depth,
        hga_embed_dims: tuple[int, ...] = _PAPER.hga_embed_dims,
        hga_heads: tuple[int, ...] = _PAPER.hga_heads,
        pose_channels: int = _PAPER.pose_channels,
        pose_downscale: int = _PAPER.pose_downscale,
        pose_size: tuple[int, int] = _PAPER.pose_size,
        unet: dict[str, Any] | None = None,  # the UNet's diffusers config; None: Stable Diffusion 1.5's
        image_size: tuple[int, int] = _PAPER.image_size,
        uncond_prob: float = _PAPER.uncond_prob,
    ):
        fields = {k: v for k, v in locals().items() if k not in ("self", "__class__")}  # the arguments above
        super().__init__()
        config = CFLDConfig.from_dict({**fields, "unet": dict(fields["unet"] or _PAPER.unet)}, "CFLDModel config")
        self.register_to_config(**config.to_dict())  # what config.json holds: every field, validated
        self._sizes = config
        self.source_encoder = SourceImageEncoder(
            img_size=config.cond_size, embed_dim=config.swin_embed_dim, depths=config.swin_depths,
            num_heads=config.swin_heads, window_size=config.swin_window, drop_path_rate=config.swin_drop_path,
        )
        stages = len(config.swin_depths)
        self.prompt_decoder = PerceptionRefinedDecoder(
            num_queries=config.num_queries, dim=config.prompt_dim, depth=config.prd_depth,
            num_heads=config.prd_heads, context_dim=config.swin_embed_dim * 2 ** (stages - 1),
            context_size=(config.cond_size[0] // 2 ** (stages + 1), config.cond_size[1] // 2 ** (stages + 1)),
        )
        self.appearance_encoder = AppearanceEncoder(
            feature_dims=config.hga_feature_dims, embed_dims=config.hga_embed_dims, heads=config.hga_heads,
            out_dims=config.unet_channels, layers=config.hga_layers, depth=config.hga_depth,
        )
        self.pose_adapter = PoseAdapter(config.pose_channels, config.unet_channels, config.pose_downscale)
        # the prompt for "no source image" (Eq. 7's ∅), learnt through condition dropout (Sec. 3.3)
        self.learnable_vector = nn.Parameter(torch.randn(1, config.num_queries, config.prompt_dim))

    @property
    def config(self) -> CFLDConfig:
        """The model's sizes (what ``config.json`` holds) as a :class:`CFLDConfig`."""
        return self._sizes

    @classmethod
    def from_config(cls, config: CFLDConfig | dict[str, Any] | None = None, **kwargs: Any):
        """diffusers' ``from_config``, which also takes a :class:`CFLDConfig`: a model of those sizes, random
        weights."""
        return super().from_config(config.to_dict() if isinstance(config, CFLDConfig) else config, **kwargs)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """diffusers' ``from_pretrained``. diffusers builds the model on the meta device and then loads the weights;
        the Swin's non-persistent buffers (relative positions, shifted-window masks) are in no file, so timm
        computes them again where the weights landed."""
        model = super().from_pretrained(*args, **kwargs)
        for module in model.modules():
            if hasattr(module, "init_non_persistent_buffers"):
                module.init_non_persistent_buffers()
        return model

    def forward(self, source: torch.Tensor | None = None, pose: torch.Tensor | None = None) -> Conditions:
        """Source images ``(B, 3, H, W)`` in [-1, 1] and target poses ``(B, 21, H', W')`` -> conditions.

        Either may be left out, and what it gives is left out of the result (the sampler computes the source's
        conditions once and the pose maps per batch): without ``source`` the prompt is the learnable
        unconditional one (one per pose) and there are no query biases; without ``pose`` there are no pose maps.
        Everything the sampler needs comes through here, so that diffusers' CPU offload hooks (which wrap
        ``forward``) see every use of the weights.
        """
        pose_maps = [] if pose is None else self.pose_adapter(pose)
        if source is None:
            return Conditions(self.unconditional_prompt(0 if pose is None else pose.shape[0]), pose_maps, {})
        features = self.source_encoder(source)
        return Conditions(
            prompt=self.prompt_decoder(features[-1]),
            pose=pose_maps,
            query_biases=self.appearance_encoder(features[:SCALES]),
        )

    def unconditional_prompt(self, batch: int) -> torch.Tensor:
        return self.learnable_vector.expand(batch, -1, -1)

    def drop_conditions(self, conditions: Conditions, generator: torch.Generator | None = None,
                        drop: torch.Tensor | None = None) -> Conditions:
        """Training-time condition dropout: each prompt becomes the learnable vector with probability eta.

        As in the original training (``U_COND_DOWN/UP_BLOCK_GUIDANCE: False``), only the prompt is dropped;
        the pose maps and HGA biases stay. Draws ``torch.rand(B, 1, 1)`` on the CPU, as the original does,
        unless ``drop`` (True where the prompt goes, B values) is given.
        """
        prompt = conditions.prompt
        if drop is None:
            drop = torch.rand((prompt.shape[0], 1, 1), generator=generator) < self.config.uncond_prob
        else:
            drop = drop.to(torch.bool).reshape(prompt.shape[0], 1, 1)
        prompt = torch.where(drop.to(prompt.device), self.unconditional_prompt(prompt.shape[0]).to(prompt), prompt)
        return Conditions(prompt, conditions.pose, conditions.query_biases)

    def guidance_batch(self, conditions: Conditions, branches: Sequence[Branch],
                       unconditional: torch.Tensor | None = None) -> Conditions:
        """The conditions of several guidance branches stacked along the batch (latents: repeat per branch).

        A branch without appearance gets the learnable prompt (``unconditional``, as ``self(pose=...)`` gives it,
        else this model's), without pose zero pose maps, without bias zero query biases; e.g. Eq. 7's three
        branches [(∅,∅), (∅,pose), (src,pose)].
        """
        c, batch = conditions, conditions.prompt.shape[0]
        empty = (self.unconditional_prompt(batch) if unconditional is None else unconditional).to(c.prompt)
        prompts = [c.prompt if b.appearance else empty for b in branches]
        pose = [torch.cat([p if b.pose else torch.zeros_like(p) for b in branches]) for p in c.pose]
        biases = {
            layer: torch.cat([v if b.bias else torch.zeros_like(v) for b in branches])
            for layer, v in c.query_biases.items()
        }
        return Conditions(torch.cat(prompts), pose, biases)

    @staticmethod
    def prepare_unet(unet: UNet2DConditionModel) -> UNet2DConditionModel:
        """Set the HGA attention processors on a stock UNet; train only up-block cross-attention W_k, W_v."""
        set_hga_processors(unet)
        for name, parameter in unet.named_parameters():
            parameter.requires_grad_(bool(TRAINABLE_UNET.fullmatch(name)))
        return unet


def build_unet(config: CFLDConfig) -> UNet2DConditionModel:
    """A stock UNet of ``config.unet`` (random weights; build under ``torch.device("meta")`` to skip them),
    prepared for CFLD."""
    return CFLDModel.prepare_unet(UNet2DConditionModel(**config.unet))


def trainable_parameter_counts(model: CFLDModel, unet: UNet2DConditionModel) -> dict[str, int]:
    """Trainable parameters per component (paper Table 1: 87.0M + 22.5M + 97.7M + 30.6M + 10.3M for sd15)."""
    parts = {name: module.parameters() for name, module in model.named_children()}
    parts |= {"learnable_vector": [model.learnable_vector], "unet": unet.parameters()}
    counts = {name: sum(p.numel() for p in params if p.requires_grad) for name, params in parts.items()}
    return counts | {"total": sum(counts.values())}
