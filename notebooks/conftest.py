"""`pytest --nbval notebooks/` on its own runs like the whole suite: the sample profile, no network.

pytest loads only the conftest files on the way to what it collects, so a run of `notebooks/` alone never sees
`tests/conftest.py`. This file executes that one (the single place the test environment is defined: profile `sample`,
a temporary workspace shared by the notebooks in order, `HF_HUB_OFFLINE=1`, `MPLBACKEND=Agg`, ...) before any kernel
starts; nbval's kernels inherit the environment. Loading both files in one run is harmless: every setting there is
idempotent.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_TESTS_CONFTEST = Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("talkinghead_tests_conftest", _TESTS_CONFTEST)
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
