"""Network configs for both profiles, in one place.

`FULL` is the released `models.yaml` (shared/conformance/manifest.json, under `config`). `SAMPLE` is the same code
at reduced widths, depths and resolution (a 64x64 input, a 4x16x16 feature volume, a 128x128 output, see IMAGE_SIZES),
so every file format, export and code path is the real one while seeded weights build in well under a second and a
frame renders in tens of milliseconds on two CPU cores.

Chain of widths that must agree: F's volume has `reshape_channel` x `reshape_depth` channels = W's `max_features`
(after W reshapes it to 2D); W's output has `block_expansion * 2**num_down_blocks` channels = G's input
`min(max_features, block_expansion * 2**num_down_blocks)`.
"""
from __future__ import annotations

import copy

FULL = {
    "appearance_feature_extractor": dict(image_channel=3, block_expansion=64, num_down_blocks=2, max_features=512,
                                         reshape_channel=32, reshape_depth=16, num_resblocks=6),
    "motion_extractor": dict(num_kp=21, backbone="convnextv2_tiny"),
    "warping_module": dict(num_kp=21, block_expansion=64, max_features=512, num_down_blocks=2, reshape_channel=32,
                           estimate_occlusion_map=True,
                           dense_motion_params=dict(block_expansion=32, max_features=1024, num_blocks=5,
                                                    reshape_depth=16, compress=4)),
    "spade_generator": dict(upscale=2, block_expansion=64, max_features=512, num_down_blocks=2),
    "stitching_retargeting_module": dict(
        stitching=dict(input_size=126, hidden_sizes=[128, 128, 64], output_size=65),
        lip=dict(input_size=65, hidden_sizes=[128, 128, 64], output_size=63),
        eye=dict(input_size=66, hidden_sizes=[256, 256, 128, 128, 64], output_size=63)),
}

SAMPLE = {
    "appearance_feature_extractor": dict(image_channel=3, block_expansion=8, num_down_blocks=2, max_features=32,
                                         reshape_channel=8, reshape_depth=4, num_resblocks=1),
    "motion_extractor": dict(num_kp=21, num_bins=66, depths=[1, 1, 2, 1], dims=[16, 32, 64, 96]),
    "warping_module": dict(num_kp=21, block_expansion=8, max_features=32, num_down_blocks=2, reshape_channel=8,
                           estimate_occlusion_map=True,
                           dense_motion_params=dict(block_expansion=4, max_features=32, num_blocks=2,
                                                    reshape_depth=4, compress=1)),
    "spade_generator": dict(upscale=2, block_expansion=8, max_features=32, num_down_blocks=2, out_channels=16,
                            spade_hidden=16),
    "stitching_retargeting_module": copy.deepcopy(FULL["stitching_retargeting_module"]),
}

CONFIGS = {"full": FULL, "sample": SAMPLE}

# (network input, generator output) in pixels. The released pipeline: a 256x256 crop in, a 512x512 face out.
# The sample profile runs at a quarter of that resolution: the dense-motion network's 7x7x7 convolution over the
# D x 64 x 64 volume costs over a second per frame on two CPU cores at any width, far too slow for a test suite that
# renders whole recordings. Everything downstream works on the `layout.CROP_SIZE` (512) crop: the renderer resizes
# G's output to it.
IMAGE_SIZES = {"full": (256, 512), "sample": (64, 128)}
SAMPLE_SEED = 20240704


def image_sizes(profile: str) -> tuple[int, int]:
    """(input_size, output_size) in pixels for profile 'full' or 'sample'."""
    return IMAGE_SIZES[profile]


def network_config(profile: str, name: str) -> dict:
    """A deep copy of one network's constructor kwargs for profile 'full' or 'sample'."""
    return copy.deepcopy(CONFIGS[profile][name])
