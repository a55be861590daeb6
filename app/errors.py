"""Error pages for people: the admin pages and the customers' link pages answer an HTTP error
with an HTML page (the API keeps flask-smorest's JSON, see ``app.api``). And the size limit
on request bodies, for bodies sent without a length."""

from __future__ import annotations

import io

from flask import Flask, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_content_length

from app.links import URL_PREFIX


def error_page(error: HTTPException) -> tuple[str, int]:
    """A page saying what went wrong, in the customer's language on their pages (Japanese
    unless the page chose one) and in English on the admin pages."""
    code = error.code or 500
    customer = request.path.startswith(URL_PREFIX + "/")
    page = render_template("errors/page.html", code=code, name=error.name,
                           description=error.description, customer=customer)  # fmt: skip
    return page, code


def init_app(app: Flask) -> None:
    # First of the request hooks: the others (CSRF checks, the API's parsers) read the body.
    app.before_request_funcs.setdefault(None, []).insert(0, _size_unsized_body)


def _size_unsized_body() -> None:
    """Read a body sent without ``Content-Length`` (chunked) here, to one byte past
    ``MAX_CONTENT_LENGTH``: over the limit is a 413, as for a body that declares its length.
    (Werkzeug stops reading such a body at the limit, and the cut JSON was reported as
    invalid.) A body within the limit goes on with its length, as if it had declared it."""
    environ = request.environ
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is None or not environ.get("wsgi.input_terminated"):
        return
    if get_content_length(environ) is not None:  # declared (chunked or not, as Werkzeug reads it)
        return
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        abort(413)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    environ.pop("HTTP_TRANSFER_ENCODING", None)
