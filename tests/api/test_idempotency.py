import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from app.api import auth as api_auth
from app.db import get_session
from app.models import AuditLog, IdempotencyRecord
from app.scheduler import jobs
from app.services import idempotency
from tests.factories import order_body
from tests.racing import at_once, meeting_before


def _batch(*exts):
    return {"orders": [{"external_id": e, **order_body()} for e in exts]}


def test_same_key_and_body_replays_the_first_response(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    first = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    again = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert first.json["results"][0]["result"] == "created"
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_document_with_other_spacing_and_key_order_replays(client, auth):
    # A retry serialised again by the client (another library, pretty-printed) is the same
    # request.
    headers = auth | {"Idempotency-Key": "k-1", "Content-Type": "application/json"}
    body = _batch("o-1")
    first = client.post("/api/v1/orders/batch", data=json.dumps(body), headers=headers)
    again = client.post("/api/v1/orders/batch", data=json.dumps(body, indent=2, sort_keys=True),
                        headers=headers)  # fmt: skip
    assert again.status_code == 200, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_same_key_with_another_body_is_422(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    response = client.post("/api/v1/orders/batch", json=_batch("o-2"), headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["errors"]["headers"]
    assert client.get("/api/v1/orders/o-2", headers=auth).status_code == 404


def test_without_a_key_a_retry_reports_unchanged(client, auth):
    client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=auth)
    again = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=auth)
    assert again.json["results"][0]["result"] == "unchanged"
    assert "Idempotent-Replayed" not in again.headers


def test_refused_request_does_not_burn_the_key(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    bad = client.post("/api/v1/orders/batch", json={"orders": []}, headers=headers)
    assert bad.status_code == 422
    good = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert good.json["results"][0]["result"] == "created"


def test_overlong_key_is_422(client, auth):
    headers = auth | {"Idempotency-Key": "k" * 300}
    response = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert response.status_code == 422


def _age_records(app, hours):
    with app.app_context():
        session = get_session()
        for found in session.scalars(select(IdempotencyRecord)):
            found.created_at -= timedelta(hours=hours)
        session.commit()


def test_a_key_older_than_the_retention_runs_the_request_again(app, client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    _age_records(app, 24)
    again = client.post("/api/v1/orders/batch", json=_batch("o-1", "o-2"), headers=headers)
    assert again.status_code == 200  # another body under the old key: no 422 once forgotten
    assert "Idempotent-Replayed" not in again.headers
    assert [r["result"] for r in again.json["results"]] == ["unchanged", "created"]
    replayed = client.post("/api/v1/orders/batch", json=_batch("o-1", "o-2"), headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json == again.json


def test_the_sweep_deletes_records_past_the_retention_in_chunks(app, client, auth, monkeypatch):
    for n in range(5):
        client.post("/api/v1/orders/batch", json=_batch(f"o-{n}"),
                    headers=auth | {"Idempotency-Key": f"old-{n}"})  # fmt: skip
    _age_records(app, 25)
    client.post("/api/v1/orders/batch", json=_batch("o-new"),
                headers=auth | {"Idempotency-Key": "new"})  # fmt: skip
    monkeypatch.setattr(idempotency, "PURGE_CHUNK", 2)
    with app.app_context():
        assert jobs.purge_idempotency_records(jobs.Timing()) == 5
        keys = get_session().scalars(select(col(IdempotencyRecord.key))).all()
    assert keys == ["new"]
    replay = client.post("/api/v1/orders/batch", json=_batch("o-new"),
                         headers=auth | {"Idempotency-Key": "new"})  # fmt: skip
    assert replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.slow
def test_retries_sent_at_the_same_moment_replay_the_first_answer(app, auth, db_backend):
    """Four retries of one batch, all looking for their key before any has stored it: one
    applies the batch, the others wait for it and replay its answer (no 500, nothing twice)."""
    if db_backend != "postgres":
        pytest.skip("SQLite runs one writer at a time: retries cannot overlap")
    headers = auth | {"Idempotency-Key": "k-1"}
    body = _batch("o-1", "o-2")

    def post():
        return app.test_client().post("/api/v1/orders/batch", json=body, headers=headers)

    with meeting_before(app, r"INSERT INTO idempotency_record\b", parties=4):
        responses = at_once({f"retry-{n}": post for n in range(4)}).values()
    assert sorted(r.status_code for r in responses) == [200] * 4
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert sorted(replayed, key=str) == [None, "true", "true", "true"]
    [first] = [r for r in responses if "Idempotent-Replayed" not in r.headers]
    assert all(r.json == first.json for r in responses)
    assert [r["result"] for r in first.json["results"]] == ["created", "created"]
    with app.app_context():
        audited = get_session().scalars(
            select(AuditLog).where(col(AuditLog.entity_type) == "order")
        )
        assert len(audited.all()) == 1  # the batch's one creation entry


def test_a_key_answered_at_the_same_moment_but_gone_since_is_a_409_to_send_again(
    client, auth, monkeypatch
):
    """The concurrent request that claimed the key stored no answer this one can find (it was
    purged in between): nothing is applied, and the client is told to send the request again."""
    monkeypatch.setattr(api_auth, "claim_key", lambda *args: None)
    headers = auth | {"Idempotency-Key": "k-1"}
    response = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert response.status_code == 409
    assert "send it again" in response.json["message"]
    assert client.get("/api/v1/orders/o-1", headers=auth).status_code == 404
