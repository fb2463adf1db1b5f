"""Every network built at the FULL (released) config has exactly the released checkpoints' keys, shapes and dtypes.

The manifest (shared/conformance/manifest.json) was read off the reference modules at the released models.yaml, so a
match here means the released files load with strict=True. Networks are built on the meta device: no memory, no init.
"""
from __future__ import annotations

import json

import pytest
import torch

from talkinghead.hub import LIVEPORTRAIT_FILES
from talkinghead.liveportrait import config as lp_config
from talkinghead.liveportrait.loader import build_network
from talkinghead.liveportrait.stitching import RELEASED_PARTS

BASE_NETWORKS = ["appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator"]


@pytest.fixture(scope="module")
def manifest(conformance):
    return json.loads((conformance / "manifest.json").read_text())


def _layout(state_dict) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in state_dict.items()}


def _compare(got: dict, want: dict, what: str) -> None:
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    wrong = {k: (got[k], want[k]) for k in set(got) & set(want) if got[k] != want[k]}
    assert not (missing or unexpected or wrong), (
        f"{what}: missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), "
        f"wrong shape/dtype {dict(list(wrong.items())[:5])} ({len(wrong)})")


def test_config_is_the_released_models_yaml(manifest):
    released = manifest["config"]
    for name in BASE_NETWORKS + ["stitching_retargeting_module"]:
        assert lp_config.network_config("full", name) == released[f"{name}_params"], name


def test_hub_paths_are_the_manifest_files(manifest):
    assert set(LIVEPORTRAIT_FILES.values()) == set(manifest["checkpoints"])


@pytest.mark.parametrize("name", BASE_NETWORKS)
def test_network_keys_shapes_dtypes(manifest, name):
    entry = manifest["checkpoints"][LIVEPORTRAIT_FILES[name]]
    with torch.device("meta"):
        net = build_network(name, "full")
    _compare(_layout(net.state_dict()), entry["keys"], name)
    assert sum(p.numel() for p in net.parameters()) == entry["num_parameters"]  # parameters, not buffers


def test_stitching_parts(manifest):
    entry = manifest["checkpoints"][LIVEPORTRAIT_FILES["stitching_retargeting_module"]]
    with torch.device("meta"):
        net = build_network("stitching_retargeting_module", "full")
    assert set(entry["parts"]) == set(RELEASED_PARTS.values())
    for part, released in RELEASED_PARTS.items():
        assert entry["parts"][released]["config_key"] == part
        _compare(_layout(net[part].state_dict()), entry["parts"][released]["keys"], released)


@pytest.mark.parametrize("name", BASE_NETWORKS + ["stitching_retargeting_module"])
def test_sample_profile_builds_the_same_classes(name):
    """The sample profile uses the same code: the same class, and (for M, S) the same key names."""
    with torch.device("meta"):
        full = build_network(name, "full")
        sample = build_network(name, "sample")
    assert type(full) is type(sample)
    if name == "stitching_retargeting_module":
        assert _layout(full.state_dict()) == _layout(sample.state_dict())
    if name == "motion_extractor":
        assert {k for k in full.state_dict() if ".stages." not in k} == \
               {k for k in sample.state_dict() if ".stages." not in k}
