"""The web dashboard at ``/dashboard/``: a static page (HTML, plain JavaScript, CSS) that
reads the requester's own JSON API from the browser; no build step, nothing from elsewhere.

The files are package data of :mod:`requester.dashboard`, read once when the app is built
and served from memory under a fixed list of names (no path from the request ever reaches
the file system). They hold no data, so :mod:`requester.api_auth` serves them without a
token; the page asks for one when the API answers 401 and sends it on every API call.

The routes stay out of the OpenAPI document: they are not part of Bacalhau's API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

DASHBOARD = "/dashboard"

# (file name, media type) of every file the page is made of; the index is served at "/".
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# The page runs only its own script and style and talks only to this origin: a value that
# slipped into the DOM as markup still could not run or load anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load, so a requester upgraded serves its new page at once.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    def response(self) -> Response:
        return Response(self.body, media_type=self.media_type, headers=HEADERS)


def load_assets() -> dict[str, Asset]:
    """The dashboard's files from the installed package; FileNotFoundError names a missing
    one (a package built without its data)."""
    folder = resources.files("requester.dashboard")
    return {
        name: Asset(folder.joinpath(name).read_bytes(), media_type)
        for name, media_type in ASSETS.items()
    }


def install_dashboard(app: FastAPI) -> None:
    """``GET /dashboard/`` (the page) and ``GET /dashboard/<asset>``; ``/dashboard``
    redirects to ``/dashboard/``, so the page's relative links resolve under it."""
    assets = load_assets()

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{DASHBOARD}/", status_code=307)

    def serve(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return asset.response()

        return endpoint

    app.add_route(DASHBOARD, redirect, ["GET", "HEAD"], include_in_schema=False)
    app.add_route(
        f"{DASHBOARD}/", serve(assets["index.html"]), ["GET", "HEAD"], include_in_schema=False
    )
    for name, asset in assets.items():
        app.add_route(f"{DASHBOARD}/{name}", serve(asset), ["GET", "HEAD"], include_in_schema=False)
