"""Build the five LivePortrait networks for a profile and load their weights.

- profile `full`: the released checkpoints (`talkinghead.hub.LIVEPORTRAIT_FILES`), from `weights_dir`, else
  `$TALKINGHEAD_WEIGHTS_DIR`, else the hub cache; every file is loaded with `strict=True`.
- profile `sample`: the same classes at `config.SAMPLE` widths, with PyTorch's default initialisation drawn from the
  CPU generator seeded with `config.SAMPLE_SEED` (plus the network's index) and BatchNorm statistics calibrated on a
  seeded input (`calibrate_sample_batchnorm`): no files, no network, well under a second, and bit-identical on every
  call (for a given torch version).

Every failure to get a usable weights file (missing, truncated, corrupt, wrong keys or shapes, no network) raises
`talkinghead.errors.WeightsError` with one sentence naming the file and what to do.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..device import get_device
from ..errors import WeightsError
from ..hub import HUB_REPO, LIVEPORTRAIT_FILES, hub_file
from ..profiles import get_profile
from . import config as lp_config
from .stitching import RELEASED_PARTS, strip_module_prefix

# Network name (= config key = hub file key) -> (module in this package, class name).
NETWORKS = {
    "appearance_feature_extractor": ("appearance", "AppearanceFeatureExtractor"),
    "motion_extractor": ("motion_extractor", "MotionExtractor"),
    "warping_module": ("warping", "WarpingNetwork"),
    "spade_generator": ("generator", "SPADEDecoder"),
    "stitching_retargeting_module": ("stitching", "StitchingRetargetingModule"),
}


@dataclass
class LivePortrait:
    """The loaded networks, all in eval mode with gradients off.

    F `appearance_feature_extractor`, M `motion_extractor`, W `warping_module`, G `spade_generator`, and S/R
    `stitching_retargeting_module` (parts `stitching`, `lip`, `eye`). `config` holds each network's constructor kwargs.
    """

    appearance_feature_extractor: nn.Module
    motion_extractor: nn.Module
    warping_module: nn.Module
    spade_generator: nn.Module
    stitching_retargeting_module: nn.Module
    profile: str
    config: dict = field(repr=False)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    def networks(self) -> dict[str, nn.Module]:
        """Name -> module for the five networks, in pipeline order."""
        return {name: getattr(self, name) for name in NETWORKS}


def network_class(name: str) -> type[nn.Module]:
    """The class of one network (imported on first use)."""
    module, cls = NETWORKS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def build_network(name: str, profile: str = "full") -> nn.Module:
    """One network at a profile's config, default-initialised (respects an active `torch.device(...)` context)."""
    return network_class(name)(**lp_config.network_config(profile, name))


def load_liveportrait(weights_dir=None, profile=None, device="auto", dtype: torch.dtype | None = None) -> LivePortrait:
    """Build F, M, W, G and S for `profile` ('full' or 'sample'; default `$TALKINGHEAD_PROFILE`, else 'full').

    `weights_dir`: a folder laid out like the hub repo (full profile only; default `$TALKINGHEAD_WEIGHTS_DIR`, else
    the hub cache). `device`: 'auto' (default: $TALKINGHEAD_DEVICE, else CUDA, Apple MPS, CPU; `talkinghead.device`),
    'cpu', 'cuda', 'cuda:N' or 'mps'. `dtype`: default float32, which is what the package renders with everywhere
    (on CUDA under autocast float16, `device.autocast`); casting the networks to float16 loses ~8 dB PSNR.
    """
    prof = get_profile(profile).name
    device = get_device(device)
    dtype = dtype or torch.float32
    if prof == "sample":
        nets = {name: _seeded_network(name, i) for i, name in enumerate(NETWORKS)}
        calibrate_sample_batchnorm(nets)
    else:
        nets = {name: _released_network(name, weights_dir) for name in NETWORKS}
    for net in nets.values():
        net.to(device=device, dtype=dtype).eval().requires_grad_(False)
    cfg = {name: lp_config.network_config(prof, name) for name in NETWORKS}
    return LivePortrait(**nets, profile=prof, config=cfg, device=device, dtype=dtype)


