"""Headers of the messages we write."""

import email
from datetime import UTC, datetime
from email import policy

from app.mail.render import Envelope, assemble


def _subject_of(subject: str) -> str:
    envelope = Envelope("shop@example.jp", "a@example.jp", "m-1@example.jp",
                        datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
    raw = assemble(envelope, subject, "en", "body", None, {})
    return str(email.message_from_string(raw, policy=policy.default)["Subject"])


def test_a_subject_reads_as_typed_even_when_it_looks_like_an_encoded_word() -> None:
    # Sent as-is, a mail client would decode "=?utf-8?b?SGk=?=" to "Hi".
    typed = "Running low on Soap & Co =?utf-8?b?SGk=?=?"
    assert _subject_of(typed) == typed
    assert _subject_of("Running low on soap?") == "Running low on soap?"
    assert _subject_of("洗剤がそろそろなくなる頃です") == "洗剤がそろそろなくなる頃です"
