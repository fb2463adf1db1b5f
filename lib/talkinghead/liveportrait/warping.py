"""Warping module W: moves the source feature volume f_s from the source keypoints x_s to the driving keypoints x_d.

`DenseMotionNetwork` turns the sparse keypoint motion into a dense 3-D deformation field (and an occlusion map);
`WarpingNetwork` samples f_s with it and flattens the result to a 2-D feature map for G.
Released config: f_s (B, 32, 16, 64, 64), keypoints (B, 21, 3) -> out (B, 256, 64, 64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.liveportrait.blocks import Hourglass, SameBlock2d, kp2gaussian, make_coordinate_grid

KP_VARIANCE = 0.01  # variance of the keypoint Gaussians, in normalised [-1, 1] units


class DenseMotionNetwork(nn.Module):
    """Predicts a dense deformation from x_s, x_d and a compressed copy of f_s.

    One candidate motion per keypoint (a pure translation taking x_d to x_s) plus the identity (background); an
    hourglass looks at the feature warped by each candidate and the keypoint heatmaps, and a softmax mask blends the
    candidates per voxel.
    """

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int, feature_channel: int,
                 reshape_depth: int, compress: int, estimate_occlusion_map: bool = True):
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass(block_expansion=block_expansion, in_features=(num_kp + 1) * (compress + 1),
                                   max_features=max_features, num_blocks=num_blocks)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.flag_estimate_occlusion_map = estimate_occlusion_map
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
        else:
            self.occlusion = None

    def sparse_motions(self, shape: tuple[int, int, int], kp_driving: torch.Tensor,
                       kp_source: torch.Tensor) -> torch.Tensor:
        """Candidate sampling grids (B, K+1, D, H, W, 3): index 0 the identity, index k+1 `grid - x_d[k] + x_s[k]`."""
        b = kp_source.shape[0]
        identity = make_coordinate_grid(shape, kp_source).view(1, 1, *shape, 3)
        per_kp = identity - kp_driving.view(b, self.num_kp, 1, 1, 1, 3) + kp_source.view(b, self.num_kp, 1, 1, 1, 3)
        return torch.cat([identity.expand(b, 1, *shape, 3), per_kp], dim=1)

    def deformed_features(self, feature: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """feature (B, C, D, H, W) sampled with each candidate grid -> (B, K+1, C, D, H, W)."""
        b, c, d, h, w = feature.shape
        n = self.num_kp + 1
        stacked = feature.unsqueeze(1).expand(b, n, c, d, h, w).reshape(b * n, c, d, h, w)
        warped = F.grid_sample(stacked, motions.reshape(b * n, d, h, w, 3), align_corners=False)
        return warped.view(b, n, c, d, h, w)

    def heatmaps(self, shape: tuple[int, int, int], kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        """Gaussian(x_d) - Gaussian(x_s) per keypoint, with a zero background map first -> (B, K+1, 1, D, H, W)."""
        diff = kp2gaussian(kp_driving, shape, KP_VARIANCE) - kp2gaussian(kp_source, shape, KP_VARIANCE)
        background = diff.new_zeros(diff.shape[0], 1, *shape)
        return torch.cat([background, diff], dim=1).unsqueeze(2)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict:
        """feature (B, feature_channel, D, H, W), keypoints (B, K, 3) ->
        {'mask': (B, K+1, D, H, W), 'deformation': (B, D, H, W, 3), 'occlusion_map': (B, 1, H, W) if estimated}."""
        b, _, d, h, w = feature.shape
        shape = (d, h, w)
        feature = F.relu(self.norm(self.compress(feature)))                      # (B, compress, D, H, W)

        motions = self.sparse_motions(shape, kp_driving, kp_source)              # (B, K+1, D, H, W, 3)
        warped = self.deformed_features(feature, motions)                        # (B, K+1, compress, D, H, W)
        heat = self.heatmaps(shape, kp_driving, kp_source)                       # (B, K+1, 1, D, H, W)
        x = torch.cat([heat, warped], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(x)                                           # (B, out_filters, D, H, W)

        mask = F.softmax(self.mask(prediction), dim=1)                           # (B, K+1, D, H, W)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)                  # (B, D, H, W, 3)
        out = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return out


class WarpingNetwork(nn.Module):
    """W: warps f_s with the dense motion, flattens depth into channels, SameBlock2d (LeakyReLU) + 1x1 conv, and
    multiplies by the occlusion map.

    `max_features` must equal the feature volume's channels x depth; the output has
    `block_expansion * 2**num_down_blocks` channels.
    """

    def __init__(self, num_kp: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 reshape_channel: int, estimate_occlusion_map: bool = False, dense_motion_params: dict | None = None,
                 **kwargs):
        super().__init__()
        self.flag_use_occlusion_map = kwargs.get("flag_use_occlusion_map", True)
        self.estimate_occlusion_map = estimate_occlusion_map
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, feature_channel=reshape_channel,
                                                           estimate_occlusion_map=estimate_occlusion_map,
                                                           **dense_motion_params)
        else:
            self.dense_motion_network = None
        out_channels = block_expansion * 2 ** num_down_blocks
        self.third = SameBlock2d(max_features, out_channels, lrelu=True)
        self.fourth = nn.Conv2d(out_channels, out_channels, kernel_size=1)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict:
        """feature_3d f_s (B, C, D, H, W), kp_driving x_d and kp_source x_s (B, K, 3) ->
        {'out': (B, block_expansion * 2**num_down_blocks, H, W), 'occlusion_map': (B, 1, H, W) or None,
         'deformation': (B, D, H, W, 3) or None}.

        Note the argument order (driving before source), as in the reference; pass them by name.
        """
        occlusion_map = deformation = None
        out = feature_3d
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
            deformation = motion["deformation"]
            occlusion_map = motion.get("occlusion_map")
            out = F.grid_sample(feature_3d, deformation, align_corners=False)    # (B, C, D, H, W)
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.reshape(b, c * d, h, w)))
        if self.flag_use_occlusion_map and occlusion_map is not None:
            out = out * occlusion_map
        return {"out": out, "occlusion_map": occlusion_map, "deformation": deformation}
