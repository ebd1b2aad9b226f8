""".ci/run: runs the README's set-up commands as written and fails unless the install
succeeds and tests were collected and passed (exercised with stub ``pip`` / ``python``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    """The command lines of the README's "Set-up" bash block."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"^## Set-up.*?^```bash\n(.*?)^```", text, re.S | re.M)
    assert block, "README.md has no '## Set-up' section with a bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_commands_in_order():
    commands = readme_setup_commands()
    assert commands == ['pip install -e ".[dev]"', "python -m pytest -q"]
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "set -euo pipefail" in lines
    at = [next(i for i, line in enumerate(lines) if line == cmd or line.startswith(cmd + " ")) for cmd in commands]
    assert at == sorted(at)


@pytest.mark.parametrize("pip_rc,pytest_rc,expected", [(0, 0, 0), (1, 0, 1), (0, 1, 1), (0, 5, 5)])
def test_ci_exit_status(tmp_path, pip_rc, pytest_rc, expected):
    """Stubs log their arguments: the install runs first, the tests only after it succeeded."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    for name, rc in (("pip", pip_rc), ("python", pytest_rc)):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $* IRDET_REQUIRE_DATA=$IRDET_REQUIRE_DATA" >> "{log}"\nexit {rc}\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == expected, proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "pip install -e .[dev] IRDET_REQUIRE_DATA=1"
    assert calls[1:] == ([] if pip_rc else ["python -m pytest -q IRDET_REQUIRE_DATA=1"])
    assert ("collected no tests" in proc.stderr) == (pytest_rc == 5)
