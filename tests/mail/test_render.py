"""The messages we write: their headers and what they say."""

import email
from datetime import UTC, datetime
from email import policy

import pytest
from flask_babel import force_locale

from app.mail.render import Envelope, assemble, reason_sentence


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


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "The interval is set to every 40 days; delivery takes 3 days."),
        ("ja", "40日ごとのお届け間隔が設定されています。お届けには3日かかります。"),
    ],
    ids=["en", "ja"],
)
def test_a_fixed_interval_is_worded_as_true_whoever_set_it(app, locale, expected) -> None:
    # Operations staff fix intervals from the admin pages too: "you asked for" would be untrue.
    data = {"preferred_interval_days": 40, "lead_time_days": 3, "interval_days": 30.0,
            "runout_on": "2026-11-23", "method": "model"}  # fmt: skip
    with app.app_context(), force_locale(locale):
        assert reason_sentence(data, "fixed interval of 40 days") == expected
