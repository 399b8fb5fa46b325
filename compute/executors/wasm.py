"""``wasm`` executor: runs a WASI command module with wasmtime.

* Entry module: ``EntryModule`` is the Target of one of the task's inputs (or a file inside
  a mounted folder), or an embedded InputSource that :meth:`WasmExecutor.extra_inputs` asks
  the runner to stage (at its own Target, else ``/bacalao/entry/<alias or main>.wasm``).
  Binary modules and WAT text are both accepted.
* WASI: argv is the module's file name then ``Parameters``; env is the task's env overlaid by
  ``EnvironmentVariables``; inputs are preopened read-only at their targets and outputs
  writable; stdout and stderr go to the files of the same name in the results folder, each
  capped at ``output_file_limit_bytes`` (:mod:`compute.executors.wasm_output`).
* Outcomes: the module's exit code (``proc_exit(n)`` -> n, returning -> 0); a trap -> 134
  with the trap in ``error``; a memory limit hit -> 137 (:mod:`compute.executors.wasm_limits`);
  timeout -> 124; cancelled -> 130; an output file past its cap -> 153. A run stopped (or
  past its deadline) ends so even if the module then exits by itself. A module that cannot be
  run at all (not valid, missing export, unknown import, more memories than allowed) raises
  :class:`ExecutionError`.

Compiled code is cached by content. Each run gets an engine of its own, loaded with the
cached code: bumping that engine's epoch is the run's stop switch, so a timeout or a cancel
interrupts the module at once without touching the other runs. The epoch acts in wasm code
only, so WASI's ``poll_oneoff`` (the way modules sleep) is replaced by one that the switch
wakes (:mod:`compute.executors.wasm_poll`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path, PurePosixPath

import wasmtime

from compute.executors.base import RunOutcome, RunRequest, task_env
from compute.executors.interrupts import RunControl, RunControls
from compute.executors.wasm_limits import (
    MEMORY_EXIT_CODE,
    TRAP_EXIT_CODE,
    apply_limits,
    execution_failure,
    instantiate_failure,
    trap_outcome,
)
from compute.executors.wasm_modules import (
    CompiledModule,
    ModuleCache,
    load_module_bytes,
    new_engine,
)
from compute.executors.wasm_mounts import Preopen, entry_target, find_entry_module, preopens
from compute.executors.wasm_output import DEFAULT_OUTPUT_FILE_LIMIT_BYTES, capped_outputs
from compute.executors.wasm_poll import define_poll_oneoff
from protocol.errors import ExecutionError, ValidationError
from protocol.job import EngineSpec, InputSource
from protocol.specs.engines import WasmParams

log = logging.getLogger(__name__)

__all__ = ["MEMORY_EXIT_CODE", "TRAP_EXIT_CODE", "WasmExecutor", "load_module_bytes"]


def wasm_params(engine: EngineSpec) -> WasmParams:
    try:
        params = engine.params_as(WasmParams, "Engine")
    except ValidationError as exc:
        raise ExecutionError(f"wasm: {exc}") from None
    if params.import_modules:
        raise ExecutionError("wasm: ImportModules are not supported by this node")
    return params


class WasmExecutor:
    """Runs wasm modules; safe to call from several threads at once.

    ``scratch_dir`` is where the per-run folders of single-file mounts are made; on the same
    file system as the staged inputs, their files are hard-linked instead of copied.
    ``output_file_limit_bytes`` caps the stdout and stderr files, each (0: no cap).
    """

    def __init__(
        self,
        *,
        cache: ModuleCache | None = None,
        scratch_dir: Path | None = None,
        output_file_limit_bytes: int = DEFAULT_OUTPUT_FILE_LIMIT_BYTES,
    ) -> None:
        if output_file_limit_bytes < 0:
            raise ValueError("output_file_limit_bytes must be 0 (no cap) or more")
        self.cache = cache or ModuleCache()
        self.scratch_dir = scratch_dir
        self.output_file_limit_bytes = output_file_limit_bytes
        self._controls = RunControls()

    @property
    def type(self) -> str:
        return "wasm"

    def is_installed(self) -> bool:
        return True  # wasmtime is imported by this module, so it is there

    def extra_inputs(self, engine: EngineSpec) -> list[InputSource]:
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
        apply_limits(store, memory_bytes)
        with capped_outputs(wasi, request.results_dir, self.output_file_limit_bytes, control):
            store.set_wasi(wasi)
            monotonic_origin_ns = time.monotonic_ns()  # the zero of the module's clock
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            define_poll_oneoff(linker, control, monotonic_origin_ns)
            outcome = self._instantiate_and_call(
                store, linker, module, target, params.entrypoint, memory_bytes
            )
        # Stopped (even if the module then ended by itself), or past the deadline: that is
        # how the run ended.
        if control.wait(0.0) is not None:
            return control.outcome()
        return outcome

    def _instantiate_and_call(
        self,
        store: wasmtime.Store,
        linker: wasmtime.Linker,
        module: wasmtime.Module,
        target: str,
        entrypoint: str,
        memory_bytes: int,
    ) -> RunOutcome:
        try:
            instance = linker.instantiate(store, module)
        except wasmtime.Trap as exc:
            return trap_outcome(exc, store, None, memory_bytes)
        except wasmtime.WasmtimeError as exc:
            return instantiate_failure(exc, target, memory_bytes)
        entry = entry_function(instance, store, target, entrypoint)
        try:
            entry(store)
        except wasmtime.ExitTrap as exc:
            return RunOutcome(exit_code=exc.code)
        except wasmtime.Trap as exc:
            return trap_outcome(exc, store, instance, memory_bytes)
        except wasmtime.WasmtimeError as exc:
            return execution_failure(exc, memory_bytes)
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
    wasi.env = sorted(task_env(request, params.environment_variables).items())
    for folder in folders:
        wasi.preopen_dir(str(folder.host_dir), folder.guest_dir, folder.writable)
    return wasi
