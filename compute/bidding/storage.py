"""Bid only when every storage source the job reads from is installed here.

That is each InputSource of the task and, for wasm, an EntryModule or ImportModules given as
embedded InputSources (the v1.1-v1.6 shape).
"""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, installed_list, refuse
from compute.bidding.inputs import task_inputs
from protocol.errors import ValidationError
from protocol.job import Task


def source_types(task: Task) -> list[str]:
    """The source types ``task`` reads from, as registered, in order, without repeats."""
    return list(dict.fromkeys(source.source.type for source in task_inputs(task)))


class StorageRule:
    name = "storage"

    def check(self, request: BidRequest) -> BidDecision:
        try:
            wanted = source_types(request.job.task)
        except ValidationError as exc:
            return refuse(f"cannot read the job's wasm engine params: {exc}")
        installed = {name.lower() for name in request.storage_sources}
        missing = [name for name in wanted if name.lower() not in installed]
        if not missing:
            return YES
        noun = "storage source" if len(missing) == 1 else "storage sources"
        verb = "is" if len(missing) == 1 else "are"
        return refuse(
            f"{noun} {', '.join(missing)} {verb} not installed "
            f"{installed_list(request.storage_sources)}"
        )
