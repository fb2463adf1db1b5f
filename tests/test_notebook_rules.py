"""The course notebooks 00-06 follow one shape (issues 10, 13.2, 13.6), read from their JSON without running them:

- the title cell has the Colab badge for this very notebook (the repository of the README's table) and a one-line
  summary of what it teaches;
- the `parameters` cell has `PROFILE = None` and `WORKSPACE = None` (the same defaults everywhere: the environment's
  profile and workspace, so nbval runs them on the sample profile in the test workspace);
- the profile is chosen one way (`get_profile(PROFILE)`), the workspace applied one way
  (`paths.use_workspace(WORKSPACE)`), and each notebook says whose inputs it found (`inputs.describe()`);
- cells are thin: calls into the package plus display, no functions or classes defined in cells, no cell longer than
  12 lines, no private names, no environment variables set by hand, no module constant overwritten.
"""
from __future__ import annotations

from pathlib import Path

import json
import re

import pytest

REPO = Path(__file__).resolve().parents[1]   # not `from conftest import`: notebooks/ has a conftest too

COURSE = ["00_setup", "01_phoneme_corpus", "02_baking", "03_motion_extraction", "04_training", "05_export",
          "06_live_preview"]
MAX_CELL_LINES = 12


def _cells(name: str) -> list[dict]:
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
    return [dict(c, text="".join(c["source"])) for c in nb["cells"]]


def _code(name: str) -> list[str]:
    """The code cells after the Colab install cell (the one cell allowed shell lines)."""
    return [c["text"] for c in _cells(name) if c["cell_type"] == "code"][1:]


def _repo_url() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/00_setup", readme)
    assert m, "the README's notebook table links notebook 00 to Colab"
    return m.group(1)


@pytest.mark.parametrize("name", COURSE)
def test_the_title_cell_has_its_colab_badge_and_a_one_line_summary(name):
    title = _cells(name)[0]
    assert title["cell_type"] == "markdown" and title["text"].startswith(f"# {name[:2]} ")
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research."
             f"google.com/github/{_repo_url()}/blob/main/notebooks/{name}.ipynb)")
    assert badge in title["text"]
    summary = [ln for ln in title["text"].splitlines() if ln.startswith("**In one line:**")]
    assert len(summary) == 1 and len(summary[0]) > 40


@pytest.mark.parametrize("name", COURSE)
def test_profile_and_workspace_are_parameters_applied_one_way(name):
    params = [c["text"] for c in _cells(name) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    assert re.search(r"^PROFILE = None\b", params[0], re.M) and re.search(r"^WORKSPACE = None\b", params[0], re.M)
    code = "\n".join(_code(name))
    assert "get_profile(PROFILE)" in code and "paths.use_workspace(WORKSPACE)" in code and "inputs.describe()" in code
    assert "os.environ" not in code


@pytest.mark.parametrize("name", COURSE)
def test_cells_are_calls_into_the_package_plus_display(name):
    for cell in _code(name):
        lines = [ln for ln in cell.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert len(lines) <= MAX_CELL_LINES, f"{name}: a cell of {len(lines)} lines:\n{cell}"
        assert not re.search(r"^\s*(def|class|async def) ", cell, re.M), f"{name}: defines code in a cell:\n{cell}"
        assert not re.search(r"\b[a-z]\w*\.(_\w+)", cell), f"{name}: uses a private name:\n{cell}"
        assert not re.search(r"^\s*[a-z]\w*\.[A-Z][A-Z0-9_]+\s*=[^=]", cell, re.M), \
            f"{name}: overwrites a module constant:\n{cell}"
        assert not cell.lstrip().startswith("!") and "\n!" not in cell, f"{name}: shell lines outside the install cell"


def test_upload_and_record_cells_are_where_the_inputs_are_made():
    assert 'inputs.upload("portrait")' in "\n".join(_code("02_baking"))
    assert "inputs.choose_portrait(PORTRAIT" in "\n".join(_code("02_baking"))
    code03 = "\n".join(_code("03_motion_extraction"))
    assert 'inputs.upload("recording")' in code03 and "recorder.record(enabled=RECORD)" in code03
    assert "inputs.choose_recording(VIDEO" in code03
