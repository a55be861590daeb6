"""Wire schemas of the REST API (marshmallow). Unknown fields are an error.

Loaded data becomes the typed values of ``app.services.types``; SQLModel rows never cross the
wire directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.db import MAX_ID, utcnow
from app.models import EXTERNAL_ID_MAX, Locale, OrderStatus
from app.services.types import CustomerIn, LineIn, OrderIn, ProductIn

MAX_BATCH_ORDERS = 1000
MAX_LINES_PER_ORDER = 500
MAX_QUANTITY = 1_000_000
# An order's lines of one product are stored as one line of their summed units, in an INTEGER
# column; sums over orders (plan totals) are BIGINT.
assert MAX_LINES_PER_ORDER * MAX_QUANTITY <= MAX_ID
# Dates outside this window are typos, and far-off years overflow when shifted to UTC.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def no_control_characters(value: str) -> None:
    """Text that can be stored and shown: no control characters, and no lone UTF-16
    surrogates (JSON's ``"\\ud800"`` decodes to one, which no database or email can encode)."""
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters")
    if _SURROGATE.search(value):
        raise ValidationError("must be valid Unicode (contains a lone surrogate such as \\ud800)")


def check_external_id(value: str) -> None:
    """Raise ValidationError unless ``value`` is a usable external id (also for paths)."""
    if not 1 <= len(value) <= EXTERNAL_ID_MAX:
        raise ValidationError(f"must be 1 to {EXTERNAL_ID_MAX} characters long")
    no_control_characters(value)
    if value != value.strip():
        raise ValidationError("must not start or end with white space")
    if "\ufffd" in value:
        # What a path that was not valid UTF-8 decodes to: different ids would collide.
        raise ValidationError("must not contain U+FFFD (a path must be valid UTF-8)")


# Files in the zone database that are no zone of their own: the server's zone ("localtime",
# whatever the host is set to), a placeholder ("Factory"), and the leap-second and POSIX
# copies of every zone ("right/...", "posix/...").
_NOT_ZONES = {"localtime", "Factory", "posixrules"}


def check_timezone(value: str) -> None:
    if (
        len(value) > 64
        or not _TZ_NAME.match(value)
        or value in _NOT_ZONES
        or value.startswith(("right/", "posix/"))
    ):
        raise ValidationError("is not an IANA time zone name such as Asia/Tokyo")
    try:
        ZoneInfo(value)
    except Exception as exc:  # ZoneInfo raises several kinds for bad names
        raise ValidationError("is not an IANA time zone name such as Asia/Tokyo") from exc


def check_reasonable_date(value: datetime) -> None:
    if not EARLIEST <= value < LATEST:
        raise ValidationError("must be between 1990-01-01 and 2100-01-01")


FUTURE_SLACK = timedelta(days=1)
"""How far ahead of our clock an order may be dated (the backend's clock may run ahead)."""


def check_not_in_the_future(value: datetime) -> None:
    if value > utcnow() + FUTURE_SLACK:
        raise ValidationError("must not be in the future (more than a day ahead of now)")


def _text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=[validate.Length(max=max_length), no_control_characters], **kwargs
    )


def _when(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(validate=check_reasonable_date, **kwargs)


class CustomerSchema(Schema):
    email = fields.Email(required=True, validate=[validate.Length(max=320), no_control_characters])
    name = _text(200, load_default=None, allow_none=True)
    locale = fields.String(
        load_default=Locale.JA.value, validate=validate.OneOf([m.value for m in Locale])
    )
    timezone = fields.String(
        load_default=None,
        allow_none=True,
        validate=check_timezone,
        metadata={"description": "IANA time zone; the service default when omitted"},
    )

    @post_load
    def _make(self, data: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        data["locale"] = Locale(data["locale"])
        return data


def customer_in(external_id: str, data: dict[str, Any]) -> CustomerIn:
    return CustomerIn(external_id=external_id, **data)


class ProductSchema(Schema):
    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=300), no_control_characters]
    )
    unit = _text(50, load_default=None, allow_none=True)
    pack_size = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0, max=1_000_000, min_inclusive=False),
        metadata={"description": "units in one pack, e.g. 2 for a two-pack"},
    )


def product_in(external_id: str, data: dict[str, Any]) -> ProductIn:
    return ProductIn(external_id=external_id, **data)


class LineSchema(Schema):
    product_external_id = fields.String(required=True, validate=check_external_id)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )


