"""Where a run's output goes: an executor that keeps it in memory (noop) costs no file unless
a publisher or the verifier reads the results folder, and RunResult carries the same text
either way, cut at the node's output limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from compute.executors.noop import NoopExecutor
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry
from compute.runner import Plugins, Runner, output_text
from compute.storage.inline import InlineStorage
from protocol.execution import Execution
from protocol.job import Job, PublisherSpec, SpecConfig
from protocol.messages import RunResult
from protocol.resources import Resources
from protocol.verification import VERIFY_KEY


class FolderReader:
    """A publisher that reads the results folder, as local, S3 and IPFS do: it records the
    files it found there."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    @property
    def type(self) -> str:
        return "reader"

    @property
    def reads_results(self) -> bool:
        return True

    def is_installed(self) -> bool:
        return True

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        self.seen = {path.name: path.read_text() for path in sorted(results_dir.iterdir())}
        return None


def runner(tmp_path: Path, reader: FolderReader, output_limit_bytes: int = 1024) -> Runner:
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher(), reader]),
    )
    return Runner("n-1", plugins, tmp_path / "work", output_limit_bytes=output_limit_bytes)


def execution(
    publisher: str, stdout: str = "out\n", labels: dict[str, str] | None = None
) -> Execution:
    task = {
        "Engine": {"Type": "noop", "Params": {"ExitCode": 3, "Stdout": stdout, "Stderr": "e"}},
        "Publisher": {"Type": publisher},
    }
    built = Job.model_validate({"ID": "j-1", "Count": 2, "Tasks": [task], "Labels": labels or {}})
    return Execution(id="e-1", job_id=built.id, node_id="n-1", job=built)


def run(runner: Runner, ran: Execution) -> RunResult:
    result = runner.run(ran, lambda: None, Resources())
    assert isinstance(result, RunResult), result
    return result


def test_noop_output_with_a_noop_publisher_touches_no_file(tmp_path: Path) -> None:
    reader = FolderReader()
    result = run(runner(tmp_path, reader), execution("noop"))

    assert result.run_output is not None
    assert (result.run_output.stdout, result.run_output.stderr) == ("out\n", "e")
    assert result.run_output.exit_code == 3
    assert not (tmp_path / "work").exists()


def test_a_publisher_that_reads_the_folder_finds_the_output_files(tmp_path: Path) -> None:
    reader = FolderReader()
    result = run(runner(tmp_path, reader), execution("reader"))

    assert reader.seen == {"exitCode": "3", "stderr": "e", "stdout": "out\n"}
    assert result.run_output is not None
    assert result.run_output.stdout == "out\n"


def test_verification_hashes_the_same_files_whatever_the_publisher(tmp_path: Path) -> None:
    verified = {VERIFY_KEY: "deterministic"}
    by_noop = run(runner(tmp_path / "a", FolderReader()), execution("noop", labels=verified))
    by_reader = run(runner(tmp_path / "b", FolderReader()), execution("reader", labels=verified))

    assert by_noop.result_hash
    assert by_noop.result_hash == by_reader.result_hash


def test_output_kept_in_memory_is_cut_at_the_limit_like_a_file(tmp_path: Path) -> None:
    text = "é" * 10  # 20 bytes of UTF-8
    (tmp_path / "stdout").write_text(text, encoding="utf-8")

    from_memory = output_text(text, tmp_path / "absent", 5)
    from_file = output_text(None, tmp_path / "stdout", 5)

    assert from_memory == from_file
    assert from_memory[1] is True
    assert output_text(None, tmp_path / "absent", 5) == ("", False)


@pytest.mark.parametrize("publisher", ["noop", "reader"])
def test_run_result_output_is_cut_at_the_nodes_limit(tmp_path: Path, publisher: str) -> None:
    result = run(runner(tmp_path, FolderReader(), output_limit_bytes=4), execution(publisher))

    assert result.run_output is not None
    assert (result.run_output.stdout, result.run_output.stdout_truncated) == ("out\n", False)
    long = run(
        runner(tmp_path / "long", FolderReader(), output_limit_bytes=4),
        execution(publisher, stdout="0123456789"),
    )
    assert long.run_output is not None
    assert (long.run_output.stdout, long.run_output.stdout_truncated) == ("0123", True)
