"""A run's stdout and stderr files, each capped at a number of bytes.

wasmtime hands every write of the module to :meth:`CappedOutput.write` (WASI's custom output),
which appends it to the file at once, so the file grows as the module writes. The write that
would take a stream past its cap is cut at the cap and the run's stop switch is thrown with
:attr:`StopReason.OUTPUT_LIMIT`: the module traps at its next call or loop and the run ends
with exit code 153 (what a process writing past its file size limit gets), the file holding
exactly the first ``limit_bytes`` bytes. Stopping rather than silently dropping the rest
means a runaway writer does not burn its whole timeout, and the user is told why the output
ends where it does.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import wasmtime

from compute.executors.interrupts import RunControl, StopReason

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OUTPUT_FILE_LIMIT_BYTES", "CappedOutput", "capped_outputs"]

DEFAULT_OUTPUT_FILE_LIMIT_BYTES = 64 * 1024 * 1024


class CappedOutput:
    """One output stream written to ``path``, at most ``limit_bytes`` (0: no cap).

    wasmtime calls :meth:`write` on a thread of its own while the module waits, one write at
    a time; it must not raise (wasmtime-py would print the error to the node's stdout)."""

    def __init__(self, path: Path, name: str, limit_bytes: int, control: RunControl) -> None:
        self.name = name
        self.limit_bytes = limit_bytes
        self.written_bytes = 0
        self._control = control
        self._file = path.open("wb", buffering=0)

    def write(self, data: bytes) -> int:
        """Append ``data``; the number of bytes taken, or a negated errno."""
        room = len(data)
        if self.limit_bytes > 0:
            room = min(room, self.limit_bytes - self.written_bytes)
        try:
            written = self._file.write(data[:room]) if room > 0 else 0
        except (OSError, ValueError) as exc:  # ValueError: closed after the run
            log.warning("event=wasm_output_failed stream=%s error=%r", self.name, exc)
            return -errno.EIO
        self.written_bytes += written or 0
        if room < len(data):
            self._exceeded()
            return written or -errno.EFBIG
        return written or 0

    def _exceeded(self) -> None:
        detail = (
            f"{self.name} exceeded the limit of {self.limit_bytes} bytes: the module was "
            f"stopped, and {self.name} holds its first {self.limit_bytes} bytes"
        )
        if self._control.stop(StopReason.OUTPUT_LIMIT, detail):
            log.info(
                "event=wasm_output_limit execution=%s stream=%s limit_bytes=%d",
                self._control.execution_id,
                self.name,
                self.limit_bytes,
            )

    def close(self) -> None:
        self._file.close()


@contextmanager
def capped_outputs(
    wasi: wasmtime.WasiConfig, results_dir: Path, limit_bytes: int, control: RunControl
) -> Iterator[tuple[CappedOutput, CappedOutput]]:
    """Send the module's stdout and stderr to files of those names in ``results_dir``, each
    capped at ``limit_bytes``; the files are closed on exit."""
    with ExitStack() as stack:
        streams = []
        for name in ("stdout", "stderr"):
            stream = CappedOutput(results_dir / name, name, limit_bytes, control)
            stack.callback(stream.close)
            streams.append(stream)
        stdout, stderr = streams
        wasi.stdout_custom = stdout.write
        wasi.stderr_custom = stderr.write
        yield stdout, stderr
