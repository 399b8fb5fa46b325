"""Bid only when the job's inputs are where this node's data locality wants them.

``anywhere`` (the default) bids whatever the inputs. ``local`` bids only when every input the
job reads (see :func:`compute.bidding.inputs.task_inputs`) is already on this node, as its
storage provider says by ``has_locally``: inline data always is, a URL never is, a ``local``
path is when an allow-listed entry covers it and it exists. The refusal names each input that
is not here.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Protocol

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from compute.bidding.inputs import describe_input, may_read_inputs, task_inputs
from protocol.errors import BacalaoError, ValidationError
from protocol.job import Job, SourceSpec

log = logging.getLogger(__name__)


class DataLocality(StrEnum):
    LOCAL = "local"
    ANYWHERE = "anywhere"

    @classmethod
    def parse(cls, text: str) -> DataLocality:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValidationError(
                "data_locality", f"{text!r}: use {' or '.join(member.value for member in cls)}"
            ) from None


class LocalityProbe(Protocol):
    """What a bid rule asks of a storage provider (``compute.storage.base.StorageProvider``)."""

    def has_locally(self, spec: SourceSpec) -> bool: ...

    def size_bytes(self, spec: SourceSpec) -> int | None: ...


class StorageLookup(Protocol):
    """The storage registry, as bid rules see it: a provider per source type."""

    def get(self, type_name: str) -> LocalityProbe: ...


def probe(storage: StorageLookup, spec: SourceSpec) -> LocalityProbe | None:
    """The provider of ``spec``'s type, or None when this node has none."""
    try:
        return storage.get(spec.type)
    except ValidationError:
        return None


def is_local(storage: StorageLookup, spec: SourceSpec) -> bool:
    """Whether the data of ``spec`` is on this node; a provider that fails says no."""
    provider = probe(storage, spec)
    if provider is None:
        return False
    try:
        return provider.has_locally(spec)
    except (BacalaoError, OSError) as exc:
        log.warning("event=has_locally_failed type=%s error=%r", spec.type, str(exc))
        return False


class DataLocalityRule:
    name = "data locality"

    def __init__(
        self, storage: StorageLookup, locality: DataLocality = DataLocality.ANYWHERE
    ) -> None:
        self.storage = storage
        self.locality = locality

    def may_block(self, job: Job) -> bool:
        return self.locality is not DataLocality.ANYWHERE and may_read_inputs(job.task)

    def check(self, request: BidRequest) -> BidDecision:
        if self.locality is DataLocality.ANYWHERE:
            return YES
        try:
            inputs = task_inputs(request.job.task)
        except ValidationError as exc:
            return refuse(f"cannot read the job's wasm engine params: {exc}")
        elsewhere = [describe_input(s) for s in inputs if not is_local(self.storage, s.source)]
        if not elsewhere:
            return YES
        noun, verb = ("input", "is") if len(elsewhere) == 1 else ("inputs", "are")
        return refuse(
            f"this node only runs jobs whose data is local, and {noun} {'; '.join(elsewhere)} "
            f"{verb} not on this node"
        )
