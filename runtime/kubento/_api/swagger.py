"""Swagger UI at /docs, from the files of the installed `swagger-ui-bundle-v2`
distribution: nothing is fetched from a CDN (clusters are often offline).

The page refers to its assets and to the document by relative URLs, so it also
works behind an ingress that serves the API under a path prefix.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from swagger_ui_bundle import swagger_ui_path

from kubento import contract

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")
"""The files the page uses, served under DOCS_PATH + "/"; nothing else of the bundle is."""

_DOCS = contract.DOCS_PATH.lstrip("/")
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{docs}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{docs}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{document}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: true,
      presets: [SwaggerUIBundle.presets.apis],
    }});
  </script>
</body>
</html>
"""


def asset_dir() -> Path:
    return Path(str(swagger_ui_path))


def page(title: str) -> str:
    return _PAGE.format(
        title=html.escape(f"{title} - Kubento API"),
        docs=_DOCS,
        document=contract.OPENAPI_PATH.lstrip("/"),
    )


def routes(title: str) -> list[BaseRoute]:
    """GET / (307 to /docs), /docs and its assets."""
    body = page(title)
    directory = asset_dir()

    async def index(request: Request) -> Response:
        return RedirectResponse(_DOCS, status_code=307)

    async def docs(request: Request) -> Response:
        return HTMLResponse(body)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(404)
        return FileResponse(directory / name, headers={"cache-control": "public, max-age=86400"})

    return [
        Route("/", index, methods=["GET"]),
        Route(contract.DOCS_PATH, docs, methods=["GET"]),
        Route(contract.DOCS_PATH + "/{name}", asset, methods=["GET"]),
    ]