def _seeded_network(name: str, index: int) -> nn.Module:
    """A sample-profile network whose default init is drawn from the CPU generator seeded with SAMPLE_SEED + index."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(lp_config.SAMPLE_SEED + index)
        with torch.device("cpu"):
            return build_network(name, "sample")


@torch.no_grad()
def calibrate_sample_batchnorm(nets: dict[str, nn.Module]) -> None:
    """Give the seeded networks' BatchNorm layers the statistics of a seeded input, as training would have.

    With PyTorch's default running statistics (mean 0, variance 1) random convolutions shrink or blow up the signal
    layer after layer: the sample W's output had a channel spread of ~1e-3, so G's first InstanceNorm saw variances
    at its epsilon (1e-5) and amplified float32 rounding 50-fold. One forward pass in training mode over a seeded image
    (and, for W, F's volume of it with seeded keypoints) sets every running mean and variance; G's spectral norms
    get converged power iterations (`converge_spectral_norm`). Deterministic.
    """
    size, _ = lp_config.image_sizes("sample")
    f, w = nets["appearance_feature_extractor"], nets["warping_module"]
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(lp_config.SAMPLE_SEED)
        image = torch.rand(4, 3, size, size)
        kp_source = torch.rand(4, 21, 3) * 1.6 - 0.8
        kp_driving = kp_source + torch.randn(4, 21, 3) * 0.05
    volume = _calibrate(f, image)
    _calibrate(w, volume, kp_driving=kp_driving, kp_source=kp_source)
    converge_spectral_norm(nets["spade_generator"])


@torch.no_grad()
def converge_spectral_norm(net: nn.Module, iterations: int = 50) -> None:
    """Run the power iteration of every spectral-normalised layer to convergence (in place: weight_u, weight_v).

    Trained checkpoints store converged u, v, so sigma = u . (W v) is W's largest singular value. Freshly initialised
    ones hold random vectors: sigma is then a random fraction of it and weight_orig / sigma blows the layer up
    (the sample G reached activations of ~5e3).
    """
    for m in net.modules():
        if hasattr(m, "weight_orig") and hasattr(m, "weight_u") and hasattr(m, "weight_v"):
            w = m.weight_orig.reshape(m.weight_orig.shape[0], -1)
            u, v = m.weight_u, m.weight_v
            for _ in range(iterations):
                v = nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12)
                u = nn.functional.normalize(w @ v, dim=0, eps=1e-12)
            m.weight_u.copy_(u)
            m.weight_v.copy_(v)


def _calibrate(net: nn.Module, *args, **kw):
    """Run `net` once in training mode with cumulative BatchNorm averaging; returns its eval-mode output."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    net.train()
    net(*args, **kw)
    net.eval()
    for m in norms:
        m.momentum = 0.1
    return net(*args, **kw)


def _released_network(name: str, weights_dir) -> nn.Module:
    """A full-profile network with its released checkpoint loaded strictly."""
    relpath = LIVEPORTRAIT_FILES[name]
    path = hub_file(relpath, weights_dir)               # raises WeightsError when missing / not downloadable
    checkpoint = read_checkpoint(path, relpath)
    with torch.device("cpu"):
        net = build_network(name, "full")
    if name == "stitching_retargeting_module":
        _load_stitching(net, checkpoint, path, relpath)
    else:
        _load_strict(net, checkpoint, path, relpath)
    return net


def read_checkpoint(path: Path, relpath: str) -> Mapping:
    """torch.load (weights only, to CPU) of one released file; any read failure becomes one WeightsError sentence."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/central-directory errors, UnpicklingError, EOFError, OSError: all mean a bad file
        raise WeightsError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}), so it is truncated "
                           f"or corrupt; {_remedy(relpath)}.") from None
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"{path}: holds a {type(checkpoint).__name__}, not a state_dict; {_remedy(relpath)}.")
    return checkpoint


def _load_stitching(net: nn.Module, checkpoint: Mapping, path: Path, relpath: str) -> None:
    """The released stitching file: three state_dicts (keys maybe prefixed `module.`) under RELEASED_PARTS names."""
    missing = [k for k in RELEASED_PARTS.values() if not isinstance(checkpoint.get(k), Mapping)]
    if missing:
        raise WeightsError(f"{path}: lacks the state_dict(s) {', '.join(missing)} of a LivePortrait "
                           f"stitching_retargeting_module file; {_remedy(relpath)}.")
    for part, released in RELEASED_PARTS.items():
        _load_strict(net[part], strip_module_prefix(checkpoint[released]), path, relpath, what=released)


def _load_strict(net: nn.Module, state: Mapping, path: Path, relpath: str, what: str = "") -> None:
    """load_state_dict(strict=True), with key/shape mismatches reported as one WeightsError sentence."""
    problem = state_dict_mismatch(net, state)
    if not problem:
        try:
            net.load_state_dict(state, strict=True)
            return
        except Exception as e:
            problem = f"{type(e).__name__} while loading"
    where = f" (part {what})" if what else ""
    raise WeightsError(f"{path}{where}: does not match the network it is for ({problem}); {_remedy(relpath)}.")


def state_dict_mismatch(net: nn.Module, state: Mapping) -> str:
    """'' when `state` has exactly the keys and shapes of `net.state_dict()`, else a short description."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and (not isinstance(state[k], torch.Tensor)
                                                     or tuple(state[k].shape) != tuple(expected[k].shape))]
    parts = [f"{label} {len(keys)} key(s), e.g. {keys[0]}"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", shapes)) if keys]
    return "; ".join(parts)


def _remedy(relpath: str) -> str:
    return (f"delete it and download it again ({relpath} of the hub repo {HUB_REPO}), "
            "or use profile='sample' to run offline with seeded weights")


__all__ = ["LivePortrait", "load_liveportrait", "build_network", "network_class", "read_checkpoint",
           "state_dict_mismatch", "NETWORKS"]
