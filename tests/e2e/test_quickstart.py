"""The README's quick start, run as a user runs it: the installed `bacalao` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "wasm"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def bacalao(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from cli.main import main; main()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=90, check=False)


def test_readme_quick_start_runs_a_real_wasm_job(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bacalao wasm run --embedded examples/wasm/hello.wat Bacalhau" in readme
    result = bacalao("wasm", "run", "--embedded", "examples/wasm/hello.wat", "Bacalhau", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Bacalhau!\n"


def test_a_failing_job_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    result = bacalao("wasm", "run", "--embedded", str(FIXTURES / "exit.wat"), "3", cwd=tmp_path)
    assert result.returncode == 1
    assert "exit" in result.stderr.lower()
    assert "3" in result.stderr
    assert "Traceback" not in result.stderr
