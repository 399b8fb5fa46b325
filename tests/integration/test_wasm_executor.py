"""The ``wasm`` executor with real wasmtime, on the hand-written modules in tests/fixtures/wasm
and examples/wasm."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from compute.executors.base import Mount, RunOutcome, RunRequest
from compute.executors.docker_container import container_env
from compute.executors.interrupts import (
    CANCELLED_EXIT_CODE,
    OUTPUT_LIMIT_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
)
from compute.executors.wasm import (
    MEMORY_EXIT_CODE,
    TRAP_EXIT_CODE,
    WasmExecutor,
    load_module_bytes,
)
from compute.executors.wasm_limits import table_elements_limit
from compute.executors.wasm_modules import CompiledModule, ModuleCache
from protocol.errors import ExecutionError
from protocol.job import EngineSpec, InputSource
from protocol.resources import Resources
from protocol.specs.engines import DockerParams
from tests.support.threads import PROMPT_S, RunInThread
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "wasm"
HELLO = REPO / "examples" / "wasm" / "hello.wat"
MIB = 1024 * 1024


def module_mount(source: Path, target: str = "/app/main.wat") -> Mount:
    return Mount(source=source, target=target)


def wasm_request(
    tmp_path: Path,
    params: dict[str, Any],
    inputs: Sequence[Mount] = (),
    outputs: Sequence[Mount] = (),
    execution_id: str = "e-1",
    timeout_s: float = 60.0,
    memory_bytes: int = 0,
    env: dict[str, str] | None = None,
) -> RunRequest:
    return RunRequest(
        job_id="j-1",
        execution_id=execution_id,
        engine=EngineSpec(type="wasm", params=params),
        results_dir=tmp_path / "results" / execution_id,
        timeout_s=timeout_s,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        env=env or {},
        resources=Resources(memory=memory_bytes),
    )


def run_fixture(
    tmp_path: Path,
    module: Path,
    *parameters: str,
    executor: WasmExecutor | None = None,
    **options: Any,
) -> tuple[RunOutcome, RunRequest]:
    params = {"EntryModule": "/app/main.wat", "Parameters": list(parameters)}
    inputs = [module_mount(module), *options.pop("inputs", ())]
    request = wasm_request(tmp_path, params, inputs=inputs, **options)
    return (executor or WasmExecutor()).run(request), request


def stdout(request: RunRequest) -> str:
    return (request.results_dir / "stdout").read_text()


def stderr(request: RunRequest) -> str:
    return (request.results_dir / "stderr").read_text()


def write_wat(tmp_path: Path, text: str, name: str = "module.wat") -> Path:
    path = tmp_path / "modules" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def start_until_it_says(
    tmp_path: Path,
    executor: WasmExecutor,
    execution_id: str,
    module: Path,
    line: str,
    *parameters: str,
) -> RunInThread:
    """Start ``module`` on a thread and wait until its stdout is ``line``."""
    request = wasm_request(
        tmp_path,
        {"EntryModule": "/app/main.wat", "Parameters": list(parameters)},
        inputs=[module_mount(module)],
        execution_id=execution_id,
    )
    run = RunInThread(executor, request)
    stdout_path = request.results_dir / "stdout"
    wait_until(
        lambda: stdout_path.exists() and stdout_path.read_text() == line,
        timeout_s=PROMPT_S,
        message=f"{execution_id} saying {line!r}",
    )
    return run


def start_loop(tmp_path: Path, executor: WasmExecutor, execution_id: str) -> RunInThread:
    """Start loop.wat and wait until it has said it is looping."""
    return start_until_it_says(tmp_path, executor, execution_id, FIXTURES / "loop.wat", "looping\n")


# -- output, arguments, environment ---------------------------------------------------------


def test_hello_greets_the_world(tmp_path: Path) -> None:
    outcome, request = run_fixture(tmp_path, HELLO)

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request) == "Hello, World!\n"
    assert stderr(request) == ""


def test_parameters_are_the_arguments_after_the_program_name(tmp_path: Path) -> None:
    outcome, request = run_fixture(tmp_path, HELLO, "Ada", "ignored")

    assert outcome.exit_code == 0
    assert stdout(request) == "Hello, Ada!\n"


def test_binary_modules_run_like_wat(tmp_path: Path) -> None:
    binary = tmp_path / "hello.wasm"
    binary.write_bytes(load_module_bytes(HELLO))

    outcome, request = run_fixture(tmp_path, binary, "bytes")

    assert binary.read_bytes().startswith(b"\0asm")
    assert outcome.exit_code == 0
    assert stdout(request) == "Hello, bytes!\n"


def test_environment_variables_as_a_map_overlay_the_task_env(tmp_path: Path) -> None:
    params = {"EntryModule": "/app/main.wat", "EnvironmentVariables": {"GREETING": "hola"}}
    request = wasm_request(
        tmp_path,
        params,
        inputs=[module_mount(FIXTURES / "env.wat")],
        env={"GREETING": "hello", "TASK": "1"},
    )

    assert WasmExecutor().run(request).exit_code == 0
    assert sorted(own_env(request)) == ["GREETING=hola", "TASK=1"]


def test_environment_variables_as_a_list(tmp_path: Path) -> None:
    params = {"EntryModule": "/app/main.wat", "EnvironmentVariables": ["A=1", "B=x=y"]}
    request = wasm_request(tmp_path, params, inputs=[module_mount(FIXTURES / "env.wat")])

    assert WasmExecutor().run(request).exit_code == 0
    assert own_env(request) == ["A=1", "B=x=y"]


def own_env(request: RunRequest) -> list[str]:
    """The task's variables as it printed them, without those Bacalhau sets."""
    return [line for line in stdout(request).splitlines() if not line.startswith("BACALHAU_")]


