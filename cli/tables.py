"""Rich tables for jobs, executions, history and nodes (the ``--output table`` view)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import OverflowMethod, RenderableType
from rich.table import Table
from rich.text import Text

from cli.output import format_mapping, format_time, human_bytes, short_id
from protocol.execution import Execution
from protocol.history import EXECUTION_CREATED, JobHistory
from protocol.job import InputSource, Job, JobStateType, SpecConfig
from protocol.node import NodeReputation, NodeState
from protocol.resources import Resources
from protocol.selectors import describe
from protocol.specs.family import TypedSpec
from protocol.specs.sources import LocalParams
from protocol.states import ExecutionStateType
from protocol.units import format_cpu

_JOB_STYLES = {
    JobStateType.COMPLETED: "green",
    JobStateType.FAILED: "red",
    JobStateType.STOPPED: "yellow",
    JobStateType.RUNNING: "cyan",
}
_EXECUTION_STYLES = {
    ExecutionStateType.COMPLETED: "green",
    ExecutionStateType.FAILED: "red",
    ExecutionStateType.CANCELLED: "yellow",
    ExecutionStateType.RUNNING: "cyan",
}
_INLINE_PREVIEW_CHARS = 40
_ID_COLUMNS = frozenset({"ID", "Node", "Execution"})
_ID_WIDTH = 10  # what short_id() keeps: "j-" and 8 hex digits
# Free text of any length. Without --wide these columns give way, so the short ones keep
# their width: were every column unwrappable, Rich would shrink them all evenly, and a name of
# a megabyte would squeeze the job's ID and state to nothing. Their cells stay on one line,
# cut with an ellipsis (see _free).
_FREE_TEXT = frozenset({"Name", "Labels", "Message"})


def job_state_text(state: JobStateType) -> Text:
    return Text(state.value, style=_JOB_STYLES.get(state, ""))


def execution_state_text(state: ExecutionStateType) -> Text:
    return Text(state.label, style=_EXECUTION_STYLES.get(state, ""))


def _table(*columns: str, wide: bool, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        # IDs are what people copy from a table: never cut them short.
        min_width = _ID_WIDTH if column in _ID_COLUMNS and not wide else None
        overflow: OverflowMethod = "fold" if wide else "ellipsis"
        no_wrap = not wide and column not in _FREE_TEXT
        table.add_column(column, overflow=overflow, no_wrap=no_wrap, min_width=min_width)
    return table


def _free(text: str, wide: bool) -> Text | str:
    """A cell of a _FREE_TEXT column: one line, cut with an ellipsis, unless ``wide``."""
    return text if wide else Text(text, no_wrap=True, overflow="ellipsis")


def jobs_table(jobs: Iterable[Job], wide: bool = False) -> Table:
    table = _table("ID", "Name", "Type", "State", "Count", "Created", "Labels", wide=wide)
    for job in jobs:
        name = "" if job.name == job.id else job.name
        table.add_row(
            short_id(job.id, wide),
            _free(name, wide),
            job.type,
            job_state_text(job.state.state_type),
            str(job.count),
            format_time(job.create_time),
            _free(format_mapping(job.labels), wide),
        )
    return table


def execution_message(execution: Execution) -> str:
    message = execution.compute_state.message
    if not message and execution.run_output is not None:
        message = execution.run_output.error_msg
    return message


def _exit_code(execution: Execution) -> str:
    if execution.run_output is None or execution.state != ExecutionStateType.COMPLETED:
        return ""
    return str(execution.run_output.exit_code)


def executions_table(
    executions: Iterable[Execution], wide: bool = False, title: str | None = None
) -> Table:
    table = _table(
        "ID", "Node", "Desired", "State", "Exit", "Message", "Created", wide=wide, title=title
    )
    for execution in executions:
        table.add_row(
            short_id(execution.id, wide),
            short_id(execution.node_id, wide),
            execution.desired_state.state_type.label,
            execution_state_text(execution.state),
            _exit_code(execution),
            _free(execution_message(execution), wide),
            format_time(execution.create_time),
        )
    return table


def _history_change(entry: JobHistory) -> str:
    if entry.job_state is not None:
        return f"{entry.job_state.previous.value} -> {entry.job_state.new.value}"
    if entry.execution_state is not None:
        change = entry.execution_state
        return f"{change.previous.label} -> {change.new.label}"
    return ""


def history_table(entries: Iterable[JobHistory], wide: bool = False) -> Table:
    table = _table("Time", "Level", "Execution", "Change", "Message", wide=wide)
    for entry in entries:
        try:
            when = format_time(entry.time_ns)
        except ValueError:
            when = entry.time
        table.add_row(
            when,
            entry.type.value.removesuffix("Level"),
            short_id(entry.execution_id, wide) if entry.execution_id else "",
            _history_change(entry),
            _free(entry.event.message or entry.comment, wide),
        )
    return table


def _capacity(resources: Resources) -> str:
    return f"{format_cpu(resources.cpu)} CPU, {human_bytes(resources.memory)} memory"


def resources_text(resources: Resources) -> str:
    """``cpu=3.2 memory=12.5Gi disk=18.8Gi gpu=0``: every size in the same rounded units."""
    return (
        f"cpu={format_cpu(resources.cpu)} memory={human_bytes(resources.memory)} "
        f"disk={human_bytes(resources.disk)} gpu={resources.gpu}"
    )


def nodes_table(nodes: Iterable[NodeState], wide: bool = False) -> Table:
    table = _table(
        "ID",
        "Type",
        "Connection",
        "Engines",
        "Publishers",
        "Available",
        "Reputation",
        "Labels",
        wide=wide,
    )
    for node in nodes:
        info = node.info
        compute = info.compute_node_info
        table.add_row(
            short_id(info.node_id, wide),
            info.node_type.value,
            Text(node.connection.value, style="green" if node.connection == "CONNECTED" else "red"),
            ", ".join(compute.execution_engines) if compute else "",
            ", ".join(compute.publishers) if compute else "",
            _capacity(compute.available_capacity) if compute else "",
            reputation_text(node.reputation) if compute else "",
            _free(format_mapping(info.labels), wide),
        )
    return table


def node_choices(
    executions: Iterable[Execution], history: Iterable[JobHistory]
) -> list[tuple[str, RenderableType | str]]:
    """Why the requester asked each execution's node: its rank and scores, as recorded when
    the execution was created (``Execution created: ranked 1 of 3, score ...``)."""
    nodes = {execution.id: execution.node_id for execution in executions}
    prefix = f"{EXECUTION_CREATED}: "
    rows: list[tuple[str, RenderableType | str]] = []
    for entry in history:
        if entry.execution_id in nodes and entry.comment.startswith(prefix):
            label = f"{short_id(entry.execution_id)} on {short_id(nodes[entry.execution_id])}"
            rows.append((label, entry.comment.removeprefix(prefix)))
    return rows


def fields_grid(
    rows: Sequence[tuple[str, RenderableType | str]], title: str | None = None
) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if title:
        grid.title = title
        grid.title_justify = "left"
        grid.title_style = "bold underline"
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def _shown_params(spec: SpecConfig | TypedSpec) -> dict[str, Any]:
    """The params a spec was given: a typed spec's without the fields left at defaults."""
    if isinstance(spec, SpecConfig):
        return spec.params
    return spec.params.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def spec_summary(spec: SpecConfig | TypedSpec) -> str:
    """One line for a source or result spec: ``local /data``, ``s3 s3://bucket/key``."""
    params = _shown_params(spec)
    if "URL" in params and str(params["URL"]).startswith("data:"):
        url = str(params["URL"])
        return f"{spec.type} {url[:_INLINE_PREVIEW_CHARS]}... ({len(url)} chars)"
    for key in ("SourcePath", "URL", "CID"):
        if key in params:
            return f"{spec.type} {params[key]}"
    if "Bucket" in params:
        return f"{spec.type} s3://{params['Bucket']}/{params.get('Key', '')}"
    return spec.type


