"""Make sure a job's image is on the daemon: used as it is when present, pulled when not.

The SDK's pull has no timeout of its own, so it runs in a helper thread that is waited on
for at most ``timeout_s`` and no longer than the run's stop switch stays unthrown. A pull
given up on is left to the daemon, which ends it when its registry answers or fails.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import docker
import docker.errors

from compute.executors.docker_daemon import DockerDaemon, daemon_calls
from compute.executors.interrupts import RunControl
from protocol.errors import ExecutionError, RetryableExecutionError

log = logging.getLogger(__name__)


def api_problem(error: docker.errors.APIError) -> str:
    """The daemon's own words for an API error (its ``explanation``), else the error."""
    return str(error.explanation or error)


class ImagePull(threading.Thread):
    """One ``docker pull``; never raises, it keeps what went wrong in :attr:`problem`."""

    def __init__(self, client: docker.DockerClient, image: str, done: threading.Event) -> None:
        super().__init__(name=f"docker-pull {image}", daemon=True)
        self.client = client
        self.image = image
        self.done = done
        self.finished = False
        self.problem: str | None = None
        self.daemon_lost: OSError | None = None

    def run(self) -> None:
        try:
            for message in self.client.api.pull(self.image, stream=True, decode=True):
                self._note(message)
        except docker.errors.APIError as exc:
            self.problem = api_problem(exc)
        except OSError as exc:
            self.daemon_lost = exc
        except Exception as exc:  # a thread must not die with an exception nobody sees
            self.problem = repr(exc)
        finally:
            self.finished = True
            self.done.set()

    def _note(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("error"):
            self.problem = str(message.get("error"))


def ensure_image(daemon: DockerDaemon, image: str, timeout_s: float, control: RunControl) -> None:
    """Return once ``image`` is on the daemon, or once ``control`` is stopped (the caller
    checks it). Raises ExecutionError when the image cannot be had."""
    client = daemon.client()
    with daemon_calls(daemon, f"looking up image {image}"):
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise ExecutionError(f"docker image {image!r}: {api_problem(exc)}") from None
    started = time.monotonic()
    done = threading.Event()
    pull = ImagePull(client, image, done)
    control.on_stop(done.set)
    pull.start()
    log.info("event=docker_pull_start image=%s timeout_s=%g", image, timeout_s)
    done.wait(timeout_s if timeout_s > 0 else None)
    if control.reason is not None:
        log.info("event=docker_pull_abandoned image=%s reason=%s", image, control.reason)
        return
    if not pull.finished:
        raise ExecutionError(
            f"cannot pull image {image}: no answer within {timeout_s:g}s "
            "(is its registry reachable from this node?)"
        )
    if pull.daemon_lost is not None:
        raise RetryableExecutionError(
            f"docker daemon at {daemon.where} stopped answering while pulling image {image}: "
            f"{pull.daemon_lost}"
        )
    if pull.problem is not None:
        raise ExecutionError(f"cannot pull image {image}: {pull.problem}")
    log.info("event=docker_pull_done image=%s duration_s=%.3f", image, time.monotonic() - started)
