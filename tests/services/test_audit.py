from sqlmodel import col

from app.db import get_session
from app.models import AuditLog
from tests.factories import customer_body, order_body


def _log(app):
    with app.app_context():
        return [
            (a.actor, a.action, a.entity_type, a.entity_id, a.before, a.after)
            for a in get_session().query(AuditLog).order_by(col(AuditLog.id)).all()
            if a.entity_type != "api_client"
        ]


def test_api_changes_are_audited_with_before_and_after(app, client, auth):
    client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    client.put("/api/v1/customers/c-1", json=customer_body(locale="en"), headers=auth)
    log = _log(app)
    assert log[0][:4] == ("test-backend", "create", "customer", "c-1")
    assert log[1][:4] == ("test-backend", "update", "customer", "c-1")
    assert log[1][4] == {"locale": "ja"}
    assert log[1][5] == {"locale": "en"}


def test_unchanged_upserts_leave_no_audit_row(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    orders = [row for row in _log(app) if row[2] == "order"]
    assert len(orders) == 1
    assert orders[0][5]["lines"][0][1] == 2
