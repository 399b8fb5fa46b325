"""``bench.scale --profile``: py-spy samples the requester while its jobs run, and the bench
prints where the samples went (per thread, and the functions most often on the stack)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from contextlib import suppress
from pathlib import Path

from bench.scale_procs import Child, start

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \(\d+\): ?(?P<name>.*)$")
_PLUMBING = ("threading.py", "<frozen", "runpy.py")


def start_profile(pid: int, output: Path) -> Child | None:
    """py-spy recording ``pid`` into ``output`` (raw stacks, threads named); None when
    py-spy is not installed."""
    binary = shutil.which("py-spy")
    if binary is None:
        return None
    argv = [binary, "record", "--pid", str(pid), "--rate", "100", "--threads", "--nonblocking"]
    argv += ["--format", "raw", "--output", str(output)]
    return start("py-spy", argv, output.with_suffix(".log"))


def stop_profile(spy: Child) -> None:
    """py-spy writes its file on SIGINT."""
    if spy.alive():
        spy.process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            spy.process.wait(30)
    spy.stop()


def _frame_label(frame: str) -> str:
    match = _FRAME.match(frame)
    return f"{match['name']} ({match['file']})" if match else frame


def summarize(path: Path, shown: int = 14) -> list[str]:
    """Lines to print: samples per thread, and the functions on the most stacks (each once
    per stack: inclusive), plumbing such as thread bootstrap left out."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [f"no profile at {path}"]
    threads: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = match["stack"].split(";")
        thread = _THREAD.match(frames[0])
        if thread is not None:
            threads[thread["name"] or "?"] += count
            frames = frames[1:]
        total += count
        labels = {_frame_label(f) for f in frames if not any(p in f for p in _PLUMBING)}
        functions.update(dict.fromkeys(labels, count))
    if not total:
        return ["profile is empty"]
    lines = [f"{total} samples; by thread: " + ", ".join(
        f"{name} {n * 100 / total:.0f}%" for name, n in threads.most_common(5)
    )]  # fmt: skip
    lines += [f"{n * 100 / total:5.1f}%  {name}" for name, n in functions.most_common(shown)]
    return lines
