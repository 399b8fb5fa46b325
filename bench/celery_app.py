"""The Celery app :mod:`bench.dispatch` compares bacalao with: an echo task and a task that
runs ``/bin/true``, broker and result backend on the Redis URL in ``BACALAO_BENCH_CELERY_URL``.

Workers: ``celery -A bench.celery_app worker --pool solo --concurrency 1 -n w1@%h``.
Celery ships no type information, so it is imported as a plain module (its objects are Any).
"""

from __future__ import annotations

import importlib
import os
import subprocess
from typing import Any

URL_ENV = "BACALAO_BENCH_CELERY_URL"
ECHO = "bench.echo"
TRUE = "bench.true"

_celery: Any = importlib.import_module("celery")
_url = os.environ.get(URL_ENV, "redis://127.0.0.1:6379/1")

app: Any = _celery.Celery("bench", broker=_url, backend=_url)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


def echo(value: str) -> str:
    return value


def run_true() -> int:
    return subprocess.run(["/bin/true"], check=False).returncode


echo_task: Any = app.task(name=ECHO)(echo)
true_task: Any = app.task(name=TRUE)(run_true)
