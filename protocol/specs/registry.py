"""The spec families, one place to find them: Type (any case, with aliases) -> params model.

Each family lives with its params models (:mod:`protocol.specs.engines`, ``sources``,
``publishers``); :mod:`protocol.specs.family` says how a family and its typed spec work.
"""

from __future__ import annotations

from protocol.specs.engines import ENGINES
from protocol.specs.family import SpecFamily
from protocol.specs.publishers import PUBLISHERS, RESULTS
from protocol.specs.sources import SOURCES

__all__ = ["ENGINES", "PUBLISHERS", "RESULTS", "SOURCES", "SpecFamily"]
