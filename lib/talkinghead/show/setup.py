"""Notebook 00 (notebooks/00_setup.ipynb): the weights this profile needs, the networks loaded and counted, and how
fast each one runs here.
"""
from __future__ import annotations

import time

from .. import hub, machine
from ..liveportrait import load_liveportrait
from ..profiles import get_profile


def fetch_weights(profile=None, weights_dir=None, face_detector: bool = True) -> dict:
    """The full profile's weight files (`hub.fetch_all`: downloaded once, or from `weights_dir`), printed with their
    licence note and sizes; on the sample profile nothing is fetched ({})."""
    if get_profile(profile).is_sample:
        print("sample profile: no download; weights are drawn from a fixed seed.")
        return {}
    print(hub.LICENCE_NOTE)
    files = hub.fetch_all(weights_dir, face_detector=face_detector)
    for name, path in files.items():
        print(f"{name:30s} {path.stat().st_size / 1e6:7.1f} MB  {path}")
    return files


def load_networks(profile=None, weights_dir=None):
    """`load_liveportrait` for the profile, printing how long it took and each network's parameter count."""
    p = get_profile(profile)
    t0 = time.perf_counter()
    lp = load_liveportrait(weights_dir, profile=p.name)
    print(f"loaded the {p.name} networks in {time.perf_counter() - t0:.2f} s")
    for name, n in machine.parameter_counts(lp).items():
        print(f"{name:30s} {n / 1e6:6.2f} M parameters")
    return lp


def time_networks(lp):
    """One forward pass of each network (`machine.time_liveportrait`), printed and drawn as bars. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = machine.time_liveportrait(lp)
    for r in rows:
        print(f"{r['network']:30s} {str(r['input']):22s} -> {str(r['output']):22s} {r['ms']:8.1f} ms")
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.barh([r["network"] for r in rows], [r["ms"] for r in rows], color="tab:blue")
    ax.set_xlabel("ms per frame (batch 1)")
    ax.set_title(f"one forward pass, profile '{lp.profile}'")
    return fig
