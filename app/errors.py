"""Error pages for people: the admin pages and the customers' link pages answer an HTTP error
with an HTML page (the API keeps flask-smorest's JSON, see ``app.api``)."""

from __future__ import annotations

from flask import render_template, request
from werkzeug.exceptions import HTTPException

CUSTOMER_PREFIX = "/l/"


def error_page(error: HTTPException) -> tuple[str, int]:
    """A page saying what went wrong, in the customer's language on their pages (Japanese
    unless the page chose one) and in English on the admin pages."""
    code = error.code or 500
    customer = request.path.startswith(CUSTOMER_PREFIX)
    page = render_template("errors/page.html", code=code, name=error.name,
                           description=error.description, customer=customer)  # fmt: skip
    return page, code
