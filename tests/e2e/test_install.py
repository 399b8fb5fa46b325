"""The package as pip installs it (not the editable checkout): every subpackage is in the
wheel and the ``bacalao`` console script runs a job. Dependencies come from this
environment, so no download is needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_regular_install_runs_the_quick_start_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "tests", "bench", "*.egg-info", "build", "__pycache__", ".*cache"
        ),
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-build-isolation", str(source)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    module = source / "examples" / "wasm" / "hello.wat"
    result = subprocess.run(
        [str(env_dir / "bin" / "bacalao"), "wasm", "run", "--embedded", str(module), "Wheel"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BACALAO_DIR": str(tmp_path / "d")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Wheel!\n"
    shown = subprocess.run(
        [str(python), "-c", "import cli, protocol.peer, compute.executors; print(cli.__file__)"],
        cwd=elsewhere, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert str(env_dir) in shown.stdout  # the installed copy, not the checkout
    # The dashboard's page, script, style and icon are package data of the installed copy.
    script = "import requester.api_dashboard as d; print(d.__file__, *sorted(d.load_assets()))"
    assets = subprocess.run(
        [str(python), "-c", script],
        cwd=elsewhere, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert assets.returncode == 0, assets.stderr
    where, *names = assets.stdout.split()
    assert str(env_dir) in where
    assert names == ["app.js", "favicon.svg", "index.html", "style.css"]
