"""Appearance feature extractor F: the source crop -> a 3-D appearance feature volume f_s.

Released config: (B, 3, 256, 256) in [0, 1] -> (B, 32, 16, 64, 64).
"""
from __future__ import annotations

import torch
from torch import nn

from talkinghead.liveportrait.blocks import DownBlock2d, ResBlock3d, SameBlock2d


class AppearanceFeatureExtractor(nn.Module):
    """F: 2-D encoder (SameBlock2d, `num_down_blocks` DownBlock2d, 1x1 conv to `max_features` channels), channels
    split into `reshape_channel` x `reshape_depth`, then `num_resblocks` 3-D residual blocks.

    `max_features` must equal `reshape_channel * reshape_depth`.
    """

    def __init__(self, image_channel: int, block_expansion: int, num_down_blocks: int, max_features: int,
                 reshape_channel: int, reshape_depth: int, num_resblocks: int):
        super().__init__()
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(f"reshape_channel * reshape_depth ({reshape_channel} * {reshape_depth}) must equal "
                             f"max_features ({max_features})")
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth

        self.first = SameBlock2d(image_channel, block_expansion)
        widths = [min(max_features, block_expansion * 2 ** i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(widths[i], widths[i + 1]) for i in range(num_down_blocks))
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        """source_image (B, image_channel, H, W) -> f_s (B, reshape_channel, reshape_depth, H/2**n, W/2**n)."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)                                  # (B, max_features, h, w)
        b, _, h, w = out.shape
        f_s = out.view(b, self.reshape_channel, self.reshape_depth, h, w)
        return self.resblocks_3d(f_s)
