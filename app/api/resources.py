"""REST resources for the EC backend: customers, products, orders (``/api/v1``).

Views parse, call one service and dump. The API blueprint commits after a successful response
and rolls back after an error (see ``app.api.init_api``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser

from app.api import schemas
from app.api.auth import current_actor, idempotent, require_api_key
from app.config import current_settings
from app.db import get_session, utcnow
from app.metrics import UPSERTS
from app.services import records, reorders, sync
from app.services.sync import UpsertResult
from app.services.types import OrderIn

blp = Blueprint(
    "sync",
    __name__,
    url_prefix="/api/v1",
    description="Customers, products and orders synced from the shop's EC backend.",
)


@blp.after_request
def _finish_transaction(response: Response) -> Response:
    # The API blueprint is the entry point that owns the transaction: keep the changes of a
    # successful request, drop those of a refused one.
    session = get_session()
    if response.status_code < 400:
        session.commit()
    else:
        session.rollback()
    return response


blp.before_request(require_api_key)


@blp.before_request
def _json_bodies_only() -> None:
    """A body sent as something other than JSON is refused as such (415), not read as a JSON
    document with every field missing."""
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if has_body and not request.is_json:
        got = request.mimetype or "no Content-Type"
        abort(415, message=f"send the body as JSON with 'Content-Type: application/json' "
                           f"(got {got})")  # fmt: skip


class _Parser(FlaskParser):
    """webargs' parser, refusing absurdly nested JSON with a 400 instead of crashing.

    ``json.loads`` recurses once per nesting level, so a body of 100,000 ``[`` exhausts the
    stack; webargs only turns ``JSONDecodeError`` into its "Invalid JSON body" answer.
    """

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            # A non-empty document: webargs reads an empty one as "no body".
            raise json.JSONDecodeError("JSON nested too deeply", "[", 0) from exc


# Set before any @blp.arguments below: the decorator takes the parser when it is applied.
blp.ARGUMENTS_PARSER = _Parser()

STATUS_OF = {UpsertResult.CREATED: 201, UpsertResult.UPDATED: 200, UpsertResult.UNCHANGED: 200}

# What every operation may answer besides its own responses (the README's "Errors").
UNAUTHORIZED = {"401": {"description": "missing, wrong or revoked API key (the message says why)"}}
_WRITE_ERRORS = UNAUTHORIZED | {
    "413": {"description": "body over KAIDOKI_MAX_REQUEST_BYTES"},
    "415": {"description": "body not sent as JSON (Content-Type: application/json)"},
}
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "a retry with the same key and body replays the first response "
    "(header Idempotent-Replayed: true), also when sent while the first is being answered; "
    "the same key with another body is a 422",
}
reads = blp.doc(responses=UNAUTHORIZED | {"404": {"description": "no such record"}})
writes = blp.doc(responses=_WRITE_ERRORS)


def _path_id(external_id: str) -> str:
    try:
        schemas.check_external_id(external_id)
    except ValidationError as exc:
        abort(422, errors={"path": {"external_id": exc.messages}})
    return external_id


def _not_found(kind: str, external_id: str) -> Any:
    abort(404, message=f"no {kind} with external_id {external_id!r}")


@blp.route("/customers/<external_id>")
class CustomerResource(MethodView):
    @reads
    @blp.response(200, schemas.CustomerOutSchema)
    def get(self, external_id: str) -> Any:
        """Read a customer."""
        customer = records.find_customer(get_session(), _path_id(external_id))
        return customer or _not_found("customer", external_id)

    @writes
    @blp.arguments(schemas.CustomerSchema)
    @blp.response(200, schemas.CustomerUpsertSchema, description="updated or unchanged")
    @blp.alt_response(201, schema=schemas.CustomerUpsertSchema, description="created")
    def put(self, data: dict[str, Any], external_id: str) -> Any:
        """Create or update a customer (idempotent upsert keyed on the backend's id)."""
        result, customer = sync.upsert_customer(
            get_session(),
            schemas.customer_in(_path_id(external_id), data),
            current_settings().default_timezone,
            current_actor(),
            utcnow(),
        )
        UPSERTS.labels("customer", result.value).inc()
        return {**_row(customer), "result": result.value}, STATUS_OF[result]


@blp.route("/products/<external_id>")
class ProductResource(MethodView):
    @reads
    @blp.response(200, schemas.ProductOutSchema)
    def get(self, external_id: str) -> Any:
        """Read a product, with the ops settings that shape its prompts."""
        product = records.find_product(get_session(), _path_id(external_id))
        return product or _not_found("product", external_id)

    @writes
    @blp.arguments(schemas.ProductSchema)
    @blp.response(200, schemas.ProductUpsertSchema, description="updated or unchanged")
    @blp.alt_response(201, schema=schemas.ProductUpsertSchema, description="created")
    def put(self, data: dict[str, Any], external_id: str) -> Any:
        """Create or update a product's catalogue fields (its ops settings are kept)."""
        result, product = sync.upsert_product(
            get_session(),
            schemas.product_in(_path_id(external_id), data),
            current_actor(),
            utcnow(),
        )
        UPSERTS.labels("product", result.value).inc()
        return {**_row(product), "result": result.value}, STATUS_OF[result]


@blp.route("/orders/<external_id>")
class OrderResource(MethodView):
    @reads
    @blp.response(200, schemas.OrderOutSchema)
    def get(self, external_id: str) -> Any:
        """Read an order with its lines."""
        order = records.find_order(get_session(), _path_id(external_id))
        return order or _not_found("order", external_id)

    @writes
    @blp.arguments(schemas.OrderSchema)
    @blp.response(200, schemas.OrderUpsertSchema, description="updated or unchanged")
    @blp.alt_response(201, schema=schemas.OrderUpsertSchema, description="created")
    def put(self, data: dict[str, Any], external_id: str) -> Any:
        """Create or update an order.

        An order whose ``updated_at`` is older than the stored one changes nothing
        (``stale: true``). Unknown customers and products are created as placeholders.
        Cancelled and returned orders leave the consumption history.
        """
        session, now = get_session(), utcnow()
        order = schemas.order_in(_path_id(external_id), data)
        problem = reorders.reference_problems(session, [order], now).get(0)
        if problem:
            abort(422, errors={"json": {"reorder_id": [problem]}})
        [outcome] = sync.sync_orders(
            session, [order], current_settings().default_timezone, current_actor(), now
        )
        stored = records.find_order(session, external_id)
        assert stored is not None  # just written, or newer and kept
        return (
            {**asdict(stored), "result": outcome.result.value, "stale": outcome.stale},
            STATUS_OF[outcome.result],
        )


@blp.route("/orders/batch", methods=["POST"])
@idempotent
@writes
@blp.doc(parameters=[IDEMPOTENCY_KEY])
@blp.arguments(schemas.OrderBatchSchema)
@blp.response(200, schemas.OrderBatchResultSchema)
def batch_orders(data: dict[str, Any]) -> Any:
    """Upsert up to 1,000 orders. Each item succeeds or fails alone; safe to retry.

    Send an `Idempotency-Key` header to have a retry replay the first response.
    """
    session, now = get_session(), utcnow()
    items = [
        item if isinstance(item, schemas.BatchItemError)
        else schemas.order_in(item["external_id"], item)
        for item in data["orders"]
    ]  # fmt: skip
    # An order naming a reorder it cannot fulfil fails alone, as a malformed one does.
    positions = [i for i, item in enumerate(items) if isinstance(item, OrderIn)]
    orders = [item for item in items if isinstance(item, OrderIn)]
    for index, problem in reorders.reference_problems(session, orders, now).items():
        items[positions[index]] = schemas.BatchItemError(orders[index].external_id,
                                                         {"reorder_id": [problem]})  # fmt: skip
    valid = [item for item in items if isinstance(item, OrderIn)]
    outcomes = iter(
        sync.sync_orders(session, valid, current_settings().default_timezone, current_actor(), now)
    )
    results: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, schemas.BatchItemError):
            results.append(
                {"external_id": item.external_id, "result": "error", "errors": item.errors}
            )
        else:
            outcome = next(outcomes)
            results.append(
                {
                    "external_id": outcome.external_id,
                    "result": outcome.result.value,
                    "stale": outcome.stale,
                }
            )
    return {"results": results}


@blp.route("/customers/<external_id>/orders")
@reads
@blp.arguments(schemas.PageArgsSchema, location="query", as_kwargs=True)
@blp.response(
    200,
    schemas.OrderOutSchema(many=True),
    headers={
        "X-Pagination": {
            "description": "JSON: total, total_pages, page, ...",
            "schema": {"type": "string"},
        }
    },
)
def customer_orders(external_id: str, page: int, page_size: int) -> Any:
    """A customer's orders, newest first (``page``, ``page_size``; see ``X-Pagination``)."""
    session = get_session()
    customer = records.find_customer(session, _path_id(external_id))
    if customer is None:
        return _not_found("customer", external_id)
    total, orders = records.customer_orders(
        session, customer, offset=(page - 1) * page_size, limit=page_size
    )
    pagination = {
        "total": total,
        "total_pages": -(-total // page_size),
        "page": page,
        "page_size": page_size,
    }
    return orders, {"X-Pagination": json.dumps(pagination)}


def _row(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in type(row).model_fields}
