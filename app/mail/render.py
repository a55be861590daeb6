"""Prompt emails: a text and an HTML part in the customer's language, with RFC 8058 headers.

Rendering needs an app context (templates and translation catalogues); everything it shows is
passed in, so a message can be rebuilt byte for byte from the same values.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime
from typing import Any

from flask import render_template
from flask_babel import (
    force_locale,
    get_locale,
    gettext,
    ngettext,
)

from app.i18n import format_date_long
from app.mail.addresses import header_address


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
) -> str:
    """The prompt email asking about ``items`` (one or more products), ready to send."""
    with _in_locale(locale):
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
            "format_day": format_date_long,
            "locale": locale,
        }
        text = render_template("mail/prompt.txt", **context)
        html = render_template("mail/prompt.html", subject=subject, **context)
    return assemble(envelope, str(subject), locale, text, html,
                    {"List-Unsubscribe": f"<{unsubscribe_url}>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})  # fmt: skip


def _in_locale(locale: str) -> AbstractContextManager[None]:
    # Switching locale drops the loaded catalogue; callers already in ``locale`` keep it.
    current = get_locale()
    return nullcontext() if current is not None and str(current) == locale else force_locale(locale)


# Messages are written out directly rather than through ``email.message``: every header value
# here is ASCII once the subject and display names are RFC 2047-encoded (``_ascii_header``, and
# ``addresses.header_address`` for addresses; only an address whose local part is outside ASCII
# stays UTF-8, with its name, as RFC 6532 allows), and bodies are base64 in 76-character lines,
# so the generic generator and its header folding (most of the cost of a morning's prompts)
# have nothing to add. The tests parse every message back with the standard library's parser.
CRLF = "\r\n"


def _body(text: str) -> str:
    return base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", CRLF)


def _part_lines(text: str, subtype: str) -> list[str]:
    return [f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: base64",
            "", _body(text)]  # fmt: skip


def _ascii_header(value: str) -> str:
    """``value`` as RFC 2047 base64 encoded-words (UTF-8, at most 75 characters each). Plain
    ASCII stays as it is, unless it holds "=?" (a product named "=?utf-8?b?SGk=?=" would be
    decoded by mail clients as "Hi"); encoded, it reads as typed."""
    if value.isascii() and "=?" not in value:
        return value
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode())
        if size + width > 45:  # 45 bytes -> 60 base64 characters + 12 around them
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return (CRLF + " ").join(
        "=?utf-8?b?" + base64.b64encode(word.encode()).decode("ascii") + "?=" for word in words
    )


def assemble(
    envelope: Envelope,
    subject: str,
    locale: str,
    text: str,
    html: str | None,
    extra_headers: dict[str, str],
) -> str:
    """A text (and optionally HTML) message with our standard headers, as wire text (CRLF)."""
    headers = [
        f"From: {header_address(envelope.mail_from)}",
        f"To: {header_address(envelope.to)}",
        f"Subject: {_ascii_header(subject)}",
        f"Date: {format_datetime(envelope.sent_at)}",
        f"Message-ID: <{envelope.message_id}>",
        f"Content-Language: {locale}",
        *(f"{name}: {_ascii_header(value)}" for name, value in extra_headers.items()),
        "MIME-Version: 1.0",
    ]
    if html is None:
        lines = headers + _part_lines(text, "plain")
    else:
        boundary = "==kaidoki_" + hashlib.sha256(envelope.message_id.encode()).hexdigest()[:32]
        lines = [
            *headers,
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            *_part_lines(text, "plain"),
            f"--{boundary}",
            *_part_lines(html, "html"),
            f"--{boundary}--",
            "",
        ]
    return CRLF.join(lines)


def reason_sentence(data: dict[str, Any] | None, fallback: str | None) -> str:
    """The one-line reason for the prompt date, in the current locale.

    Built from the numbers behind the stored English explanation (``plan.explanation_data``);
    falls back to the English text for plans scored before those numbers were kept.
    """
    if not data:
        return fallback or ""
    lead = int(data.get("lead_time_days") or 0)
    if data.get("preferred_interval_days"):
        # Fixed by the customer on their plans page or by staff on the admin pages: the words
        # must be true either way.
        return str(
            gettext(
                "The interval is set to every %(days)d days; delivery takes %(lead)d days.",
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
            units=units, days=round(interval), chance=chance, day=format_date_long(runout),
            lead=lead,
        ))  # fmt: skip
    return str(ngettext(
        "%(n)d purchases, about %(units)s unit every %(days)d days; "
        "%(chance)d%% chance of running out after %(day)s; delivery takes %(lead)d days.",
        "%(n)d purchases, about %(units)s units every %(days)d days; "
        "%(chance)d%% chance of running out after %(day)s; delivery takes %(lead)d days.",
        1 if units == "1" else 2,
        n=int(data.get("n_purchases") or 0), units=units, days=round(interval), chance=chance,
        day=format_date_long(runout), lead=lead,
    ))  # fmt: skip