def test_the_task_sees_its_execution_as_a_docker_task_does_and_cannot_change_it(
    tmp_path: Path,
) -> None:
    params = {"EntryModule": "/app/main.wat", "EnvironmentVariables": {"BACALHAU_JOB_ID": "x"}}
    request = replace(
        wasm_request(tmp_path, params, inputs=[module_mount(FIXTURES / "env.wat")]),
        node_id="n-7",
        partition_index=0,
        partition_count=3,
    )

    assert WasmExecutor().run(request).exit_code == 0
    seen = dict(line.split("=", 1) for line in stdout(request).splitlines())
    docker = container_env(request, DockerParams.from_wire({"Image": "busybox"}))
    assert {k: v for k, v in seen.items() if k.startswith("BACALHAU_")} == {
        k: v for k, v in docker.items() if k.startswith("BACALHAU_")
    }
    assert seen["BACALHAU_JOB_ID"] == "j-1"
    assert seen["BACALHAU_PARTITION_COUNT"] == "3"
    assert seen["BACALHAU_NODE_ID"] == "n-7"


# -- the entry module ---------------------------------------------------------------------


def test_entry_module_embedded_as_an_input_source_is_staged_then_found(tmp_path: Path) -> None:
    executor = WasmExecutor()
    embedded = {"Source": {"Type": "inline", "Params": {"URL": "data:,..."}}, "Alias": "hi"}
    engine = EngineSpec(type="wasm", params={"EntryModule": embedded, "EntryPoint": "_start"})

    extra = executor.extra_inputs(engine)

    assert [source.target for source in extra] == ["/bacalao/entry/hi.wasm"]
    assert extra[0].source.type == "inline"
    staged = Mount(source=HELLO, target=extra[0].target)
    request = wasm_request(tmp_path, engine.params.to_wire(), inputs=[staged])
    assert executor.run(request).exit_code == 0
    assert stdout(request) == "Hello, World!\n"


