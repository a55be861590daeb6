from datetime import UTC, datetime

from app.db import get_session
from app.services.api_keys import revoke_api_key


def test_request_without_key_is_refused_with_401(client):
    response = client.get("/api/v1/customers/c-1")
    assert response.status_code == 401
    assert "missing API key" in response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_request_with_unknown_key_is_refused_with_401(client, api_key):
    response = client.get(
        "/api/v1/customers/c-1", headers={"Authorization": "Bearer kd_nope_wrong"}
    )
    assert response.status_code == 401
    assert response.json["message"] == "invalid API key"


def test_revoked_key_gets_401_saying_it_was_revoked(app, client, auth):
    with app.app_context():
        revoke_api_key(get_session(), "test-backend", datetime.now(UTC))
        get_session().commit()
    response = client.get("/api/v1/customers/c-1", headers=auth)
    assert response.status_code == 401
    assert "revoked" in response.json["message"]


def test_valid_key_reaches_the_resource(client, auth):
    assert client.get("/api/v1/customers/c-1", headers=auth).status_code == 404
