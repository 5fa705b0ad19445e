"""Pose adapter H_P: the target pose image as residuals for the UNet's down blocks (paper Sec. 3.2).

A lightweight T2I-Adapter-style network [29]: pixel-unshuffle the pose image (skeleton + heatmaps) down
to the latent resolution, a 1x1 conv, then one ResNet block per UNet scale with 2x average-pool
downsampling in between. Feature map ``i`` has the shape of the output of UNet down block ``i``, and the
UNet adds it at the end of that block (before its downsampler), which stock diffusers does for
``down_intrablock_additional_residuals``. The pose adapter needs no timestep: it runs once per image.
"""

from __future__ import annotations

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn


class PoseAdapter(nn.Module):
    """H_P: ``(B, pose_channels, H, W)`` pose image -> one feature map per UNet down block 0..N-1.

    Args:
        pose_channels: channels of the pose image (3 skeleton + 18 heatmaps = 21).
        channels: output channels per scale, i.e. the UNet's ``block_out_channels[:N]``.
        downscale_factor: pixel-unshuffle factor from pose-image to latent resolution (4 for a 256x256
            pose and a 64x64 latent).

    Parameter names (``conv_in``, ``resnets.i.*``) equal the original ``pose_encoder.*`` keys.
    """

    def __init__(self, pose_channels: int, channels: tuple[int, ...], downscale_factor: int):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(downscale_factor)
        self.conv_in = nn.Conv2d(pose_channels * downscale_factor**2, channels[0], kernel_size=1)
        ins = (channels[0],) + tuple(channels[:-1])
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels=i, out_channels=o, temb_channels=None) for i, o in zip(ins, channels)
        )
        self.downsample = nn.AvgPool2d(2)

    def forward(self, pose: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv_in(self.unshuffle(pose))
        features = []
        for i, resnet in enumerate(self.resnets):
            if i > 0:
                x = self.downsample(x)
            x = resnet(x, temb=None)
            features.append(x)
        return features
