"""Bid only when the inputs this node would have to fetch fit in the disk it gives one job.

Inputs already on this node (inline data, mounted ``local`` paths) take no room; the others
count with the size their storage provider reports (``size_bytes``), when it can tell. Inputs
of unknown size pass: the download itself enforces its limits. A node without a disk limit
(``max_job_resources.disk`` of 0) takes any size. The refusal names each counted input and
its size.
"""

from __future__ import annotations

import logging

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from compute.bidding.inputs import describe_input, may_read_inputs, task_inputs
from compute.bidding.locality import StorageLookup, is_local, probe
from protocol.errors import BacalaoError, ValidationError
from protocol.job import InputSource, Job
from protocol.units import readable_bytes

log = logging.getLogger(__name__)


class InputSizeRule:
    name = "input size"

    def __init__(self, storage: StorageLookup) -> None:
        self.storage = storage

    def size_to_fetch(self, source: InputSource) -> int | None:
        """Bytes this node would download for ``source``: None when local or unknown."""
        provider = probe(self.storage, source.source)
        if provider is None or is_local(self.storage, source.source):
            return None
        try:
            return provider.size_bytes(source.source)
        except (BacalaoError, OSError) as exc:
            log.warning("event=size_bytes_failed type=%s error=%r", source.source.type, str(exc))
            return None

    def may_block(self, job: Job) -> bool:
        return may_read_inputs(job.task)  # a size may be asked of the source

    def check(self, request: BidRequest) -> BidDecision:
        limit_bytes = request.max_job_resources.disk
        if not limit_bytes:
            return YES
        try:
            inputs = task_inputs(request.job.task)
        except ValidationError as exc:
            return refuse(f"cannot read the job's wasm engine params: {exc}")
        sized = [(source, self.size_to_fetch(source)) for source in inputs]
        counted = [(source, size) for source, size in sized if size]
        total_bytes = sum(size for _, size in counted)
        if total_bytes <= limit_bytes:
            return YES
        listing = "; ".join(f"{describe_input(s)} is {readable_bytes(n)}" for s, n in counted)
        return refuse(
            f"inputs to download total {readable_bytes(total_bytes)}, more than the "
            f"{readable_bytes(limit_bytes)} of disk this node gives a job: {listing}"
        )
