"""GPU labels from nvidia-smi: parsed, turned into labels, and absent when it is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from compute import gpus
from compute.gpus import Gpu, detect, gpu_labels, parse

TWO_A100 = "NVIDIA A100-SXM4-40GB, 40960\nNVIDIA A100-SXM4-40GB, 40960\n"


def test_nvidia_smi_csv_is_parsed_and_odd_lines_skipped() -> None:
    assert (
        parse(TWO_A100 + "garbage\n, 12\n")
        == [Gpu("NVIDIA A100-SXM4-40GB", 40960 * 1024 * 1024)] * 2
    )


def test_labels_count_the_gpus_and_name_the_model_as_a_label_value() -> None:
    assert gpu_labels(parse(TWO_A100)) == {
        "GPU-Count": "2",
        "GPU-Model": "NVIDIA-A100-SXM4-40GB",
    }
    assert gpu_labels([]) == {}
    assert gpu_labels([Gpu("  (weird) ", 1)]) == {"GPU-Count": "1", "GPU-Model": "weird"}
    assert gpu_labels([Gpu("***", 1)]) == {"GPU-Count": "1"}  # no usable model name


def fake_nvidia_smi(folder: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_detect_runs_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, "printf 'Tesla T4, 15360\\n'", monkeypatch)
    assert detect() == [Gpu("Tesla T4", 15360 * 1024 * 1024)]


def test_no_nvidia_smi_means_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: nothing to run
    assert detect() == []


def test_a_failing_or_hanging_nvidia_smi_means_no_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9", monkeypatch)
    assert detect() == []
    fake_nvidia_smi(tmp_path, "exec sleep 30", monkeypatch)
    monkeypatch.setattr(gpus, "TIMEOUT_S", 0.2)
    assert detect() == []