def test_embedded_entry_module_keeps_its_own_target(tmp_path: Path) -> None:
    embedded = InputSource.from_wire(
        {
            "Source": {"Type": "localDirectory", "Params": {"SourcePath": "/mods"}},
            "Target": "/mods/hello.wat",
        }
    )
    engine = EngineSpec(type="wasm", params={"EntryModule": embedded.to_wire()})

    assert [s.target for s in WasmExecutor().extra_inputs(engine)] == ["/mods/hello.wat"]
    assert WasmExecutor().extra_inputs(EngineSpec(type="wasm", params={"EntryModule": "/a"})) == []


def test_entry_module_inside_a_mounted_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mods"
    (folder / "bin").mkdir(parents=True)
    shutil.copy(HELLO, folder / "bin" / "hello.wat")
    params = {"EntryModule": "/mods/bin/hello.wat", "Parameters": ["folder"]}
    request = wasm_request(tmp_path, params, inputs=[Mount(source=folder, target="/mods")])

    assert WasmExecutor().run(request).exit_code == 0
    assert stdout(request) == "Hello, folder!\n"


def test_a_folder_at_the_entry_module_stands_for_its_only_file(tmp_path: Path) -> None:
    """urlDownload keeps ``<Target>/<file name>``: the one file there is the module."""
    folder = tmp_path / "download"
    folder.mkdir()
    shutil.copy(HELLO, folder / "hello.wat")
    params = {"EntryModule": "/app/hello.wasm", "Parameters": ["url"]}
    mount = Mount(source=folder, target="/app/hello.wasm")
    request = wasm_request(tmp_path, params, inputs=[mount])

    assert WasmExecutor().run(request).exit_code == 0
    assert stdout(request) == "Hello, url!\n"

    shutil.copy(HELLO, folder / "other.wat")
    again = wasm_request(tmp_path, params, inputs=[mount], execution_id="e-2")
    with pytest.raises(ExecutionError, match=r"folder holding hello\.wat, other\.wat"):
        WasmExecutor().run(again)


def test_entry_module_that_no_input_provides(tmp_path: Path) -> None:
    request = wasm_request(
        tmp_path, {"EntryModule": "/nowhere/main.wasm"}, inputs=[module_mount(HELLO)]
    )

    with pytest.raises(ExecutionError, match=r"/nowhere/main\.wasm is not the Target.*/app/main"):
        WasmExecutor().run(request)


def test_entry_module_cannot_escape_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mods"
    folder.mkdir()
    request = wasm_request(
        tmp_path,
        {"EntryModule": "/mods/../../etc/passwd"},
        inputs=[Mount(source=folder, target="/mods")],
    )

    with pytest.raises(ExecutionError, match="is not the Target"):
        WasmExecutor().run(request)


def test_missing_entry_point_names_it_and_lists_the_exports(tmp_path: Path) -> None:
    with pytest.raises(
        ExecutionError,
        match=r"module /app/main.wat has no function 'main' to run \(exports: memory, _start\)",
    ):
        WasmExecutor().run(
            wasm_request(
                tmp_path,
                {"EntryModule": "/app/main.wat", "Entrypoint": "main"},
                inputs=[module_mount(HELLO)],
            )
        )


def test_another_entry_point_can_be_chosen(tmp_path: Path) -> None:
    module = write_wat(
        tmp_path,
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1) (func (export "go") (call $exit (i32.const 9))))',
    )
    request = wasm_request(
        tmp_path, {"EntryModule": "/app/main.wat", "Entrypoint": "go"}, [module_mount(module)]
    )

    assert WasmExecutor().run(request) == RunOutcome(exit_code=9)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\0asm\x02\0\0\0", "unknown binary version"),
        (b"(module (func (export", "expected"),
        (b"\xff\xfe\x00binary garbage", "neither the binary format nor WAT text"),
    ],
)
def test_invalid_module(tmp_path: Path, content: bytes, problem: str) -> None:
    module = tmp_path / "bad.wasm"
    module.write_bytes(content)

    with pytest.raises(
        ExecutionError, match=f"module /app/main.wat is not valid WebAssembly: .*{problem}"
    ):
        run_fixture(tmp_path, module)


