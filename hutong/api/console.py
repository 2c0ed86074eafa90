"""``/console``: the exchange monitor's page (交换监控), served from the package.

One HTML page, its stylesheet and its script (`hutong/console/`), no build step
and nothing fetched from elsewhere: the page asks ``/api/v1/monitor/overview``
every few seconds and draws its charts as SVG. The page itself holds no data,
so it is served to anyone; the API it calls needs the ``admin`` role (the page
asks for a token when the API answers 401). A strict Content-Security-Policy
lets it run only its own script and talk only to this hub.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Response

__all__ = ["ASSETS", "router"]

#: The files of the page, with their media types.
ASSETS = {"index.html": "text/html; charset=utf-8",
          "console.css": "text/css; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["console"], include_in_schema=False)


def _asset(name: str) -> Response:
    content = resources.files("hutong").joinpath("console", name).read_bytes()
    return Response(content, media_type=ASSETS[name], headers=_HEADERS)


@router.get("/console")
def page() -> Response:
    """The exchange monitor."""
    return _asset("index.html")


@router.get("/console/{name}")
def asset(name: str) -> Response:
    """The page's stylesheet and script."""
    if name not in ASSETS or name == "index.html":
        raise HTTPException(404, f"no console file {name}")
    return _asset(name)
