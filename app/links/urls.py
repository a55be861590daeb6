"""Absolute URLs of the customer pages, built from ``KAIDOKI_BASE_URL`` (never the request)."""

from __future__ import annotations

from datetime import datetime

from app.config import Settings
from app.links.tokens import Purpose, make_token

PATHS = {Purpose.PROMPT: "/l/p/", Purpose.MANAGE: "/l/m/", Purpose.UNSUBSCRIBE: "/l/u/"}


def link(
    settings: Settings, purpose: Purpose, record_id: int, nonce: str | int, now: datetime
) -> str:
    token = make_token(settings.secret_key, purpose, record_id, str(nonce), now)
    return settings.base_url + PATHS[purpose] + token
