"""Link tokens on their own: who made them, for what, and how old they are."""

from datetime import UTC, datetime, timedelta

import pytest

from app.links.tokens import ExpiredLink, Purpose, TamperedLink, make_token, read_token

SECRET = "s" * 40
MADE = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
AGE = timedelta(days=30)


def test_a_token_reads_back_its_record_nonce_and_signing_time():
    token = make_token(SECRET, Purpose.PROMPT, 42, "abc", MADE)
    claim = read_token(SECRET, Purpose.PROMPT, token, AGE, MADE + timedelta(days=29))
    assert (claim.record_id, claim.nonce, claim.signed_at) == (42, "abc", MADE)


def test_a_token_is_url_safe():
    token = make_token(SECRET, Purpose.MANAGE, 7, "0", MADE)
    assert all(c.isalnum() or c in "-_." for c in token)


@pytest.mark.parametrize("edit", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
    lambda t: "WzEsIjAiXQ" + t[t.index("."):],  # payload swapped for another record's
    lambda t: t[: len(t) // 2],  # truncated by a mail client
    lambda t: "",
    lambda t: "not-a-token",
])  # fmt: skip
def test_edited_tokens_are_refused(edit):
    token = make_token(SECRET, Purpose.PROMPT, 42, "abc", MADE)
    with pytest.raises(TamperedLink):
        read_token(SECRET, Purpose.PROMPT, edit(token), AGE, MADE)


def test_a_token_made_for_one_purpose_does_not_open_another():
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, 42, "0", MADE)
    for other in (Purpose.PROMPT, Purpose.MANAGE):
        with pytest.raises(TamperedLink):
            read_token(SECRET, other, token, AGE, MADE)


def test_a_token_signed_with_another_secret_is_refused():
    token = make_token("t" * 40, Purpose.PROMPT, 42, "abc", MADE)
    with pytest.raises(TamperedLink):
        read_token(SECRET, Purpose.PROMPT, token, AGE, MADE)


def test_an_old_token_is_expired_and_still_says_whose_it_was():
    token = make_token(SECRET, Purpose.PROMPT, 42, "abc", MADE)
    with pytest.raises(ExpiredLink) as raised:
        read_token(SECRET, Purpose.PROMPT, token, AGE, MADE + AGE + timedelta(seconds=1))
    assert raised.value.record_id == 42