def test_unknown_import_cannot_be_instantiated(tmp_path: Path) -> None:
    module = write_wat(tmp_path, '(module (import "env" "magic" (func)) (func (export "_start")))')

    with pytest.raises(ExecutionError, match=r"cannot be instantiated: .*env::magic"):
        run_fixture(tmp_path, module)


# -- files ----------------------------------------------------------------------------------


def test_reads_an_input_folder_and_writes_an_output_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("some data\n")
    outputs = tmp_path / "results" / "e-1" / "outputs"
    outputs.mkdir(parents=True)

    outcome, request = run_fixture(
        tmp_path,
        FIXTURES / "cat.wat",
        "/inputs/x.txt",
        "/outputs/y.txt",
        inputs=[Mount(source=data, target="/inputs")],
        outputs=[Mount(source=outputs, target="/outputs", read_only=False)],
    )

    assert outcome == RunOutcome(exit_code=0), stderr(request)
    assert (outputs / "y.txt").read_text() == "some data\n"


def test_inputs_are_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("keep me\n")

    outcome, request = run_fixture(
        tmp_path,
        FIXTURES / "cat.wat",
        "/inputs/x.txt",
        "/inputs/x.txt",
        inputs=[Mount(source=data, target="/inputs")],
    )

    assert outcome.exit_code == 6  # cat: cannot open the output
    assert stderr(request) == "cat: cannot open the output\n"
    assert (data / "x.txt").read_text() == "keep me\n"


def test_single_file_inputs_are_seen_at_their_target(tmp_path: Path) -> None:
    staged = tmp_path / "staging" / "inline-1"
    staged.mkdir(parents=True)
    (staged / "blob").write_text("inline data\n")
    outputs = tmp_path / "results" / "e-1" / "outputs"
    outputs.mkdir(parents=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    outcome, request = run_fixture(
        tmp_path,
        FIXTURES / "cat.wat",
        "/inputs/data.txt",
        "/outputs/copy.txt",
        executor=WasmExecutor(scratch_dir=scratch),
        inputs=[Mount(source=staged / "blob", target="/inputs/data.txt")],
        outputs=[Mount(source=outputs, target="/outputs", read_only=False)],
    )

    assert outcome == RunOutcome(exit_code=0), stderr(request)
    assert (outputs / "copy.txt").read_text() == "inline data\n"
    assert list(scratch.iterdir()) == []  # the per-run folder is gone


def test_single_file_inputs_are_read_only_too(tmp_path: Path) -> None:
    staged = tmp_path / "blob"
    staged.write_text("original\n")

    outcome, _ = run_fixture(
        tmp_path,
        FIXTURES / "cat.wat",
        "/app/main.wat",
        "/inputs/data.txt",
        inputs=[Mount(source=staged, target="/inputs/data.txt")],
    )

    assert outcome.exit_code == 6
    assert staged.read_text() == "original\n"


def test_a_file_cannot_be_mounted_inside_a_mounted_folder(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "blob").write_text("x")
    inputs = [
        Mount(source=tmp_path / "folder", target="/inputs"),
        Mount(source=tmp_path / "blob", target="/inputs/blob.txt"),
    ]

    with pytest.raises(ExecutionError, match="inside /inputs, which is a mounted folder too"):
        run_fixture(tmp_path, HELLO, inputs=inputs)


def test_a_missing_mount_source_is_an_execution_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="does not exist"):
        run_fixture(tmp_path, HELLO, inputs=[Mount(source=tmp_path / "gone", target="/in")])


# -- how runs end ---------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "code"), [((), 3), (("42",), 42), (("0",), 0)])
def test_proc_exit_sets_the_exit_code(tmp_path: Path, arguments: tuple[str], code: int) -> None:
    outcome, _ = run_fixture(tmp_path, FIXTURES / "exit.wat", *arguments)

    assert outcome == RunOutcome(exit_code=code)


