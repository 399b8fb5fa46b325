"""The store writes history rows without building the model: they must read back as the
model would have written them, byte for byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.execution import ComputeState, DesiredState, Execution
from protocol.history import (
    TOPIC_EXECUTION,
    TOPIC_SUBMISSION,
    Event,
    ExecutionStateChange,
    JobHistory,
    JobHistoryType,
    JobStateChange,
    execution_row,
    format_time_ns,
    job_row,
    parse_time_ns,
)
from protocol.job import JobStateType
from protocol.states import ExecutionDesiredStateType, ExecutionStateType

texts = st.text(max_size=40)  # any Unicode: quotes, backslashes, control characters, emoji
details = st.dictionaries(texts, texts, max_size=4)
times = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)  # until 2100


@given(
    st.sampled_from(JobStateType),
    st.sampled_from(JobStateType),
    st.integers(min_value=0, max_value=2**40),
    times,
    texts,
    st.sampled_from(["JobState", TOPIC_SUBMISSION]),
    st.none() | details,
)
def test_a_job_row_is_the_entry_as_the_model_writes_it(
    previous: JobStateType,
    new: JobStateType,
    revision: int,
    time_ns: int,
    comment: str,
    topic: str,
    extra: dict[str, str] | None,
) -> None:
    args = (previous, new)
    kwargs = {"revision": revision, "time_ns": time_ns, "comment": comment, "topic": topic}
    row = job_row("j-1", *args, **kwargs, details=extra)  # type: ignore[arg-type]
    time = format_time_ns(time_ns)
    model = JobHistory(
        type=JobHistoryType.JOB_LEVEL,
        job_id="j-1",
        job_state=JobStateChange(previous=previous, new=new),
        new_revision=revision,
        comment=comment,
        time=time,
        event=Event(message=comment, topic=topic, timestamp=time, details=extra or {}),
    )
    assert row.json == model.model_dump_json(by_alias=True)
    assert row.entry() == model
    assert (row.job_id, row.execution_id, row.node_id) == ("j-1", "", "")
    assert (row.type, row.time_ns) == (JobHistoryType.JOB_LEVEL, time_ns)


@given(
    st.sampled_from(ExecutionStateType),
    st.sampled_from(ExecutionStateType),
    st.sampled_from(ExecutionDesiredStateType),
    details,
    st.integers(min_value=0, max_value=2**40),
    times,
    texts,
)
def test_an_execution_row_is_the_entry_as_the_model_writes_it(
    previous: ExecutionStateType,
    state: ExecutionStateType,
    desired: ExecutionDesiredStateType,
    state_details: dict[str, str],
    revision: int,
    time_ns: int,
    comment: str,
) -> None:
    execution = Execution(
        id="e-1",
        job_id="j-1",
        node_id="n-1",
        revision=revision,
        compute_state=ComputeState(state_type=state, details=state_details),
        desired_state=DesiredState(state_type=desired),
    )
    row = execution_row(execution, previous, time_ns=time_ns, comment=comment)
    time = format_time_ns(time_ns)
    model = JobHistory(
        type=JobHistoryType.EXECUTION_LEVEL,
        job_id="j-1",
        execution_id="e-1",
        node_id="n-1",
        execution_state=ExecutionStateChange(previous=previous, new=state),
        new_revision=revision,
        comment=comment,
        time=time,
        event=Event(
            message=comment or f"Execution {state.label}",
            topic=TOPIC_EXECUTION,
            timestamp=time,
            details={**state_details, "DesiredState": desired.label},
        ),
    )
    assert row.json == model.model_dump_json(by_alias=True)
    assert row.entry() == model
    assert (row.job_id, row.execution_id, row.node_id) == ("j-1", "e-1", "n-1")
    assert (row.type, row.time_ns) == (JobHistoryType.EXECUTION_LEVEL, time_ns)


@given(times)
def test_times_format_and_parse_back(time_ns: int) -> None:
    assert parse_time_ns(format_time_ns(time_ns)) == time_ns
