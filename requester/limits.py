"""What one job may ask of the cluster: the requester's caps, checked at submission.

A job over a cap is refused with a 400 naming the field, before anything is stored: an
ExecutionTimeout of 4,000,000,000 s would pin a compute slot for good, a Count of a million
would make a million executions, a hundred megabytes of inline data would travel in every
ask. Each cap is a ``serve`` flag; 0 turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import ValidationError
from protocol.job import Job
from protocol.specs.sources import InlineParams

DAY_S = 24 * 3600


@dataclass(frozen=True)
class SubmissionLimits:
    max_execution_timeout_s: int = DAY_S  # --max-execution-timeout
    max_count: int = 100  # --max-count
    # The data: URLs of inline inputs, as sent (base64: 4/3 of the data); the compute nodes
    # decode at most 10 MiB of each.
    max_inline_bytes: int = 16 * 1024 * 1024  # --max-inline-bytes
    max_inputs: int = 64  # --max-inputs, per task
    max_result_paths: int = 64  # --max-result-paths, per task


def check_limits(job: Job, limits: SubmissionLimits) -> None:
    """ValidationError naming the first field of ``job`` over one of ``limits``."""
    if limits.max_count and job.type in ("batch", "service") and job.count > limits.max_count:
        raise ValidationError(
            "Job.Count", f"{job.count} is over this requester's limit of {limits.max_count}"
        )
    inline_bytes = 0
    for index, task in enumerate(job.tasks):
        where = f"Job.Tasks[{index}]"
        timeout_s = task.timeouts.execution_timeout
        if limits.max_execution_timeout_s and timeout_s > limits.max_execution_timeout_s:
            raise ValidationError(
                f"{where}.Timeouts.ExecutionTimeout",
                f"{timeout_s} s is over this requester's limit of "
                f"{limits.max_execution_timeout_s} s (--max-execution-timeout)",
            )
        _at_most(len(task.input_sources), limits.max_inputs, f"{where}.InputSources", "inputs")
        _at_most(len(task.result_paths), limits.max_result_paths, f"{where}.ResultPaths", "paths")
        for number, source in enumerate(task.input_sources):
            params = source.source.params
            if not isinstance(params, InlineParams):
                continue
            inline_bytes += len(params.url)
            if limits.max_inline_bytes and inline_bytes > limits.max_inline_bytes:
                raise ValidationError(
                    f"{where}.InputSources[{number}]",
                    f"brings the job's inline data to {inline_bytes} bytes, over this "
                    f"requester's limit of {limits.max_inline_bytes} (--max-inline-bytes); put "
                    "large inputs in S3, IPFS or at a URL",
                )


def _at_most(count: int, limit: int, field: str, what: str) -> None:
    if limit and count > limit:
        raise ValidationError(field, f"{count} {what} are over this requester's limit of {limit}")
