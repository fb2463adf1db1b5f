"""Motion extractor M: one image -> canonical keypoints, head pose, expression, scale and translation.

A ConvNeXt-V2 backbone (stem conv 4x4/4, four stages of residual blocks separated by 2x2/2 downsampling convs,
global average pooling, LayerNorm) followed by seven linear heads. The released checkpoint is `convnextv2_tiny`
(depths 3-3-9-3, widths 96-192-384-768) and keeps every weight under `detector.`; the sample profile and the
conformance fixture use smaller `depths`/`dims` with the same key layout.

The outputs are the raw head (nothing is post-processed here): pose as 66-bin logits, keypoints and expression
flattened. `talkinghead.liveportrait.keypoints` turns them into degrees and posed keypoints.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

BACKBONES = {"convnextv2_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))}
LN_EPS = 1e-6


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, H, W) maps (ConvNeXt's `channels_first` LayerNorm)."""

    def __init__(self, channels: int, eps: float = LN_EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), each pixel's C values normalised to zero mean, unit (biased) variance."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on channels-last maps (B, H, W, C): x + gamma * (x * N(x)) + beta.

    N(x) is each channel's spatial L2 norm divided by the mean of those norms over channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)   # (B, 1, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """Residual block: depthwise 7x7 conv, LayerNorm, 4x pointwise MLP with GELU and GRN. (B, C, H, W) -> same."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)           # (B, H, W, C)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """Backbone plus M's heads; keys match the reference `detector` (downsample_layers, stages, norm, fc_*)."""

    def __init__(self, num_kp: int, num_bins: int, depths: Sequence[int], dims: Sequence[int], in_chans: int = 3):
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"ConvNeXtV2 needs four stages: got depths={list(depths)}, dims={list(dims)}")
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        downs = [nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
                 for i in range(3)]
        self.downsample_layers = nn.ModuleList([stem, *downs])
        self.stages = nn.ModuleList([nn.Sequential(*[ConvNeXtBlock(dims[i]) for _ in range(depths[i])])
                                     for i in range(4)])
        self.norm = nn.LayerNorm(dims[-1], eps=LN_EPS)

        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * num_kp)      # canonical keypoints x_c
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)     # expression offsets

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled, normalised features (B, dims[-1]). H and W must be multiples of 32."""
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {"pitch": self.fc_pitch(f), "yaw": self.fc_yaw(f), "roll": self.fc_roll(f), "t": self.fc_t(f),
                "exp": self.fc_exp(f), "scale": self.fc_scale(f), "kp": self.fc_kp(f)}


class MotionExtractor(nn.Module):
    """M: image (B, 3, H, W) in [0, 1] (256 x 256 in the pipeline) -> dict of raw head outputs.

    pitch, yaw, roll: (B, num_bins) pose logits; t: (B, 3); exp: (B, 3*num_kp); scale: (B, 1); kp: (B, 3*num_kp).
    `depths`/`dims` default to those of `backbone` (only `convnextv2_tiny` exists).
    """

    def __init__(self, num_kp: int = 21, num_bins: int = 66, depths: Sequence[int] | None = None,
                 dims: Sequence[int] | None = None, backbone: str = "convnextv2_tiny", in_chans: int = 3):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown motion extractor backbone {backbone!r}: use one of {', '.join(BACKBONES)}")
        arch = BACKBONES[backbone]
        self.num_kp = num_kp
        self.detector = ConvNeXtV2(num_kp, num_bins, list(depths or arch["depths"]), list(dims or arch["dims"]),
                                   in_chans=in_chans)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(image)


__all__ = ["MotionExtractor", "ConvNeXtV2", "ConvNeXtBlock", "GlobalResponseNorm", "ChannelsFirstLayerNorm"]
