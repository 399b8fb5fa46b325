"""What a wasm run may allocate, and how a run that hits the limit ends.

wasmtime limits each linear memory on its own, and tables not at all unless told, so the
store of every run is limited as a whole:

* one instance, one linear memory and at most :data:`MAX_TABLES` tables, whatever the
  memory limit (a module declaring more cannot be instantiated here: ExecutionError);
* with a memory limit of N bytes: the memory may grow to N bytes; each table to
  :func:`table_elements_limit` elements, so all tables together hold at most N/8 bytes of
  references (with a floor, so that small limits still run ordinary modules); the GC heap
  of a module using wasm GC is limited to N bytes by wasmtime too.

``memory.grow`` and ``table.grow`` past a limit return -1, as the wasm spec says; what the
module does then is up to it. Outcomes: a module whose memory or tables start above the limit,
that traps with its memory at the limit, or whose GC heap runs out ends with
:data:`MEMORY_EXIT_CODE` (137, like an out-of-memory-killed container) and an error saying
which limit; any other trap ends with :data:`TRAP_EXIT_CODE`.
"""

from __future__ import annotations

import wasmtime

from compute.executors.base import RunOutcome
from compute.executors.wasm_modules import describe_error
from protocol.errors import ExecutionError

__all__ = [
    "MAX_MEMORIES",
    "MAX_TABLES",
    "MEMORY_EXIT_CODE",
    "TRAP_EXIT_CODE",
    "apply_limits",
    "execution_failure",
    "instantiate_failure",
    "table_elements_limit",
    "trap_outcome",
]

TRAP_EXIT_CODE = 134  # 128 + SIGABRT: what a native program that aborts ends with
MEMORY_EXIT_CODE = 137  # 128 + SIGKILL: what an out-of-memory-killed container ends with
WASM_PAGE_BYTES = 65536
MAX_INSTANCES = 1
MAX_MEMORIES = 1
MAX_TABLES = 4
TABLE_ELEMENT_BYTES = 8  # what wasmtime counts for an element (a reference)
TABLE_SHARE = 8  # all tables together get 1/8 of the memory limit
MIN_TABLE_ELEMENTS = 16384
_MEMORY_LIMIT_MESSAGES = ("exceeds memory limits", "exceeds table limits")
_GC_HEAP_EXHAUSTED = "GC heap out of memory"


def table_elements_limit(memory_limit_bytes: int) -> int:
    """How many elements each table may hold under a memory limit."""
    share = memory_limit_bytes // (TABLE_SHARE * TABLE_ELEMENT_BYTES * MAX_TABLES)
    return max(MIN_TABLE_ELEMENTS, share)


def apply_limits(store: wasmtime.Store, memory_limit_bytes: int) -> None:
    """Limit what the run in ``store`` may allocate (``memory_limit_bytes`` 0: no byte limit)."""
    counts = {"instances": MAX_INSTANCES, "memories": MAX_MEMORIES, "tables": MAX_TABLES}
    if memory_limit_bytes > 0:
        store.set_limits(
            memory_size=memory_limit_bytes,
            table_elements=table_elements_limit(memory_limit_bytes),
            **counts,
        )
    else:
        store.set_limits(**counts)


def memory_size_bytes(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int:
    """The linear memory the instance exports, in bytes (0 when it exports none)."""
    if instance is None:
        return 0
    exports = instance.exports(store)
    return sum(
        item.data_len(store) for item in exports.by_index if isinstance(item, wasmtime.Memory)
    )


def _exceeded(memory_limit_bytes: int, what: str) -> RunOutcome:
    return RunOutcome(
        exit_code=MEMORY_EXIT_CODE,
        error=f"memory limit of {memory_limit_bytes} bytes exceeded: {what}",
    )


def trap_outcome(
    trap: wasmtime.Trap,
    store: wasmtime.Store,
    instance: wasmtime.Instance | None,
    memory_limit_bytes: int,
) -> RunOutcome:
    """The memory limit when the module trapped with its memory so near the limit that it
    could not grow any more; a plain trap otherwise."""
    description = describe_error(trap)
    used_bytes = memory_size_bytes(store, instance)
    if memory_limit_bytes > 0 and used_bytes + WASM_PAGE_BYTES > memory_limit_bytes:
        return _exceeded(
            memory_limit_bytes, f"memory could not grow past {used_bytes} bytes, then {description}"
        )
    return RunOutcome(exit_code=TRAP_EXIT_CODE, error=f"trap: {description}")


def execution_failure(error: wasmtime.WasmtimeError, memory_limit_bytes: int) -> RunOutcome:
    """A run that failed in wasmtime rather than trapping (a GC allocation that did not fit)."""
    description = describe_error(error)
    if memory_limit_bytes > 0 and _GC_HEAP_EXHAUSTED in description:
        return _exceeded(memory_limit_bytes, description)
    return RunOutcome(exit_code=TRAP_EXIT_CODE, error=f"module failed: {description}")


def instantiate_failure(
    error: wasmtime.WasmtimeError, module_name: str, memory_limit_bytes: int
) -> RunOutcome:
    """The outcome of a module whose memory or tables start above the memory limit; any other
    failure to instantiate (more memories or tables than allowed, an unknown import) means it
    cannot run here at all."""
    description = describe_error(error)
    if memory_limit_bytes > 0 and any(text in description for text in _MEMORY_LIMIT_MESSAGES):
        if "table" in description:
            allowed = table_elements_limit(memory_limit_bytes)
            description += f" (a table may hold {allowed} elements under this limit)"
        return _exceeded(memory_limit_bytes, description)
    if "resource limit exceeded" in description:
        description += (
            f" (modules run here with at most {MAX_MEMORIES} memory and {MAX_TABLES} tables)"
        )
    raise ExecutionError(f"module {module_name} cannot be instantiated: {description}")
