"""Signed, purpose-salted, expiring tokens for the links in customer emails.

A token carries a record id and the record's current nonce (a prompt's ``nonce``, a customer's
``link_version``). The signature proves we made it; the salt ties it to one purpose, so a
"manage" token cannot act on a prompt; the signing time bounds its age; and changing the nonce
on the row revokes every link made before. Tokens are not logins: each grants only its own page.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import want_bytes


class Purpose(enum.StrEnum):
    PROMPT = "prompt"  # act on one prompt: confirm, skip, snooze, stop
    MANAGE = "manage"  # the customer's plans page
    UNSUBSCRIBE = "unsubscribe"  # List-Unsubscribe (RFC 8058)


class LinkError(Exception):
    """The token cannot be used."""


class TamperedLink(LinkError):
    """Not signed by us for this purpose (edited, truncated, or made for another page)."""


@dataclass
class ExpiredLink(LinkError):
    """Signed by us, but older than the maximum age; ``record_id`` says whose it was."""

    record_id: int


class SupersededLink(ExpiredLink):
    """Signed by us, but for a link version the customer's links have moved past (revoked:
    a forwarded email, a changed address); a fresh link goes to the current address."""


@dataclass(frozen=True)
class LinkClaim:
    record_id: int
    nonce: str
    signed_at: datetime


class _Signer(TimestampSigner):
    """A timestamp signer that stamps the time it is given instead of reading the clock."""

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now

    def get_timestamp(self) -> int:
        return int(self.now.timestamp()) if self.now is not None else super().get_timestamp()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        # itsdangerous derives the key again for every signature, and a serializer makes a
        # new signer for every token; the key depends only on the secret and the salt.
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        cache_key = (secret, want_bytes(self.salt))
        key = _DERIVED_KEYS.get(cache_key)
        if key is None:
            key = _DERIVED_KEYS[cache_key] = super().derive_key(secret)
        return key


_DERIVED_KEYS: dict[tuple[bytes, bytes], bytes] = {}


class _Serializer(URLSafeTimedSerializer):
    """Signs with the time it is given (``dumps_at``). One per secret and purpose, kept: making
    a serializer tries out its JSON encoder each time, for every link on every page."""

    def dumps_at(self, obj: Any, now: datetime) -> str:
        payload = want_bytes(self.dump_payload(obj))
        return _Signer(self.secret_keys, salt=self.salt, now=now).sign(payload).decode()


@functools.lru_cache(maxsize=64)
def _serializer(secret_key: str, purpose: Purpose) -> _Serializer:
    return _Serializer(secret_key, salt=f"kaidoki.link.{purpose.value}", signer=_Signer)


def make_token(secret_key: str, purpose: Purpose, record_id: int, nonce: str, now: datetime) -> str:
    """A token for ``purpose`` naming a record and its current nonce, signed as of ``now``."""
    return _serializer(secret_key, purpose).dumps_at([record_id, nonce], now)


def read_token(
    secret_key: str, purpose: Purpose, token: str, max_age: timedelta | None, now: datetime
) -> LinkClaim:
    """The claim of a token made by ``make_token`` for ``purpose``.

    Raises TamperedLink for a bad signature or shape, ExpiredLink when it is older than
    ``max_age`` at ``now`` (None: never). The caller still checks the nonce against the record.
    """
    try:
        payload, signed_at = _serializer(secret_key, purpose).loads(token, return_timestamp=True)
    except BadSignature as exc:
        raise TamperedLink(str(exc)) from exc
    record_id, nonce = _shape(payload)
    if max_age is not None and now - signed_at > max_age:
        raise ExpiredLink(record_id)
    return LinkClaim(record_id, nonce, signed_at)


def _shape(payload: Any) -> tuple[int, str]:
    # Signed by us, so well-formed unless the secret leaked; checked all the same.
    if (
        isinstance(payload, list)
        and len(payload) == 2
        and isinstance(payload[0], int)
        and isinstance(payload[1], str | int)
    ):
        return payload[0], str(payload[1])
    raise TamperedLink("unexpected payload")