_LINE_KEYS = frozenset(("product_external_id", "quantity"))
_QUANTITY_RANGE = f"Must be greater than or equal to 1 and less than or equal to {MAX_QUANTITY}."


def _line_problems(item: dict[str, Any]) -> dict[str, list[str]]:
    """LineSchema's checks of one line, with its messages; empty when the line is valid."""
    problems = {key: ["Unknown field."] for key in item.keys() - _LINE_KEYS}
    product, quantity = item.get("product_external_id"), item.get("quantity")
    if product is None:
        problems["product_external_id"] = ["Missing data for required field."]
    elif not isinstance(product, str):
        problems["product_external_id"] = ["Not a valid string."]
    else:
        try:
            check_external_id(product)
        except ValidationError as exc:
            problems["product_external_id"] = list(exc.messages)
    if quantity is None:
        problems["quantity"] = ["Missing data for required field."]
    elif not isinstance(quantity, int) or isinstance(quantity, bool):
        problems["quantity"] = ["Not a valid integer."]
    elif not 1 <= quantity <= MAX_QUANTITY:
        problems["quantity"] = [_QUANTITY_RANGE]
    return problems


class _Lines(fields.Field[list[LineIn]]):
    """An order's lines, ``[{"product_external_id": ..., "quantity": ...}, ...]``.

    LineSchema's rules and messages, checked here directly instead of by a nested schema per
    line: a batch carries thousands of lines, and marshmallow's per-object overhead made their
    validation the slowest step of a sync. The OpenAPI document describes them as Line objects.
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[LineIn]:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not 1 <= len(value) <= MAX_LINES_PER_ORDER:
            raise ValidationError(f"Length must be between 1 and {MAX_LINES_PER_ORDER}.")
        lines: list[LineIn] = []
        errors: dict[str | int, Any] = {}
        for index, item in enumerate(value):
            problems = (
                _line_problems(item)
                if isinstance(item, dict)
                else {"_schema": ["Invalid input type."]}
            )
            if problems:
                errors[index] = problems
            else:
                lines.append(LineIn(item["product_external_id"], item["quantity"]))
        if errors:
            raise ValidationError(errors)
        return lines


class OrderSchema(Schema):
    customer_external_id = fields.String(required=True, validate=check_external_id)
    ordered_at = fields.AwareDateTime(
        required=True,
        validate=[check_reasonable_date, check_not_in_the_future],
        metadata={"description": "with a UTC offset; not more than a day ahead of now"},
    )
    updated_at = _when(
        required=True,
        metadata={"description": "the backend's version stamp; an older one changes nothing"},
    )
    status = fields.String(
        load_default=OrderStatus.PLACED.value,
        validate=validate.OneOf([m.value for m in OrderStatus]),
    )
    delivered_at = _when(load_default=None, allow_none=True)
    reorder_id = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "the Kaidoki reorder this order fulfils, if any"},
    )
    lines = _Lines(
        required=True,
        metadata={
            "type": "array",
            "items": {"$ref": "#/components/schemas/Line"},
            "minItems": 1,
            "maxItems": MAX_LINES_PER_ORDER,
        },
    )

    @validates_schema
    def _delivered_after_ordered(self, data: dict[str, Any], **_kw: Any) -> None:
        delivered, ordered = data.get("delivered_at"), data.get("ordered_at")
        if delivered is not None and ordered is not None and delivered < ordered:
            raise ValidationError("must not be before ordered_at", "delivered_at")


def order_in(external_id: str, data: dict[str, Any]) -> OrderIn:
    return OrderIn(
        external_id=external_id,
        customer_external_id=data["customer_external_id"],
        ordered_at=data["ordered_at"].astimezone(UTC),
        updated_at=data["updated_at"].astimezone(UTC),
        status=OrderStatus(data["status"]),
        delivered_at=data["delivered_at"].astimezone(UTC) if data["delivered_at"] else None,
        reorder_id=data["reorder_id"],
        lines=tuple(data["lines"]),
    )


class BatchOrderSchema(OrderSchema):
    external_id = fields.String(required=True, validate=check_external_id)


@dataclass(frozen=True)
class BatchItemError:
    """An item of a batch that failed validation; the others go ahead."""

    external_id: str | None
    errors: dict[str, Any]


class _LenientNested(fields.Nested):
    """Nested that turns a bad item into a BatchItemError instead of failing the batch."""

    def deserialize(
        self, value: Any, attr: str | None = None, data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        if value is None:  # marshmallow refuses a null before ``_deserialize`` sees it
            return BatchItemError(None, {"_schema": ["Field may not be null."]})
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(
        self,
        value: Any,
        attr: str | None,
        data: Mapping[str, Any] | None,
        partial: bool | Sequence[str] | AbstractSet[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return super()._deserialize(value, attr, data, partial, **kwargs)
        except ValidationError as exc:
            ext = value.get("external_id") if isinstance(value, dict) else None
            messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            return BatchItemError(ext if isinstance(ext, str) else None, messages)


class OrderBatchSchema(Schema):
    orders = fields.List(
        _LenientNested(BatchOrderSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH_ORDERS),
        metadata={"description": f"1 to {MAX_BATCH_ORDERS} orders; each is validated alone"},
    )


MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


# ---- responses -------------------------------------------------------------------------------

RESULT = fields.String(
    required=True,
    validate=validate.OneOf(["created", "updated", "unchanged"]),
    metadata={"description": "what the upsert did"},
)


class CustomerOutSchema(Schema):
    external_id = fields.String()
    email = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    locale = fields.String()
    timezone = fields.String()
    is_placeholder = fields.Boolean(
        metadata={"description": "created from an order before the customer itself was synced"}
    )
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class CustomerUpsertSchema(CustomerOutSchema):
    result = RESULT


class ProductOutSchema(Schema):
    external_id = fields.String()
    name = fields.String(allow_none=True)
    unit = fields.String(allow_none=True)
    pack_size = fields.Float()
    is_placeholder = fields.Boolean()
    default_interval_days = fields.Integer()
    min_interval_days = fields.Integer()
    max_interval_days = fields.Integer()
    lead_time_days = fields.Integer()
    target_stockout_risk = fields.Float()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class ProductUpsertSchema(ProductOutSchema):
    result = RESULT


class LineOutSchema(Schema):
    product_external_id = fields.String()
    quantity = fields.Integer()


class OrderOutSchema(Schema):
    external_id = fields.String()
    customer_external_id = fields.String()
    status = fields.String()
    ordered_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime(metadata={"description": "the backend's version stamp"})
    delivered_at = fields.AwareDateTime(allow_none=True)
    reorder_id = fields.Integer(allow_none=True)
    lines = fields.List(fields.Nested(LineOutSchema))


class OrderUpsertSchema(OrderOutSchema):
    result = RESULT
    stale = fields.Boolean(
        metadata={"description": "true when ignored because a newer version is stored"}
    )


class BatchItemResultSchema(Schema):
    external_id = fields.String(allow_none=True)
    result = fields.String(validate=validate.OneOf(["created", "updated", "unchanged", "error"]))
    stale = fields.Boolean()
    errors = fields.Dict(metadata={"description": "field → reasons, when result is error"})


class OrderBatchResultSchema(Schema):
    results = fields.List(fields.Nested(BatchItemResultSchema))


# ---- reorders --------------------------------------------------------------------------------


class ReorderFeedArgsSchema(Schema):
    status = fields.String(
        load_default="pending",
        validate=validate.OneOf(["pending", "acknowledged", "fulfilled", "cancelled"]),
        metadata={"description": "which reorders; `pending` ones wait for your acknowledgement"},
    )
    after_id = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_ID),
        metadata={
            "description": "only reorders with a larger id (for paging through); with "
            "`changed_since`, only among those changed exactly at `changed_since`"
        },
    )
    changed_since = _when(
        load_default=None,
        metadata={
            "description": "follow changes: only reorders that reached their status at or "
            "after this time (their `updated_at`), oldest change first. Pass the last item's "
            "`updated_at` and `id` (as `after_id`) to get the next page or the next changes. "
            "A change shows once it is a minute old. Not with `status=pending` (pending "
            "reorders stay listed until acknowledged)"
        },
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))

    @validates_schema
    def _changes_of_settled_reorders(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("changed_since") is not None and data["status"] == "pending":
            raise ValidationError(
                "changed_since needs a status other than pending: pending reorders stay in the "
                "feed until acknowledged",
                "changed_since",
            )


class ReorderOutSchema(Schema):
    id = fields.Integer(
        required=True,
        metadata={"description": "echo it as `reorder_id` on the order that fulfils it"},
    )
    status = fields.String(required=True)
    customer_external_id = fields.String(required=True)
    product_external_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    confirmed_at = fields.DateTime(required=True)
    acknowledged_at = fields.DateTime(allow_none=True)
    fulfilled_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(
        required=True,
        metadata={"description": "when it reached its status: the `changed_since` cursor"},
    )