def _input_line(source: InputSource) -> str:
    line = f"{source.target} <- {spec_summary(source.source)}"
    params = source.source.params
    return f"{line} (read-write)" if isinstance(params, LocalParams) and params.read_write else line


def job_overview(job: Job) -> list[RenderableType]:
    """``job describe``'s view of the job itself: identity, state and the task spec."""
    task = job.task
    resources = task.resources
    state = job_state_text(job.state.state_type)
    if job.state.message:
        state.append(f" ({job.state.message})", style="")
    engine_params = ", ".join(
        f"{key}={value}"
        for key, value in _shown_params(task.engine).items()
        if value not in ("", [], {})
    )
    summary: list[tuple[str, RenderableType | str]] = [
        ("ID", job.id),
        ("Name", job.name if job.name != job.id else "-"),
        ("Namespace", job.namespace),
        ("Type", job.type),
        ("State", state),
        ("Count", str(job.count)),
        ("Created", format_time(job.create_time)),
        ("Modified", format_time(job.modify_time)),
        ("Labels", format_mapping(job.labels) or "-"),
        ("Constraints", ", ".join(describe(item) for item in job.constraints) or "-"),
    ]
    task_rows: list[tuple[str, RenderableType | str]] = [
        ("Engine", f"{task.engine.type} {engine_params}".strip()),
        ("Publisher", spec_summary(task.publisher)),
        ("Inputs", "\n".join(_input_line(source) for source in task.input_sources) or "-"),
        ("Results", "\n".join(f"{r.name}: {r.path}" for r in task.result_paths) or "-"),
        ("Resources", f"cpu={resources.cpu or '-'} memory={resources.memory or '-'}"),
        (
            "Timeout",
            f"{task.timeouts.execution_timeout}s" if task.timeouts.execution_timeout else "-",
        ),
    ]
    return [fields_grid(summary, title="Job"), Text(""), fields_grid(task_rows, title="Task")]


