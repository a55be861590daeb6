"""The demo mailbox: emails that would have been sent, readable with working links.

Registered only when no SMTP server is configured (``KAIDOKI_SMTP_URL`` unset), which
production refuses at start-up; the admin pages will show it behind a login.
"""

from __future__ import annotations

import re
from email import message_from_string, policy
from email.message import EmailMessage

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlmodel import col

from app.db import get_session
from app.models import MailboxMessage

bp = Blueprint("mailbox", __name__, url_prefix="/mailbox")
PAGE_SIZE = 50
_URL = re.compile(r"https?://[^\s<>\"]+")


def _parse(raw: str) -> EmailMessage:
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return str(body.get_content()) if body is not None else ""


def _linkify(text: str) -> Markup:
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))  # noqa: S704 (url is escaped)
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@bp.get("/")
def inbox() -> str:
    session = get_session()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total = session.scalar(select(func.count()).select_from(MailboxMessage)) or 0
    messages = session.scalars(
        select(MailboxMessage)
        .order_by(col(MailboxMessage.id).desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return render_template("mailbox/inbox.html", messages=messages, page=page, pages=pages,
                           total=total)  # fmt: skip


@bp.get("/<int(min=1, max=2147483647):message_id>")
def message(message_id: int) -> str:
    row = get_session().get(MailboxMessage, message_id) or abort(404)
    parsed = _parse(row.raw)
    headers = [(k, str(v)) for k, v in parsed.items()]
    return render_template("mailbox/message.html", row=row, headers=headers,
                           text=_linkify(_part(parsed, "plain")))  # fmt: skip


@bp.get("/<int(min=1, max=2147483647):message_id>/html")
def message_html(message_id: int) -> Response:
    row = get_session().get(MailboxMessage, message_id) or abort(404)
    response = Response(_part(_parse(row.raw), "html"), mimetype="text/html")
    # The email's own HTML, shown in a frame: no scripts, and its links open the top window.
    response.headers["Content-Security-Policy"] = (
        "sandbox allow-top-navigation-by-user-activation allow-popups; "
        "default-src 'none'; style-src 'unsafe-inline'"
    )
    return response
