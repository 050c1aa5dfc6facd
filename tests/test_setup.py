"""The README's two set-up commands, setup.sh and CI agree (a fresh machine must be able to run them)."""

from __future__ import annotations

import re
import shutil
import subprocess

from conftest import REPO_ROOT


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < text.index("\n## "), "no opening command block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_a_demo_and_a_test_command_and_ci_runs_the_second():
    demo, test = readme_commands()  # exactly two
    assert demo == "bash setup.sh demo" and test == "bash setup.sh test"
    ci = [line for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci == [test]


def test_setup_installs_only_into_the_project_venv():
    # PEP 668: a stock Debian/Ubuntu Python refuses pip installs outside a virtual environment.
    script = (REPO_ROOT / "setup.sh").read_text()
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    pip_calls = [line for line in lines if "pip install" in line]
    assert pip_calls
    assert all('"$PY" -m pip' in line or '"$VENV/bin/python" -m pip' in line for line in pip_calls)


def test_setup_rejects_an_unknown_task_before_touching_anything(tmp_path):
    shutil.copy(REPO_ROOT / "setup.sh", tmp_path / "setup.sh")
    run = subprocess.run(["bash", "setup.sh", "bogus"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2 and "usage: bash setup.sh demo|test|install" in run.stderr
    assert not (tmp_path / ".venv").exists()
