"""``wasm`` executor: runs a WASI command module with wasmtime.

* Entry module: ``EntryModule`` is the Target of one of the task's inputs (or a file inside
  a mounted folder), or an embedded InputSource that :meth:`WasmExecutor.extra_inputs` asks
  the runner to stage (at its own Target, else ``/bacalao/entry/<alias or main>.wasm``).
  Binary modules and WAT text are both accepted.
* WASI: argv is the module's file name then ``Parameters``; env is the task's env overlaid by
  ``EnvironmentVariables``; inputs are preopened read-only at their targets and outputs
  writable; stdout and stderr go to the files of the same name in the results folder.
* Outcomes: the module's exit code (``proc_exit(n)`` -> n, returning -> 0); a trap -> 134
  with the trap in ``error``; a memory limit hit -> 137; timeout -> 124; cancelled -> 130.
  A module that cannot be run at all (not valid, missing export, unknown import) raises
  :class:`ExecutionError`.

Compiled code is cached by content. Each run gets an engine of its own, loaded with the
cached code: bumping that engine's epoch is the run's stop switch, so a timeout or a cancel
interrupts the module at once without touching the other runs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path, PurePosixPath

import wasmtime

from compute.executors.base import RunOutcome, RunRequest
from compute.executors.interrupts import RunControl, RunControls
from compute.executors.wasm_modules import (
    CompiledModule,
    ModuleCache,
    describe_error,
    load_module_bytes,
    new_engine,
)
from compute.executors.wasm_mounts import Preopen, entry_target, find_entry_module, preopens
from protocol.errors import ExecutionError, ValidationError
from protocol.job import InputSource, SpecConfig
from protocol.specs.engines import WasmParams

log = logging.getLogger(__name__)

__all__ = ["MEMORY_EXIT_CODE", "TRAP_EXIT_CODE", "WasmExecutor", "load_module_bytes"]

TRAP_EXIT_CODE = 134  # 128 + SIGABRT: what a native program that aborts ends with
MEMORY_EXIT_CODE = 137  # 128 + SIGKILL: what an out-of-memory-killed container ends with
WASM_PAGE_BYTES = 65536


def wasm_params(engine: SpecConfig) -> WasmParams:
    try:
        params = WasmParams.from_wire(engine.params, prefix="Engine.Params")
    except ValidationError as exc:
        raise ExecutionError(f"wasm: {exc}") from None
    if params.import_modules:
        raise ExecutionError("wasm: ImportModules are not supported by this node")
    return params


class WasmExecutor:
    """Runs wasm modules; safe to call from several threads at once.

    ``scratch_dir`` is where the per-run folders of single-file mounts are made; on the same
    file system as the staged inputs, their files are hard-linked instead of copied.
    """

    def __init__(
        self,
        *,
        cache: ModuleCache | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        self.cache = cache or ModuleCache()
        self.scratch_dir = scratch_dir
        self._controls = RunControls()

    @property
    def type(self) -> str:
        return "wasm"

    def is_installed(self) -> bool:
        return True  # wasmtime is imported by this module, so it is there

    def extra_inputs(self, engine: SpecConfig) -> list[InputSource]:
        entry = wasm_params(engine).entry_module
        if isinstance(entry, str):
            return []
        return [entry.model_copy(update={"target": entry_target(entry)})]

    def running(self) -> list[str]:
        """Execution IDs running now, sorted."""
        return self._controls.running()

    def cancel(self, execution_id: str) -> None:
        self._controls.cancel(execution_id)

    def run(self, request: RunRequest) -> RunOutcome:
        params = wasm_params(request.engine)
        target = entry_target(params.entry_module)
        started = time.monotonic()
        request.results_dir.mkdir(parents=True, exist_ok=True)
        with self._controls.track(request.execution_id, request.timeout_s) as control:
            if control.reason is not None:
                for name in ("stdout", "stderr"):
                    (request.results_dir / name).touch()
                return control.outcome()
            compiled = self.cache.get(find_entry_module(target, request.inputs), target)
            log.info(
                "event=wasm_run_start execution=%s module=%s digest=%s timeout_s=%g "
                "memory_bytes=%d",
                request.execution_id,
                target,
                compiled.digest[:12],
                request.timeout_s,
                request.resources.memory,
            )
            mounts = (*request.inputs, *request.outputs)
            with preopens(mounts, self.scratch_dir) as folders:
                wasi = wasi_config(request, params, PurePosixPath(target).name, folders)
                outcome = self._execute(request, params, target, compiled, wasi, control)
        log.info(
            "event=wasm_run_end execution=%s exit_code=%d error=%r duration_s=%.3f",
            request.execution_id,
            outcome.exit_code,
            outcome.error,
            time.monotonic() - started,
        )
        return outcome

    def _execute(
        self,
        request: RunRequest,
        params: WasmParams,
        target: str,
        compiled: CompiledModule,
        wasi: wasmtime.WasiConfig,
        control: RunControl,
    ) -> RunOutcome:
        engine = new_engine()
        module = compiled.load(engine)
        store = wasmtime.Store(engine)
        # Code runs until the epoch moves once; the stop switch is what moves it.
        store.set_epoch_deadline(1)
        control.on_stop(engine.increment_epoch)
        memory_bytes = request.resources.memory
        if memory_bytes > 0:
            store.set_limits(memory_size=memory_bytes)
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        try:
            instance = linker.instantiate(store, module)
        except wasmtime.Trap as exc:
            return trap_outcome(exc, control, store, None, memory_bytes)
        except wasmtime.WasmtimeError as exc:
            return instantiate_failure(exc, target, memory_bytes)
        entry = entry_function(instance, store, target, params.entrypoint)
        try:
            entry(store)
        except wasmtime.ExitTrap as exc:
            return RunOutcome(exit_code=exc.code)
        except wasmtime.Trap as exc:
            return trap_outcome(exc, control, store, instance, memory_bytes)
        except wasmtime.WasmtimeError as exc:
            if control.reason is not None:
                return control.outcome()
            return RunOutcome(
                exit_code=TRAP_EXIT_CODE, error=f"module failed: {describe_error(exc)}"
            )
        return RunOutcome(exit_code=0)


def entry_function(
    instance: wasmtime.Instance, store: wasmtime.Store, module: str, name: str
) -> wasmtime.Func:
    """The exported function ``name``, which must take no arguments (results are ignored)."""
    exports = instance.exports(store)
    entry = exports.get(name)
    if not isinstance(entry, wasmtime.Func):
        listed = ", ".join(exports) or "none"
        raise ExecutionError(f"module {module} has no function {name!r} to run (exports: {listed})")
    if entry.type(store).params:
        raise ExecutionError(
            f"module {module}: function {name!r} takes arguments, so it cannot be run"
        )
    return entry


def wasi_config(
    request: RunRequest, params: WasmParams, program: str, folders: list[Preopen]
) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = [program, *params.parameters]
    wasi.env = sorted({**request.env, **params.environment_variables}.items())
    wasi.stdout_file = str(request.results_dir / "stdout")
    wasi.stderr_file = str(request.results_dir / "stderr")
    for folder in folders:
        wasi.preopen_dir(str(folder.host_dir), folder.guest_dir, folder.writable)
    return wasi


def memory_size_bytes(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int:
    """The linear memory the instance exports, in bytes (0 when it exports none)."""
    if instance is None:
        return 0
    exports = instance.exports(store)
    return sum(
        item.data_len(store) for item in exports.by_index if isinstance(item, wasmtime.Memory)
    )


def trap_outcome(
    trap: wasmtime.Trap,
    control: RunControl,
    store: wasmtime.Store,
    instance: wasmtime.Instance | None,
    memory_limit_bytes: int,
) -> RunOutcome:
    """A trap is our interruption when the stop switch was thrown; the memory limit when the
    module trapped with its memory so near the limit that it could not grow any more."""
    if control.reason is not None:
        return control.outcome()
    description = describe_error(trap)
    used_bytes = memory_size_bytes(store, instance)
    if memory_limit_bytes > 0 and used_bytes + WASM_PAGE_BYTES > memory_limit_bytes:
        return RunOutcome(
            exit_code=MEMORY_EXIT_CODE,
            error=(
                f"memory limit of {memory_limit_bytes} bytes exceeded: memory could not grow "
                f"past {used_bytes} bytes, then {description}"
            ),
        )
    return RunOutcome(exit_code=TRAP_EXIT_CODE, error=f"trap: {description}")


def instantiate_failure(
    error: wasmtime.WasmtimeError, module_name: str, memory_limit_bytes: int
) -> RunOutcome:
    """The outcome of a module asking for more memory than allowed at the start; any other
    failure to instantiate means it cannot run here at all."""
    description = describe_error(error)
    if memory_limit_bytes > 0 and "exceeds memory limits" in description:
        return RunOutcome(
            exit_code=MEMORY_EXIT_CODE,
            error=f"memory limit of {memory_limit_bytes} bytes exceeded: {description}",
        )
    raise ExecutionError(f"module {module_name} cannot be instantiated: {description}")
