"""The publishers a compute node offers by default: ``local`` (under ``results_dir``), ``noop``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from compute.publishers.base import Publisher
from compute.publishers.local import LocalPublisher
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry


def default_publishers(results_dir: Path, disabled: Iterable[str] = ()) -> Registry[Publisher]:
    providers: list[Publisher] = [LocalPublisher(results_dir), NoopPublisher()]
    return Registry("publisher", providers, disabled)
