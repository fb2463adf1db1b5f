"""Building blocks shared by LivePortrait's F (appearance), W (warping) and G (SPADE generator).

Submodule attribute names (`conv`, `norm`, `down_blocks`, `mlp_shared`, ...) are part of the checkpoint format: they
give the state_dict keys of the released weights, so they must not be renamed.

Shape letters: B batch, C channels, D depth, H height, W width, K keypoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------------------------------
# Coordinates and keypoint heatmaps
# ---------------------------------------------------------------------------------------------------------------------


def _axis(n: int, ref: torch.Tensor) -> torch.Tensor:
    """n evenly spaced values from -1 to 1 (both ends included), in ref's dtype and device."""
    i = torch.arange(n, dtype=ref.dtype, device=ref.device)
    return 2 * (i / (n - 1)) - 1


def make_coordinate_grid(spatial_size: tuple[int, int, int], ref: torch.Tensor) -> torch.Tensor:
    """Normalised identity grid for a (D, H, W) volume -> (D, H, W, 3), last axis (x, y, z).

    x runs to the right along W, y down along H, z inwards along D, each from -1 to 1 inclusive: the layout
    `F.grid_sample` reads for 5-D inputs.
    """
    d, h, w = spatial_size
    x = _axis(w, ref).view(1, 1, w).expand(d, h, w)
    y = _axis(h, ref).view(1, h, 1).expand(d, h, w)
    z = _axis(d, ref).view(d, 1, 1).expand(d, h, w)
    return torch.stack([x, y, z], dim=-1)


def kp2gaussian(kp: torch.Tensor, spatial_size: tuple[int, int, int], kp_variance: float) -> torch.Tensor:
    """Isotropic Gaussian blob around each keypoint: kp (B, K, 3) -> (B, K, D, H, W).

    value = exp(-|grid - kp|^2 / (2 * kp_variance)), the grid from `make_coordinate_grid`.
    """
    grid = make_coordinate_grid(spatial_size, kp)                     # (D, H, W, 3)
    lead = kp.shape[:-1]                                               # (B, K)
    diff = grid.view((1,) * len(lead) + grid.shape) - kp.view(*lead, 1, 1, 1, 3)
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / kp_variance)


# ---------------------------------------------------------------------------------------------------------------------
# 2-D conv blocks (BatchNorm, used in eval mode)
# ---------------------------------------------------------------------------------------------------------------------


class SameBlock2d(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU (LeakyReLU(0.01) with lrelu=True); (B, Cin, H, W) -> (B, Cout, H, W)."""

    def __init__(self, in_features: int, out_features: int, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)
        self.ac = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU -> 2x2 average pool; (B, Cin, H, W) -> (B, Cout, H/2, W/2)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


# ---------------------------------------------------------------------------------------------------------------------
# 3-D conv blocks
# ---------------------------------------------------------------------------------------------------------------------


class ResBlock3d(nn.Module):
    """Pre-activation residual block, x + conv(relu(bn(conv(relu(bn(x)))))); (B, C, D, H, W) -> same shape."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features)
        self.norm2 = nn.BatchNorm3d(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class DownBlock3d(nn.Module):
    """conv3x3x3 -> BatchNorm -> ReLU -> pool H and W by 2 (D kept); (B, Cin, D, H, W) -> (B, Cout, D, H/2, W/2)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock3d(nn.Module):
    """Nearest 2x upsampling of H and W -> conv3x3x3 -> BatchNorm -> ReLU; (B, Cin, D, H, W) -> (B, Cout, D, 2H, 2W)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


def _level_width(block_expansion: int, max_features: int, level: int) -> int:
    """Channels at hourglass level `level` (level 0 is the first down block's input width, before capping)."""
    return min(max_features, block_expansion * 2 ** level)


class Encoder(nn.Module):
    """Hourglass encoder: `num_blocks` DownBlock3d; returns the input and every level's output (for the skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        widths = [in_features] + [_level_width(block_expansion, max_features, i + 1) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(DownBlock3d(widths[i], widths[i + 1]) for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlock3d per level, each output concatenated with the encoder's skip of the same size,
    then conv3x3x3 -> BatchNorm -> ReLU. Output has `block_expansion + in_features` channels at input resolution."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip_width = _level_width(block_expansion, max_features, i + 1)
            in_width = skip_width if i == num_blocks - 1 else 2 * skip_width  # deeper levels carry a concatenated skip
            blocks.append(UpBlock3d(in_width, _level_width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3-D U-Net: (B, in_features, D, H, W) -> (B, block_expansion + in_features, D, H, W).

    H and W must be divisible by 2**num_blocks.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# ---------------------------------------------------------------------------------------------------------------------
# SPADE (spatially-adaptive normalisation) for G
# ---------------------------------------------------------------------------------------------------------------------

SPADE_HIDDEN = 128  # width of SPADE's shared conv; fixed in the released checkpoints


class SPADE(nn.Module):
    """InstanceNorm(x) * (1 + gamma(seg)) + beta(seg), gamma and beta predicted by convs from the segmap.

    x (B, norm_nc, H, W), seg (B, label_nc, h, w) resized to H x W (nearest) -> (B, norm_nc, H, W).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = SPADE_HIDDEN):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(seg)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


def _sn_conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True) -> nn.Module:
    """Spectral-normalised conv (state_dict keys weight_orig, weight_u, weight_v; no power iteration in eval)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=kernel_size // 2, bias=bias)
    return nn.utils.spectral_norm(conv)


class SPADEResnetBlock(nn.Module):
    """Residual block of two SPADE -> LeakyReLU(0.2) -> conv3x3 stages; learned 1x1 shortcut when widths differ.

    x (B, fin, H, W), seg (B, label_nc, h, w) -> (B, fout, H, W).
    """

    def __init__(self, fin: int, fout: int, label_nc: int, spade_hidden: int = SPADE_HIDDEN):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = _sn_conv(fin, fmiddle, 3)
        self.conv_1 = _sn_conv(fmiddle, fout, 3)
        if self.learned_shortcut:
            self.conv_s = _sn_conv(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_nc, spade_hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, spade_hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, spade_hidden)

    @staticmethod
    def actvn(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2)

    def shortcut(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        dx = self.conv_0(self.actvn(self.norm_0(x, seg)))
        dx = self.conv_1(self.actvn(self.norm_1(dx, seg)))
        return self.shortcut(x, seg) + dx
