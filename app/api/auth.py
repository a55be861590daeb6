"""Bearer API keys and ``Idempotency-Key`` replay for the REST API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Response, g, request
from flask_smorest import abort

from app.config import current_settings
from app.db import get_session, utcnow
from app.models import ActorType, ApiClient, IdempotencyRecord
from app.services.api_keys import InvalidApiKey, authenticate
from app.services.idempotency import claim_key, find_record
from app.services.types import Actor

MAX_IDEMPOTENCY_KEY = 255


def require_api_key() -> None:
    """before_request hook of the API blueprint: 401 unless a live key is presented."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    session = get_session()
    try:
        g.api_client = authenticate(session, key.strip(), utcnow())
    except InvalidApiKey as exc:
        _unauthorized(str(exc))
    # End the authentication's transaction now: on SQLite every transaction holds the write
    # lock (BEGIN IMMEDIATE), and parsing a large body must not keep other workers waiting.
    session.commit()


def _unauthorized(message: str) -> None:
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="kaidoki"'})


def current_client() -> ApiClient:
    client: ApiClient = g.api_client
    return client


def current_actor() -> Actor:
    return Actor(ActorType.API_CLIENT, current_client().name)


def _body_digests() -> tuple[str, str]:
    """SHA-256 of the request body as JSON data (the same document sent with other spacing or
    key order is the same request) and of its raw bytes (records stored before that, and
    bodies that are not JSON)."""
    raw = request.get_data()
    raw_digest = hashlib.sha256(raw).hexdigest()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return raw_digest, raw_digest
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest(), raw_digest


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Replay the first response to a POST that repeats its ``Idempotency-Key``.

    The same key with a different method, path or body (as JSON data: spacing and key order do
    not count) is refused with 422: that is a client bug, and silently replaying would hide it.
    The record is written in the request's transaction, so it exists exactly when the first
    request's changes do. It is claimed before the view runs (``claim_key``): retries sent at
    the same moment wait for the first and replay its response. Should that response be gone
    by then, the retry gets a 409, to be sent again.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
            abort(
                422,
                errors={"headers": {"Idempotency-Key": ["must be 1 to 255 printable characters"]}},
            )
        session = get_session()
        client = current_client()
        assert client.id is not None
        digest, raw_digest = _body_digests()
        keep = timedelta(hours=current_settings().idempotency_hours)
        now = utcnow()
        found = find_record(session, client.id, key, now, keep)
        claimed = None
        if found is None:
            claimed = claim_key(session, client.id, key, request.method, request.path, digest, now)
            if claimed is None:
                # A retry sent at the same moment answered first: replay its answer.
                found = find_record(session, client.id, key, utcnow(), keep)
                if found is None:  # answered and already expired, or purged: too odd to guess
                    abort(
                        409,
                        message="a request with this Idempotency-Key was answered at the "
                        "same moment; send it again",
                    )
        if found is not None:
            return _replay(found, digest, raw_digest)
        assert claimed is not None
        response = view(*args, **kwargs)
        if isinstance(response, Response) and response.status_code < 500:
            claimed.response_status = response.status_code
            claimed.response_body = response.get_data(as_text=True)
        else:
            session.delete(claimed)
        return response

    return wrapper


def _replay(found: IdempotencyRecord, digest: str, raw_digest: str) -> Response:
    """The stored response, if ``found`` was recorded for this very request; else a 422."""
    if (found.method, found.path) != (request.method, request.path) or (
        found.request_sha256 not in (digest, raw_digest)
    ):
        abort(
            422,
            errors={
                "headers": {
                    "Idempotency-Key": ["was already used with a different request; use a new key"]
                }
            },
        )
    return Response(
        found.response_body,
        status=found.response_status,
        mimetype="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
