"""Repository hygiene that CI relies on: the README's test command is what .ci/run runs, notebooks are stripped,
the package under lib/ is not ignored by git."""
from __future__ import annotations

from pathlib import Path

import json
import re
import subprocess

REPO = Path(__file__).resolve().parents[1]   # not `from conftest import`: notebooks/ has a conftest too


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = _readme_commands()
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1, "the README has exactly one test command"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0] in ci, ".ci/run must run the README's test command verbatim"


def test_readme_main_command_runs_the_demo():
    main = [c for c in _readme_commands() if "talkinghead demo" in c]
    assert main and "--profile sample" in main[0]
    assert "[tts]" in main[0], "the demo synthesises speech offline: its install must bring the espeak-ng extra"


def test_notebooks_are_stripped_and_have_a_parameters_cell():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks, "the course has notebooks"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        assert nb["metadata"].get("kernelspec", {}).get("name", "python3") == "python3", nb_path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{nb_path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"
        assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"], f"{nb_path.name} needs a title"


def test_package_is_not_ignored_by_git():
    files = subprocess.run(["git", "ls-files", "lib/talkinghead"], cwd=REPO, capture_output=True, text=True).stdout
    if not files:  # not a git checkout (e.g. an sdist): nothing to check
        return
    ignored = subprocess.run(["git", "check-ignore", "lib/talkinghead/__init__.py", "lib/talkinghead/layout.py"],
                             cwd=REPO, capture_output=True, text=True).stdout
    assert ignored == ""
