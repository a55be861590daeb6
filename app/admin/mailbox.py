"""The mailbox: emails that would have been sent, readable with working links, for staff.

Registered only when no SMTP server is configured (``KAIDOKI_SMTP_URL`` unset: the demo and
the tests; production refuses to start without SMTP). It lives beside the admin pages and
behind the same sign-in: the messages carry customers' live answer links.
"""

from __future__ import annotations

import re
from email import message_from_string, policy
from email.message import EmailMessage

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlmodel import col

from app.admin import security_headers
from app.admin.auth import staff_required
from app.admin.queries import paginate
from app.db import ID_IN_PATH, get_session
from app.models import MailboxMessage

bp = Blueprint("mailbox", __name__, url_prefix="/admin/mailbox")
bp.after_request(security_headers)
_URL = re.compile(r"https?://[^\s<>\"]+")

# The email's own HTML, shown in a frame of the message page: no scripts, no fetches, its own
# inline styles, and its links open the top window (only when clicked).
HTML_PART_CSP = (
    "sandbox allow-top-navigation-by-user-activation allow-popups; "
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
)
# Links in an email have no target: in the frame they would open there, and the link pages
# refuse to be framed (X-Frame-Options: DENY). A base target sends them to the top window,
# unsandboxed, so their forms work. Added to the mailbox's copy only, never to sent emails.
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_LINKS_TO_TOP = '<base target="_top">'


def _parse(raw: str) -> EmailMessage:
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return str(body.get_content()) if body is not None else ""


def _framed(html: str) -> str:
    """``html`` with its links opening the top window (``_LINKS_TO_TOP`` first in its head)."""
    head = _HEAD.search(html)
    at = head.end() if head else 0
    return html[:at] + _LINKS_TO_TOP + html[at:]


def _linkify(text: str) -> Markup:
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))  # noqa: S704 (url is escaped)
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _message(message_id: int) -> MailboxMessage:
    return get_session().get(MailboxMessage, message_id) or abort(404)


@bp.get("/")
@staff_required
def inbox() -> str:
    # Latest received first: a message sent again (a replay) comes back to the top.
    query = select(MailboxMessage).order_by(
        col(MailboxMessage.received_at).desc(), col(MailboxMessage.id).desc()
    )
    page = paginate(get_session(), query, request.args.get("page", 1, type=int) or 1)
    return render_template("admin/mailbox.html", page=page)


@bp.get(f"/<{ID_IN_PATH}:message_id>")
@staff_required
def message(message_id: int) -> str:
    row = _message(message_id)
    parsed = _parse(row.raw)
    headers = [(k, str(v)) for k, v in parsed.items()]
    return render_template("admin/mailbox_message.html", row=row, headers=headers,
                           text=_linkify(_part(parsed, "plain")))  # fmt: skip


@bp.get(f"/<{ID_IN_PATH}:message_id>/html")
@staff_required
def message_html(message_id: int) -> Response:
    html = _framed(_part(_parse(_message(message_id).raw), "html"))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_PART_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
