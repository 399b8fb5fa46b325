"""Typed params for every engine, input source and publisher type, keyed by the spec's Type.

The requester validates a job against these at the edge, so a compute node only ever sees
specs that parse; executors, storage providers and publishers parse them again into the same
typed models instead of passing ``dict[str, Any]`` around.
"""

from __future__ import annotations

from protocol.specs.registry import ENGINES, PUBLISHERS, RESULTS, SOURCES, SpecFamily
from protocol.specs.validate import validate_job

__all__ = ["ENGINES", "PUBLISHERS", "RESULTS", "SOURCES", "SpecFamily", "validate_job"]