def test_a_trap_ends_the_run_with_an_error(tmp_path: Path) -> None:
    module = write_wat(
        tmp_path,
        '(module (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))',
    )

    outcome, _ = run_fixture(tmp_path, module)

    assert outcome == RunOutcome(TRAP_EXIT_CODE, "trap: wasm trap: integer divide by zero")


def test_timeout_interrupts_an_endless_loop(tmp_path: Path) -> None:
    started = time.monotonic()

    outcome, request = run_fixture(tmp_path, FIXTURES / "loop.wat", timeout_s=0.2)

    assert time.monotonic() - started < PROMPT_S
    assert outcome == RunOutcome(TIMEOUT_EXIT_CODE, "execution timed out after 0.2s")
    assert stdout(request) == "looping\n"


def test_cancel_from_another_thread_interrupts_the_module(tmp_path: Path) -> None:
    executor = WasmExecutor()
    run = start_loop(tmp_path, executor, "e-1")

    executor.cancel("e-1")

    assert run.join() == RunOutcome(CANCELLED_EXIT_CODE, "cancelled")
    assert executor.running() == []


def test_cancel_stops_only_its_own_run(tmp_path: Path) -> None:
    executor = WasmExecutor()
    first = start_loop(tmp_path, executor, "e-1")
    second = start_loop(tmp_path, executor, "e-2")

    executor.cancel("e-1")

    assert first.join().error == "cancelled"
    assert executor.running() == ["e-2"]
    executor.cancel("e-2")
    assert second.join().error == "cancelled"


def test_a_cancel_that_arrives_before_the_run_cancels_it_at_once(tmp_path: Path) -> None:
    executor = WasmExecutor()
    executor.cancel("e-1")

    outcome, request = run_fixture(tmp_path, FIXTURES / "loop.wat", executor=executor)

    assert outcome == RunOutcome(CANCELLED_EXIT_CODE, "cancelled")
    assert stdout(request) == ""
    assert executor.cache.compile_count == 0


# -- sleeping in WASI (poll_oneoff) ---------------------------------------------------------


def test_timeout_interrupts_a_module_sleeping_in_poll_oneoff(tmp_path: Path) -> None:
    started = time.monotonic()

    outcome, request = run_fixture(tmp_path, FIXTURES / "poll.wat", "20000", timeout_s=0.5)

    # poll.wat ignores the failed sleep and returns as if all went well: still a timeout.
    assert outcome == RunOutcome(TIMEOUT_EXIT_CODE, "execution timed out after 0.5s")
    assert 0.5 <= time.monotonic() - started < 5.0
    assert stdout(request) == "sleeping\n"


def test_cancel_wakes_a_module_sleeping_in_poll_oneoff(tmp_path: Path) -> None:
    executor = WasmExecutor()
    run = start_until_it_says(
        tmp_path, executor, "e-1", FIXTURES / "poll.wat", "sleeping\n", "60000"
    )
    started = time.monotonic()

    executor.cancel("e-1")

    assert run.join() == RunOutcome(CANCELLED_EXIT_CODE, "cancelled")
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(
    ("mode", "how"),
    [("0", "relative"), ("1", "absolute monotonic"), ("2", "absolute realtime")],
)
def test_a_sleep_within_the_timeout_lasts_as_asked(tmp_path: Path, mode: str, how: str) -> None:
    started = time.monotonic()

    outcome, request = run_fixture(tmp_path, FIXTURES / "poll.wat", "200", mode, timeout_s=10)

    assert outcome == RunOutcome(exit_code=0), how  # the event was the one subscribed
    assert stdout(request) == "sleeping\nslept\n"
    assert 0.2 <= time.monotonic() - started < 5.0


