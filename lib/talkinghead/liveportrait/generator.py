"""SPADE generator G: the warped 2-D feature map -> the animated face image.

Released config: (B, 256, 64, 64) -> (B, 3, 512, 512) in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.liveportrait.blocks import SPADEResnetBlock

NUM_MIDDLE_BLOCKS = 6


class SPADEDecoder(nn.Module):
    """G: 3x3 conv doubling the width, six SPADE residual blocks, two (2x nearest upsample, SPADE block) stages,
    LeakyReLU(0.2), a 3x3 conv to RGB (to 4x RGB + pixel shuffle when upscale > 1), sigmoid. Every SPADE block is
    conditioned on the input feature map itself.

    `spade_hidden` is the SPADE blocks' hidden width: 128 in the released weights (the reference hard-codes it); the
    sample profile shrinks it. Input channels are `min(max_features, block_expansion * 2**num_down_blocks)`; output size is the input size
    times 4 (times 8 with upscale=2).
    """

    def __init__(self, upscale: int = 1, max_features: int = 256, block_expansion: int = 64, out_channels: int = 64,
                 num_down_blocks: int = 2, spade_hidden: int = 128):
        super().__init__()
        self.upscale = upscale
        in_ch = min(max_features, block_expansion * 2 ** num_down_blocks)
        self.fc = nn.Conv2d(in_ch, 2 * in_ch, kernel_size=3, padding=1)
        for i in range(NUM_MIDDLE_BLOCKS):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(2 * in_ch, 2 * in_ch, label_nc=in_ch, spade_hidden=spade_hidden))
        self.up_0 = SPADEResnetBlock(2 * in_ch, in_ch, label_nc=in_ch, spade_hidden=spade_hidden)
        self.up_1 = SPADEResnetBlock(in_ch, out_channels, label_nc=in_ch, spade_hidden=spade_hidden)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        if upscale is None or upscale <= 1:
            self.conv_img = nn.Conv2d(out_channels, 3, kernel_size=3, padding=1)
        else:
            self.conv_img = nn.Sequential(nn.Conv2d(out_channels, 3 * 2 * 2, kernel_size=3, padding=1),
                                          nn.PixelShuffle(upscale_factor=2))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature (B, C, H, W) -> image (B, 3, 4H, 4W), or (B, 3, 8H, 8W) with upscale > 1, in [0, 1]."""
        seg = feature
        x = self.fc(feature)
        for i in range(NUM_MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(self.up(x), seg)
        x = self.up_1(self.up(x), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral norm under `module` by a plain `weight` = weight_orig / sigma, in place; returns module.

    sigma = u . (W v) with the stored u, v (no power iteration), i.e. exactly the weight eval mode uses, so outputs
    in eval mode are unchanged. For export (ONNX) and faster inference. State_dicts of the folded module have `weight`
    keys instead of weight_orig/_u/_v.
    """
    from torch.nn.utils.spectral_norm import SpectralNorm

    for sub in module.modules():
        for hook in list(sub._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                nn.utils.remove_spectral_norm(sub, name=hook.name)
    return module
