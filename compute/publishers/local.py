"""``local`` publisher: keep results in a folder on this node, ``<base_dir>/<execution_id>``.

The results folder is copied (the runner still owns and cleans up its own copy) into a hidden
sibling first and renamed into place, so a reader never sees a half-written result. The
returned spec is ``{Type: local, Params: {URL: file:///...}}``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from protocol.errors import ExecutionError, ValidationError
from protocol.job import SpecConfig
from protocol.specs.publishers import LocalPublisherParams, LocalResultParams

log = logging.getLogger(__name__)


def _check_name(execution_id: str) -> str:
    if (
        not execution_id
        or "/" in execution_id
        or "\\" in execution_id
        or execution_id in ("..", ".")
    ):
        raise ExecutionError(f"local publisher: {execution_id!r} is not a usable folder name")
    return execution_id


class LocalPublisher:
    """Copies each execution's results under ``base_dir``."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    @property
    def type(self) -> str:
        return "local"

    def is_installed(self) -> bool:
        return True

    def publish(
        self, spec: SpecConfig, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        try:
            LocalPublisherParams.from_wire(spec.params, prefix="Publisher.Params")
        except ValidationError as exc:
            raise ExecutionError(f"local publisher: {exc}") from None
        if not results_dir.is_dir():
            raise ExecutionError(f"local publisher: results folder {results_dir} does not exist")
        final = (self.base_dir / _check_name(execution_id)).absolute()
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(results_dir, partial, symlinks=True)
            if final.exists():
                log.warning(
                    "event=local_publish_replaced job_id=%s execution_id=%s", job_id, execution_id
                )
                shutil.rmtree(final)
            partial.rename(final)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise ExecutionError(
                f"local publisher: cannot copy results to {final}: {exc}"
            ) from None
        log.info(
            "event=local_published job_id=%s execution_id=%s path=%s", job_id, execution_id, final
        )
        result = LocalResultParams(url=final.as_uri())
        return SpecConfig(type="local", params=result.to_wire())