def test_poll_oneoff_reports_a_ready_fd_at_once(tmp_path: Path) -> None:
    started = time.monotonic()

    outcome, request = run_fixture(tmp_path, FIXTURES / "poll.wat", "60000", "3", timeout_s=10)

    assert outcome == RunOutcome(exit_code=0)  # one event: the fd_write one, not the clock
    assert stdout(request) == "sleeping\nslept\n"
    assert time.monotonic() - started < 5.0


def test_poll_oneoff_without_subscriptions_is_einval(tmp_path: Path) -> None:
    outcome, _ = run_fixture(tmp_path, FIXTURES / "poll.wat", "0", "4")

    assert outcome == RunOutcome(exit_code=28)  # WASI errno inval


# -- output limits --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_past_the_cap_stops_the_module_with_its_start_kept(
    tmp_path: Path, stream: str
) -> None:
    executor = WasmExecutor(output_file_limit_bytes=100_000)
    fd = "1" if stream == "stdout" else "2"
    started = time.monotonic()

    outcome, request = run_fixture(
        tmp_path, FIXTURES / "flood.wat", fd, executor=executor, timeout_s=30
    )

    assert outcome == RunOutcome(
        OUTPUT_LIMIT_EXIT_CODE,
        f"{stream} exceeded the limit of 100000 bytes: the module was stopped, "
        f"and {stream} holds its first 100000 bytes",
    )
    assert time.monotonic() - started < 5.0
    assert (request.results_dir / stream).read_bytes() == b"x" * 100_000


def test_output_files_are_capped_at_64_mib_by_default() -> None:
    assert WasmExecutor().output_file_limit_bytes == 64 * MIB
    with pytest.raises(ValueError, match="output_file_limit_bytes"):
        WasmExecutor(output_file_limit_bytes=-1)


def test_output_under_the_cap_is_all_kept(tmp_path: Path) -> None:
    outcome, request = run_fixture(
        tmp_path, HELLO, "cap", executor=WasmExecutor(output_file_limit_bytes=len("Hello, cap!\n"))
    )

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request) == "Hello, cap!\n"


# -- memory limits --------------------------------------------------------------------------


def test_growing_past_the_memory_limit_fails_clearly(tmp_path: Path) -> None:
    outcome, _ = run_fixture(tmp_path, FIXTURES / "grow.wat", memory_bytes=MIB)

    assert outcome.exit_code == MEMORY_EXIT_CODE
    assert outcome.error.startswith(
        f"memory limit of {MIB} bytes exceeded: memory could not grow past {MIB} bytes"
    )
    assert "unreachable" in outcome.error


def test_starting_above_the_memory_limit_fails_clearly(tmp_path: Path) -> None:
    module = write_wat(tmp_path, '(module (memory 32) (func (export "_start")))')  # 2 MiB

    outcome, _ = run_fixture(tmp_path, module, memory_bytes=MIB)

    assert outcome.exit_code == MEMORY_EXIT_CODE
    assert outcome.error.startswith(f"memory limit of {MIB} bytes exceeded: memory minimum")


def test_a_module_cannot_spread_its_memory_over_several_memories(tmp_path: Path) -> None:
    module = write_wat(
        tmp_path,
        '(module (memory $a 1) (memory $b 1) (export "memory" (memory $a))'
        ' (func (export "_start")))',
    )

    with pytest.raises(ExecutionError, match=r"memory count too high at 2 .*at most 1 memory"):
        run_fixture(tmp_path, module, memory_bytes=32 * MIB)


