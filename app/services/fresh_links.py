"""A fresh plans-page link by email, for customers whose link has expired."""

from __future__ import annotations

from datetime import datetime

from flask import render_template
from flask_babel import force_locale, gettext
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.config import Settings
from app.links.tokens import Purpose
from app.links.urls import link
from app.mail.addresses import message_id_domain
from app.mail.render import Envelope, assemble
from app.models import Customer, Outbox, OutboxKind
from app.services import outbox

WINDOW_MINUTES = 10
"""At most one fresh-link email per customer in this many minutes (the button can be spammed)."""


def send_fresh_link(
    session: Session, settings: Settings, customer: Customer, now: datetime
) -> bool:
    """Queue the email; False when one was already queued in the current window."""
    if not customer.email or customer.id is None:
        return False
    window = now.strftime("%Y%m%d%H") + str(now.minute // WINDOW_MINUTES)
    host = message_id_domain(settings.base_url)
    message_id = f"fresh-link-{customer.id}-{window}@{host}"
    if session.scalar(select(col(Outbox.id)).where(col(Outbox.dedupe_key) == message_id)):
        return False
    manage = link(settings, Purpose.MANAGE, customer.id, customer.link_version, now)
    unsubscribe = link(settings, Purpose.UNSUBSCRIBE, customer.id, customer.link_version, now)
    with force_locale(customer.locale.value):
        subject = gettext("Your link to manage reminders")
        text = render_template("mail/fresh_link.txt", name=customer.name, manage_url=manage)
    payload = assemble(Envelope(settings.mail_from, customer.email, message_id, now),
                       str(subject), customer.locale.value, text, None,
                       {"List-Unsubscribe": f"<{unsubscribe}>",
                        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})  # fmt: skip
    outbox.enqueue(session, OutboxKind.EMAIL, message_id, "fresh_link", customer.email,
                   payload, now, customer_id=customer.id)  # fmt: skip
    return True
