"""The REST API for the shop's EC backend (``/api/v1``), documented by its OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from app.errors import error_page

API_VERSION = "v1"
API_PREFIX = "/api"
DOCS_STATIC = "/api/docs/static/"


class _Api(Api):  # type: ignore[misc]
    """flask-smorest's Api, whose JSON answer to an HTTP error (a handler for the whole app) is
    kept for the API: people on every other page get an HTML page (``app.errors``)."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            return super().handle_http_exception(error)
        return error_page(error)


def init_api(app: Flask) -> None:
    import swagger_ui_bundle

    from app.api import reorders  # noqa: F401  (routes on the same blueprint)
    from app.api.resources import blp
    from app.api.schemas import LineSchema

    app.config.update(
        API_TITLE="Kaidoki API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH=f"{API_VERSION}/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the swagger-ui-bundle package: the docs work without a CDN.
        OPENAPI_SWAGGER_UI_URL=DOCS_STATIC,
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Sync customers, products and orders from the shop's EC backend. "
                    "Authenticate with `Authorization: Bearer <key>` "
                    "(create one with `flask --app wsgi api-keys create NAME`)."
                )
            },
            "security": [{"bearerAuth": []}],
        },
    )
    api = _Api(app)
    # Order lines are checked by a plain field for speed; the document still describes them.
    api.spec.components.schema("Line", schema=LineSchema)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(blp)

    static_dir = swagger_ui_bundle.swagger_ui_path

    @app.get(DOCS_STATIC + "<path:filename>")
    def swagger_ui_static(filename: str) -> Response:
        return send_from_directory(static_dir, filename)
