"""The ``local`` publisher's HTTP side: serve the published archives of one folder, read-only.

A Starlette app, run by uvicorn on a thread like the API (``cli/stack.py`` wires it, with
``requester.server.APIServer``). It answers GET and HEAD of ``/<name>.tar.gz`` for names
:func:`compute.publishers.local.is_archive_name` accepts (one path segment, not hidden), with
the file's bytes by ``FileResponse`` (Content-Length, ETag, Last-Modified, Range), when the
request carries the result's capability (``?sig=``, :mod:`compute.publishers.capability`;
403 without it). Everything else is 404, or 405 for other methods: no listing, no
in-progress ``.partial`` files, no symlinks, no path that could leave the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from compute.publishers.capability import QUERY_PARAM, ResultLinks
from compute.publishers.local import is_archive_name
from protocol.metrics import metrics_endpoint

log = logging.getLogger(__name__)

ARCHIVE_MEDIA_TYPE = "application/gzip"


def results_app(
    folder: Path, links: ResultLinks | None = None, metrics: CollectorRegistry | None = None
) -> Starlette:
    """An ASGI app serving the ``*.tar.gz`` files directly under ``folder``: to anyone, or
    with ``links`` only to requests bearing the result's capability; with ``metrics``, the
    node's Prometheus metrics at ``/metrics`` (counts of the node's work, to anyone who can
    reach the server: no result, job or input is named in them)."""
    root = folder.absolute()

    def archive(request: Request) -> Response:
        name = str(request.path_params["name"])
        if links is not None and not links.allows(name, request.query_params.get(QUERY_PARAM, "")):
            # Checked first: without the capability, whether a result exists is not told.
            return PlainTextResponse(
                "a result is served only through the URL its node published (with its sig)",
                status_code=403,
            )
        path = root / name
        if not is_archive_name(name) or path.is_symlink() or not path.is_file():
            return PlainTextResponse(f"no published result {name!r} here", status_code=404)
        return FileResponse(path, media_type=ARCHIVE_MEDIA_TYPE)

    routes = [Route("/{name}", archive, methods=["GET", "HEAD"])]
    if metrics is not None:  # first: /metrics is not an archive's name
        routes.insert(0, Route("/metrics", metrics_endpoint(metrics), methods=["GET"]))
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    return app
