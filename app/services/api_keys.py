"""API clients and their keys.

A key is ``kd_`` + 8 characters of prefix + ``_`` + 43 random characters. It is shown once;
only its SHA-256 is stored. (A slow password hash buys nothing for 256-bit random keys and would
cost every API request a few milliseconds.)
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import ActorType, ApiClient
from app.services.audit import record

logger = logging.getLogger(__name__)


class ApiKeyError(Exception):
    """A key operation that cannot be done (duplicate name, unknown client)."""


class InvalidApiKey(Exception):
    """The presented key is unknown or revoked; ``str()`` is safe to show the caller."""


@dataclass(frozen=True)
class NewKey:
    client: ApiClient
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, now: datetime) -> NewKey:
    """Create a client called ``name`` with a fresh key. Raises ApiKeyError if the name is taken."""
    if session.scalars(select(ApiClient).where(col(ApiClient.name) == name)).first() is not None:
        raise ApiKeyError(f"an API client named {name!r} already exists")
    prefix = secrets.token_hex(4)
    key = f"kd_{prefix}_{secrets.token_urlsafe(32)}"
    client = ApiClient(name=name, key_prefix=prefix, key_hash=hash_key(key), created_at=now)
    session.add(client)
    session.flush()
    record(
        session,
        now,
        ActorType.SYSTEM,
        "cli",
        "create",
        "api_client",
        name,
        None,
        {"prefix": prefix},
    )
    logger.info("API client %s created (prefix %s)", name, prefix)
    return NewKey(client=client, key=key)


def list_api_clients(session: Session) -> list[ApiClient]:
    return list(session.scalars(select(ApiClient).order_by(col(ApiClient.name))))


def revoke_api_key(session: Session, name: str, now: datetime) -> ApiClient:
    """Revoke the client's key. Raises ApiKeyError when no such client exists."""
    client = session.scalars(select(ApiClient).where(col(ApiClient.name) == name)).first()
    if client is None:
        raise ApiKeyError(f"no API client named {name!r}")
    if client.revoked_at is None:
        client.revoked_at = now
        session.add(client)
        record(session, now, ActorType.SYSTEM, "cli", "revoke", "api_client", name, None, None)
        logger.info("API client %s revoked", name)
    return client


def authenticate(session: Session, key: str, now: datetime) -> ApiClient:
    """The client owning ``key``. Raises InvalidApiKey when unknown or revoked."""
    client = session.scalars(
        select(ApiClient).where(col(ApiClient.key_hash) == hash_key(key))
    ).first()
    if client is None:
        raise InvalidApiKey("invalid API key")
    if client.revoked_at is not None:
        raise InvalidApiKey(f"this API key was revoked on {client.revoked_at:%Y-%m-%d}")
    # Written at most once a minute: every request updating the row would serialise writers.
    if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
        client.last_used_at = now
        session.add(client)
    return client
