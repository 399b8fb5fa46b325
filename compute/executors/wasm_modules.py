"""Loading and compiling WebAssembly modules, with a bounded cache of compiled code.

Modules are compiled once per content (sha256 of the file's bytes, WAT or binary) by the
cache's engine; each run then loads the compiled code into an engine of its own with
:meth:`CompiledModule.load`, which costs microseconds and does not compile again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from protocol.errors import ExecutionError

log = logging.getLogger(__name__)

WASM_MAGIC = b"\0asm"
DEFAULT_CACHE_ENTRIES = 64
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
_CAUSE_NUMBER = re.compile(r"^\d+: ")


def new_engine() -> wasmtime.Engine:
    """An engine whose running code can be interrupted by bumping its epoch.

    Every engine made here has the same configuration, so code compiled by one loads in any.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def describe_error(error: Exception) -> str:
    """A wasmtime error on one line: its message and causes, without the wasm backtrace."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if "Caused by:" in lines:
        causes = [_CAUSE_NUMBER.sub("", line) for line in lines[lines.index("Caused by:") + 1 :]]
        head = [] if lines[0].startswith("error while executing") else [lines[0]]
        return ": ".join(head + causes)
    if len(lines) > 1 and lines[1].startswith("-->"):
        return f"{lines[0]} at {lines[1].removeprefix('-->').strip()}"
    return lines[0]


def to_binary(data: bytes, name: str) -> bytes:
    """``data`` as a binary module: binary as is, WAT text through ``wat2wasm``."""
    if data.startswith(WASM_MAGIC):
        return data
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except UnicodeDecodeError:
        problem = "neither the binary format nor WAT text"
    except wasmtime.WasmtimeError as exc:
        problem = describe_error(exc)
    raise ExecutionError(f"module {name} is not valid WebAssembly: {problem}")


def read_module_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExecutionError(f"module {name} cannot be read: {exc.strerror}") from None


def load_module_bytes(path: Path) -> bytes:
    """The binary module in the file at ``path``, which holds a ``.wasm`` or WAT text."""
    return to_binary(read_module_file(path, path.name), path.name)


@dataclass(frozen=True)
class CompiledModule:
    """A module compiled for engines made by :func:`new_engine`."""

    name: str
    digest: str
    artifact: bytes

    def load(self, engine: wasmtime.Engine) -> wasmtime.Module:
        return wasmtime.Module.deserialize(engine, self.artifact)


class ModuleCache:
    """Compiled modules by content, least recently used evicted first; thread-safe.

    A module is compiled once even when several runs ask for it at the same moment: the first
    compiles, the others wait for its result (or its error). The result is in the cache
    before the compilation stops being in progress, so no caller ever finds neither.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        max_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._engine = new_engine()
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CompiledModule] = OrderedDict()
        self._compiling: dict[str, Future[CompiledModule]] = {}
        self._size_bytes = 0
        self.compile_count = 0
        self.hit_count = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The bytes of compiled code held, which eviction keeps within ``max_bytes``."""
        with self._lock:
            return self._size_bytes

    def get(self, path: Path, name: str = "") -> CompiledModule:
        """The compiled module in the file at ``path``; ExecutionError when it is not valid.
        ``name`` is how errors call it (the file's name by default)."""
        name = name or path.name
        data = read_module_file(path, name)
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._hit(digest)
            if cached is not None:
                return cached
            pending = self._compiling.get(digest)
            compiling = pending is None
            if pending is None:
                pending = self._compiling[digest] = Future()
            else:
                self.hit_count += 1
        if not compiling:
            return pending.result()
        try:
            compiled = self._compile(data, digest, name)
        except BaseException as exc:
            with self._lock:
                self._compiling.pop(digest, None)
            pending.set_exception(exc)
            raise
        with self._lock:
            self._insert(compiled)
            self._compiling.pop(digest, None)
        pending.set_result(compiled)
        return compiled

    def _hit(self, digest: str) -> CompiledModule | None:
        cached = self._entries.get(digest)
        if cached is not None:
            self._entries.move_to_end(digest)
            self.hit_count += 1
        return cached

    def _compile(self, data: bytes, digest: str, name: str) -> CompiledModule:
        started = time.monotonic()
        binary = to_binary(data, name)
        try:
            module = wasmtime.Module(self._engine, binary)
        except wasmtime.WasmtimeError as exc:
            problem = describe_error(exc)
            raise ExecutionError(f"module {name} is not valid WebAssembly: {problem}") from None
        compiled = CompiledModule(name, digest, bytes(module.serialize()))
        with self._lock:
            self.compile_count += 1
        log.info(
            "event=wasm_module_compiled module=%s digest=%s size_bytes=%d compile_s=%.3f",
            name,
            digest[:12],
            len(binary),
            time.monotonic() - started,
        )
        return compiled

    def _insert(self, compiled: CompiledModule) -> None:
        replaced = self._entries.pop(compiled.digest, None)
        if replaced is not None:
            self._size_bytes -= len(replaced.artifact)
        self._entries[compiled.digest] = compiled
        self._size_bytes += len(compiled.artifact)
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or self._size_bytes > self.max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self._size_bytes -= len(evicted.artifact)
            log.info("event=wasm_module_evicted digest=%s", evicted.digest[:12])
