"""The reorder pull feed, for backends that cannot receive webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_smorest import abort

from app.api import schemas
from app.api.auth import current_actor, idempotent
from app.api.resources import IDEMPOTENCY_KEY, UNAUTHORIZED, blp
from app.db import ID_IN_PATH, get_session, utcnow
from app.models import ReorderStatus
from app.services import reorders


def _out(item: reorders.ReorderItem) -> dict[str, Any]:
    r = item.reorder
    return {
        "id": r.id,
        "status": r.status.value,
        "customer_external_id": item.customer.external_id,
        "product_external_id": item.product.external_id,
        "quantity": r.quantity,
        "confirmed_at": r.confirmed_at,
        "acknowledged_at": r.acknowledged_at,
        "fulfilled_at": r.fulfilled_at,
        "cancelled_at": r.cancelled_at,
        "updated_at": r.updated_at,
    }


@blp.route("/reorders")
@blp.doc(responses=UNAUTHORIZED)
@blp.arguments(schemas.ReorderFeedArgsSchema, location="query", as_kwargs=True)
@blp.response(200, schemas.ReorderOutSchema(many=True))
def reorder_feed(
    status: str, after_id: int, limit: int, changed_since: datetime | None = None
) -> Any:
    """Confirmed reorders, oldest first. A reorder appears once the customer's undo window
    has passed; acknowledge it with `POST /reorders/<id>/ack` and echo its id as the order's
    `reorder_id` when you sync the order that fulfils it.

    To hear of reorders cancelled after you took them (operations cancelled one, or the order
    that fulfilled it was cancelled), poll `status=cancelled&changed_since=...` with the
    last item's `updated_at` and `id`."""
    session, now = get_session(), utcnow()
    if changed_since is None:
        items = reorders.feed(session, ReorderStatus(status), now, after_id, limit)
    else:
        items = reorders.changes(session, ReorderStatus(status), now, changed_since, after_id,
                                 limit)  # fmt: skip
    return [_out(item) for item in items]


@blp.route(f"/reorders/<{ID_IN_PATH}:reorder_id>/ack", methods=["POST"])
@idempotent
@blp.doc(responses=UNAUTHORIZED, parameters=[IDEMPOTENCY_KEY])
@blp.response(200, schemas.ReorderOutSchema)
@blp.alt_response(404, description="no such reorder (or still inside its undo window)")
@blp.alt_response(409, description="the reorder was cancelled")
def acknowledge_reorder(reorder_id: int) -> Any:
    """Take a reorder off the pending feed. Safe to repeat."""
    try:
        item = reorders.acknowledge(get_session(), reorder_id, current_actor().name, utcnow())
    except reorders.ReorderNotFound as exc:
        abort(404, message=str(exc))
    except reorders.ReorderConflict as exc:
        abort(409, message=str(exc))
    return _out(item)
