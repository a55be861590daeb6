"""Outbound webhooks to the EC backend, signed in the Standard Webhooks scheme.

Headers ``webhook-id`` (the outbox row's stable dedupe key: the same on every retry, so the
receiver can drop repeats), ``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` with the secret).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook

TIMEOUT_SECONDS = 10


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: followed, a POST becomes a body-less GET, whose 2xx
    would count as delivered though the receiver never had the event."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class WebhookFailed(Exception):
    """The receiver did not accept the webhook (network error or a non-2xx answer)."""


def event_body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The JSON body of an event, as signed and sent."""
    return json.dumps(
        {"type": event_type, "timestamp": now.isoformat(), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
        "Content-Type": "application/json",
        "User-Agent": "Kaidoki-Webhooks/1",
    }


def post_webhook(url: str, secret: str, webhook_id: str, body: str, now: datetime) -> None:
    """POST ``body`` to ``url``; raises WebhookFailed unless the receiver answers 2xx."""
    request = urllib.request.Request(  # noqa: S310 (the URL is configuration, http(s) checked)
        url,
        data=body.encode("utf-8"),
        headers=signed_headers(secret, webhook_id, body, now),
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        moved = exc.headers.get("Location") if 300 <= exc.code < 400 else None
        hint = f" (redirects are not followed: the URL may now be {moved})" if moved else ""
        raise WebhookFailed(f"HTTP {exc.code} from {url}{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= status < 300:
        raise WebhookFailed(f"HTTP {status} from {url}")
