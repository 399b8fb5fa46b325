"""The GPUs a compute node has, as ``nvidia-smi`` lists them, and the labels they give it.

A node labels itself ``GPU-Count`` and ``GPU-Model`` (the first GPU's name, spaces as dashes)
so a job can ask for ``--constraints 'GPU-Count>0'`` or prefer a model with ``favour_``. No
``nvidia-smi``, or one that fails or hangs, means no GPUs: the node starts all the same.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocol.labels import value_problem

log = logging.getLogger("bacalao.compute")

QUERY = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
TIMEOUT_S = 5.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Runner = Callable[[Sequence[str]], str]  # runs a command, returns its stdout or raises OSError


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int


def parse(csv: str) -> list[Gpu]:
    """``NVIDIA A100-SXM4-40GB, 40960`` lines (memory in MiB); lines that do not parse are
    skipped."""
    gpus = []
    for line in csv.splitlines():
        name, _, memory = line.rpartition(",")
        try:
            mib = int(float(memory.strip()))
        except ValueError:
            continue
        if name.strip():
            gpus.append(Gpu(name.strip(), mib * 1024 * 1024))
    return gpus


def _run(command: Sequence[str]) -> str:
    done = subprocess.run(
        list(command), capture_output=True, text=True, timeout=TIMEOUT_S, check=True
    )
    return done.stdout


def detect(run: Runner = _run) -> list[Gpu]:
    """This machine's GPUs; none when nvidia-smi is missing, fails or takes too long."""
    try:
        return parse(run(QUERY))
    except FileNotFoundError:
        return []
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("event=gpu_detection_failed error=%r", str(exc))
        return []


def gpu_labels(gpus: Sequence[Gpu]) -> dict[str, str]:
    """``GPU-Count`` always for a node that has GPUs, ``GPU-Model`` when its name makes a
    usable label value."""
    if not gpus:
        return {}
    labels = {"GPU-Count": str(len(gpus))}
    model = _UNSAFE.sub("-", gpus[0].name).strip("-._")[:63].strip("-._")
    if model and value_problem(model) is None:
        labels["GPU-Model"] = model
    return labels