@pytest.mark.parametrize("past", [1, 100_000_000])
def test_tables_cannot_grow_past_their_share_of_the_memory_limit(tmp_path: Path, past: int) -> None:
    allowed = table_elements_limit(MIB)
    module = write_wat(
        tmp_path,
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1) (table $t 1 funcref) (func (export "_start")'
        f"  (if (i32.eq (table.grow $t (ref.null func) (i32.const {allowed - 1})) (i32.const -1))"
        "   (then (call $exit (i32.const 12))))"
        f"  (if (i32.eq (table.grow $t (ref.null func) (i32.const {past})) (i32.const -1))"
        "   (then (call $exit (i32.const 13))))))",
    )

    outcome, _ = run_fixture(tmp_path, module, memory_bytes=MIB)

    assert 16384 <= allowed <= MIB // 8
    assert outcome == RunOutcome(exit_code=13)  # grew to the limit, not one element past


def test_a_table_starting_above_its_share_of_the_limit_fails_clearly(tmp_path: Path) -> None:
    module = write_wat(tmp_path, '(module (table 1000000 funcref) (func (export "_start")))')

    outcome, _ = run_fixture(tmp_path, module, memory_bytes=MIB)

    assert outcome.exit_code == MEMORY_EXIT_CODE
    assert outcome.error == (
        f"memory limit of {MIB} bytes exceeded: table minimum size of 1000000 elements "
        f"exceeds table limits (a table may hold {table_elements_limit(MIB)} elements under "
        "this limit)"
    )


def test_the_gc_heap_is_held_to_the_memory_limit(tmp_path: Path) -> None:
    module = write_wat(
        tmp_path,
        "(module (type $bytes (array (mut i8))) (table $keep 64 anyref)"
        ' (func (export "_start") (local $i i32)'
        "  (loop $more"
        "   (table.set $keep (local.get $i) (array.new_default $bytes (i32.const 1000000)))"
        "   (local.set $i (i32.add (local.get $i) (i32.const 1)))"
        "   (br_if $more (i32.lt_u (local.get $i) (i32.const 64))))))",
    )

    outcome, _ = run_fixture(tmp_path, module, memory_bytes=8 * MIB)

    assert outcome.exit_code == MEMORY_EXIT_CODE
    assert outcome.error.startswith(
        f"memory limit of {8 * MIB} bytes exceeded: GC heap out of memory"
    )


def test_a_trap_far_below_the_memory_limit_is_not_blamed_on_it(tmp_path: Path) -> None:
    module = write_wat(tmp_path, '(module (memory 1) (func (export "_start") unreachable))')

    outcome, _ = run_fixture(tmp_path, module, memory_bytes=64 * MIB)

    assert outcome.exit_code == TRAP_EXIT_CODE
    assert outcome.error.startswith("trap:")


# -- compiled modules, threads --------------------------------------------------------------


def test_a_module_is_compiled_once_for_many_runs(tmp_path: Path) -> None:
    executor = WasmExecutor()
    for index in range(3):
        outcome, _ = run_fixture(tmp_path, HELLO, executor=executor, execution_id=f"e-{index}")
        assert outcome.exit_code == 0

    assert (executor.cache.compile_count, executor.cache.hit_count) == (1, 2)
    run_fixture(tmp_path, FIXTURES / "exit.wat", executor=executor, execution_id="e-other")
    assert executor.cache.compile_count == 2


def test_the_cache_evicts_the_least_recently_used_module(tmp_path: Path) -> None:
    cache = ModuleCache(max_entries=2)
    hello, exit_module, loop = HELLO, FIXTURES / "exit.wat", FIXTURES / "loop.wat"

    cache.get(hello)
    cache.get(exit_module)
    cache.get(hello)
    cache.get(loop)  # evicts exit.wat, the least recently used
    cache.get(hello)
    assert (len(cache), cache.compile_count) == (2, 3)

    cache.get(exit_module)
    assert cache.compile_count == 4


