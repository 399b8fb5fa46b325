"""A whole cluster in one process: one requester and N compute nodes on one bus URL."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from cli.stack import NodeOptions, NodeProcess

log = logging.getLogger("bacalao.devstack")


class Devstack:
    """``compute_overrides[i]``, when given, changes NodeOptions fields of compute node ``i``
    only (e.g. ``{"data_locality": "local", "allowed_local_paths": ("/data",)}``)."""

    def __init__(
        self,
        base: NodeOptions,
        compute_nodes: int = 3,
        *,
        compute_overrides: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.requester = NodeProcess(
            dataclasses.replace(base, name="requester", requester=True, compute=False)
        )
        overrides = list(compute_overrides) + [{}] * (compute_nodes - len(compute_overrides))
        self.computes = [
            NodeProcess(
                dataclasses.replace(
                    base,
                    **{
                        "name": f"compute-{index}",
                        "requester": False,
                        "compute": True,
                        "api_port": 0,
                        "local_publisher_port": 0,
                        **overrides[index],
                    },
                )
            )
            for index in range(compute_nodes)
        ]

    @property
    def api_port(self) -> int:
        assert self.requester.api_port is not None
        return self.requester.api_port

    def start(self, timeout_s: float = 30.0) -> None:
        try:
            self.requester.start()
            for node in self.computes:
                node.start()
            self.requester.wait_for_compute_nodes(len(self.computes), timeout_s)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        for node in [*self.computes, self.requester]:
            try:
                node.stop()
            except Exception:
                log.exception("event=devstack_stop_failed node=%s", node.node_id)


@contextmanager
def embedded(compute_nodes: int = 1, data_dir: Path | None = None) -> Iterator[Devstack]:
    """A throw-away devstack on embedded defaults (memory bus, SQLite, local publisher) with
    its API on a free loopback port; for ``--embedded`` runs and the quick start."""
    with tempfile.TemporaryDirectory(prefix="bacalao-embedded-") as scratch:
        root = data_dir or Path(scratch)
        options = NodeOptions(
            name="requester",
            data_dir=root,
            broker="memory://",
            api_port=0,
            heartbeat_interval_s=1.0,
        )
        with Devstack(options, compute_nodes) as stack:
            yield stack
