"""Stitching S and the lip/eye retargeting MLPs R of LivePortrait, with the arithmetic that applies them.

- stitching: (x_s, x_d) -> a correction to the driving keypoints so the animated face lines up with the untouched
  shoulders when pasted back: 63 per-keypoint offsets plus one shared (dx, dy).
- lip / eye retargeting: (x_s, close ratios) -> keypoint offsets that open or close the mouth / eyes.

The released file `stitching_retargeting_module.pth` is a dict of three state_dicts, `retarget_shoulder` (stitching),
`retarget_mouth` (lip) and `retarget_eye` (eye), whose keys may start with `module.` (see `load_released`).
Conformance: `shared/conformance/stitching_retargeting_module`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

# Our part name -> the name of its state_dict in the released file.
RELEASED_PARTS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


class StitchingRetargetingNetwork(nn.Module):
    """A plain MLP: Linear, ReLU, ..., Linear. (B, input_size) -> (B, output_size). Keys `mlp.0.weight`, ..."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a leading `module.` (left by DistributedDataParallel) from every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


class StitchingRetargetingModule(nn.Module):
    """The three MLPs as submodules `stitching`, `lip`, `eye` (also reachable as `module['eye']`).

    Constructor kwargs are the `stitching_retargeting_module` config: one dict of MLP sizes per part.
    Keypoints are (B, K, 3) with K = 21; all methods are batched and trace into ONNX.
    """

    def __init__(self, stitching: dict, lip: dict, eye: dict):
        super().__init__()
        self.stitching = StitchingRetargetingNetwork(**stitching)
        self.lip = StitchingRetargetingNetwork(**lip)
        self.eye = StitchingRetargetingNetwork(**eye)

    def __getitem__(self, part: str) -> StitchingRetargetingNetwork:
        return getattr(self, part)

    def released_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The weights in the released file's layout: {retarget_shoulder: {...}, retarget_mouth: ..., retarget_eye: ...}."""
        return {released: self[part].state_dict() for part, released in RELEASED_PARTS.items()}

    def load_released(self, checkpoint: Mapping[str, Mapping[str, torch.Tensor]], strict: bool = True) -> None:
        """Load a released-format dict of three state_dicts (keys with or without `module.`)."""
        for part, released in RELEASED_PARTS.items():
            self[part].load_state_dict(strip_module_prefix(checkpoint[released]), strict=strict)

    def stitch_delta(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Raw stitching output (B, 3K + 2) from x_s, x_d (B, K, 3): K x 3 offsets, then a shared (dx, dy)."""
        return self.stitching(_concat_flat(kp_source, kp_driving))

    def stitch(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Stitched driving keypoints (B, K, 3): x_d + offsets, with (dx, dy) added to every keypoint's x, y."""
        b, k, _ = kp_driving.shape
        delta = self.stitch_delta(kp_source, kp_driving)
        offsets = delta[:, :3 * k].reshape(b, k, 3)
        shift_xy = delta[:, 3 * k:3 * k + 2].reshape(b, 1, 2)
        shift = torch.cat([shift_xy, torch.zeros_like(shift_xy[..., :1])], dim=-1)   # (B, 1, 3), no z shift
        return kp_driving + offsets + shift

    def retarget_lip(self, kp_source: torch.Tensor, lip_close_ratio: torch.Tensor) -> torch.Tensor:
        """Lip offsets (B, K, 3) from x_s (B, K, 3) and lip_close_ratio (B, 2) = [source ratio, driving ratio]."""
        return self._delta(self.lip, kp_source, lip_close_ratio)

    def retarget_eye(self, kp_source: torch.Tensor, eye_close_ratio: torch.Tensor) -> torch.Tensor:
        """Eye offsets (B, K, 3) from x_s (B, K, 3) and eye_close_ratio (B, 3) = [source left, source right, driving]."""
        return self._delta(self.eye, kp_source, eye_close_ratio)

    @staticmethod
    def _delta(mlp: nn.Module, kp_source: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        b, k, _ = kp_source.shape
        return mlp(_concat_flat(kp_source, ratio)).reshape(b, k, 3)


def _concat_flat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, ...) and (B, ...) -> (B, n_a + n_b), each flattened per batch item."""
    return torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)], dim=1)


__all__ = ["StitchingRetargetingNetwork", "StitchingRetargetingModule", "RELEASED_PARTS", "strip_module_prefix"]