class PopHookDict(dict[str, Any]):
    """A dict that calls ``hook`` once, right after its first ``pop``."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self._hook: Callable[[], None] | None = hook

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        return value


def test_a_caller_arriving_as_a_compilation_ends_finds_its_result() -> None:
    """The compilation stops being "in progress" (popped) only once its result is cached: a
    caller that arrives at that moment (here: from the pop itself, deterministically; the
    cache's lock made re-entrant for it) gets the result, without compiling again and
    without the cache counting its bytes twice."""
    cache = ModuleCache()
    cache._lock = threading.RLock()  # type: ignore[assignment]
    arrived: list[CompiledModule] = []
    cache._compiling = PopHookDict(lambda: arrived.append(cache.get(HELLO)))

    first = cache.get(HELLO)

    assert arrived == [first]
    assert (cache.compile_count, len(cache)) == (1, 1)
    assert cache.size_bytes == len(first.artifact)


def test_threads_asking_at_once_share_one_compilation_and_its_bytes() -> None:
    cache = ModuleCache()
    callers = 8
    barrier = threading.Barrier(callers)

    def get(_: int) -> CompiledModule:
        barrier.wait(timeout=PROMPT_S)
        return cache.get(FIXTURES / "poll.wat")

    with ThreadPoolExecutor(max_workers=callers) as pool:
        results = list(pool.map(get, range(callers)))

    assert all(result is results[0] for result in results)
    assert (cache.compile_count, cache.hit_count, len(cache)) == (1, callers - 1, 1)
    assert cache.size_bytes == len(results[0].artifact)


def test_threads_asking_at_once_for_an_invalid_module_all_get_its_error(tmp_path: Path) -> None:
    module = tmp_path / "bad.wat"
    module.write_text("(module (func (export")
    cache = ModuleCache()
    callers = 4
    barrier = threading.Barrier(callers)

    def get(_: int) -> str:
        barrier.wait(timeout=PROMPT_S)
        with pytest.raises(ExecutionError) as caught:
            cache.get(module)
        return str(caught.value)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        errors = set(pool.map(get, range(callers)))

    assert len(errors) == 1
    assert errors.pop().startswith("module bad.wat is not valid WebAssembly")
    assert (len(cache), cache.size_bytes) == (0, 0)


def test_the_cache_keeps_its_compiled_code_within_max_bytes() -> None:
    modules = [HELLO, FIXTURES / "exit.wat", FIXTURES / "loop.wat"]
    sizes = [len(ModuleCache().get(module).artifact) for module in modules]
    cache = ModuleCache(max_bytes=max(sizes[0] + sizes[1], sizes[1] + sizes[2]))

    cache.get(modules[0])
    cache.get(modules[1])
    assert (len(cache), cache.size_bytes) == (2, sizes[0] + sizes[1])

    cache.get(modules[2])  # over max_bytes: the least recently used goes
    assert (len(cache), cache.size_bytes) == (2, sizes[1] + sizes[2])
    assert cache.size_bytes <= cache.max_bytes
    cache.get(modules[2])
    assert cache.compile_count == 3
    cache.get(modules[0])
    assert cache.compile_count == 4


def test_concurrent_runs_on_threads_share_one_compilation(tmp_path: Path) -> None:
    executor = WasmExecutor()
    names = [f"thread{index}" for index in range(8)]

    def greet(name: str) -> tuple[RunOutcome, str]:
        outcome, request = run_fixture(tmp_path, HELLO, name, executor=executor, execution_id=name)
        return outcome, stdout(request)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(greet, names))

    assert results == [(RunOutcome(exit_code=0), f"Hello, {name}!\n") for name in names]
    assert executor.cache.compile_count == 1


def test_wasm_describes_itself() -> None:
    executor = WasmExecutor()

    assert (executor.type, executor.is_installed()) == ("wasm", True)
    assert isinstance(wasmtime.wat2wasm("(module)"), bytearray)


def test_import_modules_are_refused_clearly(tmp_path: Path) -> None:
    params = {
        "EntryModule": "/app/main.wat",
        "ImportModules": [{"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}}],
    }
    request = wasm_request(tmp_path, params, inputs=[module_mount(HELLO)])

    with pytest.raises(ExecutionError, match="ImportModules are not supported"):
        WasmExecutor().run(request)
