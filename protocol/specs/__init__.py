"""Typed specs for every engine, input source and publisher type, keyed by the spec's Type.

A job's specs are parsed into these when the job is (at the API, in the CLI, from a message
or the store), so executors, storage providers and publishers read typed params instead of
passing ``dict[str, Any]`` around; :func:`validate_job` checks what needs the whole job.
"""

from __future__ import annotations

from protocol.specs.engines import EngineSpec
from protocol.specs.family import OtherParams, SpecFamily, TypedSpec
from protocol.specs.publishers import PublisherSpec
from protocol.specs.registry import ENGINES, PUBLISHERS, RESULTS, SOURCES
from protocol.specs.sources import InputSource, SourceSpec
from protocol.specs.validate import validate_job

__all__ = [
    "ENGINES",
    "PUBLISHERS",
    "RESULTS",
    "SOURCES",
    "EngineSpec",
    "InputSource",
    "OtherParams",
    "PublisherSpec",
    "SourceSpec",
    "SpecFamily",
    "TypedSpec",
    "validate_job",
]
