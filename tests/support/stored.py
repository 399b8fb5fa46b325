"""Jobs and executions as the store tests hand them to a job store."""

from __future__ import annotations

from protocol.execution import ComputeState, Execution
from protocol.ids import new_execution_id, new_job_id
from protocol.job import Job
from protocol.states import ExecutionStateType


def make_job(job_id: str = "", *, name: str = "", namespace: str = "default", **labels: str) -> Job:
    return Job.from_wire(
        {
            "ID": job_id or new_job_id(),
            "Name": name,
            "Namespace": namespace,
            "Labels": labels,
            "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}],
        }
    )


def make_execution(
    job_id: str, node_id: str = "n-1", state: ExecutionStateType = ExecutionStateType.NEW
) -> Execution:
    return Execution(
        id=new_execution_id(),
        job_id=job_id,
        node_id=node_id,
        compute_state=ComputeState(state_type=state),
    )