def _largest_job(limit: Resources) -> str:
    return resources_text(limit) if limit != Resources() else "- (up to its capacity)"


def node_overview(node: NodeState) -> list[RenderableType]:
    info = node.info
    version = info.bacalhau_version
    rows: list[tuple[str, RenderableType | str]] = [
        ("ID", info.node_id),
        ("Type", info.node_type.value),
        ("Connection", node.connection.value),
        ("Membership", node.membership),
        ("Last seen", format_time(node.last_seen)),
        ("Version", version.git_version),
        ("Labels", format_mapping(info.labels) or "-"),
        ("Transport", info.transport or "-"),
        ("Peer address", info.peer_address or "-"),
    ]
    compute = info.compute_node_info
    if compute is not None:
        rows += [
            ("Engines", ", ".join(compute.execution_engines) or "-"),
            ("Publishers", ", ".join(compute.publishers) or "-"),
            ("Storage", ", ".join(compute.storage_sources) or "-"),
            ("Max capacity", resources_text(compute.max_capacity)),
            ("Available", resources_text(compute.available_capacity)),
            ("Largest job", _largest_job(compute.max_job_requirements)),
            ("Running", str(compute.running_executions)),
            ("Queued", str(compute.enqueued_executions)),
            ("Reputation", reputation_text(node.reputation, long=True)),
        ]
    return [fields_grid(rows, title="Node")]


def reputation_text(reputation: NodeReputation | None, long: bool = False) -> str:
    """``0.83`` (``0.83: 4.9 completed, 0.2 failed, decayed`` when ``long``); ``-`` with no
    history."""
    if reputation is None:
        return "-"
    if not long:
        return f"{reputation.score:.2f}"
    return (
        f"{reputation.score:.2f}: {reputation.completed:.3g} completed, "
        f"{reputation.failed:.3g} failed (decayed, half-life 1 h)"
    )
