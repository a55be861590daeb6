"""Prompt emails: a text and an HTML part in the customer's language, with RFC 8058 headers.

Rendering needs an app context (templates and translation catalogues); everything it shows is
passed in, so a message can be rebuilt byte for byte from the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from flask import render_template
from flask_babel import force_locale, format_date, gettext, ngettext


@dataclass(frozen=True)
class PromptItem:
    """One product in a prompt email."""

    product_name: str
    unit: str | None
    quantity: int
    runout_on: date | None
    reason: str
    action_url: str


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    to: str
    message_id: str  # without angle brackets
    sent_at: datetime


def prompt_message(
    envelope: Envelope,
    locale: str,
    customer_name: str | None,
    items: list[PromptItem],
    manage_url: str,
    unsubscribe_url: str,
) -> EmailMessage:
    """The prompt email asking about ``items`` (one or more products)."""
    with force_locale(locale):
        if len(items) == 1:
            subject = gettext("Running low on %(product)s?", product=items[0].product_name)
        else:
            subject = ngettext(
                "Running low on %(num)d item?", "Running low on %(num)d items?", len(items)
            )
        context: dict[str, Any] = {
            "name": customer_name,
            "items": items,
            "manage_url": manage_url,
            "unsubscribe_url": unsubscribe_url,
            "format_day": _format_day,
            "locale": locale,
        }
        text = render_template("mail/prompt.txt", **context)
        html = render_template("mail/prompt.html", subject=subject, **context)
    message = EmailMessage(policy=SMTP)
    message["From"] = envelope.mail_from
    message["To"] = envelope.to
    message["Subject"] = subject
    message["Date"] = format_datetime(envelope.sent_at)
    message["Message-ID"] = f"<{envelope.message_id}>"
    message["Content-Language"] = locale
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _format_day(day: date | None) -> str:
    return str(format_date(day, format="long")) if day is not None else ""


def reason_sentence(data: dict[str, Any] | None, fallback: str | None) -> str:
    """The one-line reason for the prompt date, in the current locale.

    Built from the numbers behind the stored English explanation (``plan.explanation_data``);
    falls back to the English text for plans scored before those numbers were kept.
    """
    if not data:
        return fallback or ""
    lead = int(data.get("lead_time_days") or 0)
    if data.get("preferred_interval_days"):
        return str(
            gettext(
                "You asked for every %(days)d days; delivery takes %(lead)d days.",
                days=int(data["preferred_interval_days"]),
                lead=lead,
            )
        )
    interval = data.get("interval_days")
    runout = date.fromisoformat(data["runout_on"]) if data.get("runout_on") else None
    if interval is None or runout is None:
        return fallback or ""
    chance = round(100 * (1 - float(data.get("runout_quantile") or 0.5)))
    units = f"{float(data.get('units_per_purchase') or 1):.3g}"
    if data.get("method") == "population":
        return str(gettext(
            "Customers usually use %(units)s of this in about %(days)d days; "
            "%(chance)d%% chance of running out after %(day)s; delivery takes %(lead)d days.",
            units=units, days=round(interval), chance=chance, day=_format_day(runout), lead=lead,
        ))  # fmt: skip
    return str(gettext(
        "%(n)d purchases, about %(units)s every %(days)d days; "
        "%(chance)d%% chance of running out after %(day)s; delivery takes %(lead)d days.",
        n=int(data.get("n_purchases") or 0), units=units, days=round(interval), chance=chance,
        day=_format_day(runout), lead=lead,
    ))  # fmt: skip
