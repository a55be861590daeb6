from tests.factories import customer_body


def test_create_prints_a_working_key_on_the_last_line(runner, client):
    result = runner.invoke(args=["api-keys", "create", "shop"])
    assert result.exit_code == 0
    key = result.output.strip().splitlines()[-1]
    response = client.put(
        "/api/v1/customers/c-1", json=customer_body(), headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 201


def test_only_a_hash_of_the_key_is_stored(app, runner):
    from app.db import get_session
    from app.models import ApiClient

    key = runner.invoke(args=["api-keys", "create", "shop"]).output.strip().splitlines()[-1]
    with app.app_context():
        [client] = get_session().query(ApiClient).all()
        assert key not in (client.key_hash, client.key_prefix)
        assert len(client.key_hash) == 64


def test_duplicate_name_is_refused(runner):
    runner.invoke(args=["api-keys", "create", "shop"])
    result = runner.invoke(args=["api-keys", "create", "shop"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_list_shows_clients_and_state(runner):
    runner.invoke(args=["api-keys", "create", "shop"])
    runner.invoke(args=["api-keys", "create", "old"])
    runner.invoke(args=["api-keys", "revoke", "old"])
    output = runner.invoke(args=["api-keys", "list"]).output
    assert "shop" in output
    assert "active" in output
    assert "old" in output
    assert "revoked" in output


def test_revoked_key_stops_working(runner, client):
    key = runner.invoke(args=["api-keys", "create", "shop"]).output.strip().splitlines()[-1]
    assert runner.invoke(args=["api-keys", "revoke", "shop"]).exit_code == 0
    response = client.get("/api/v1/customers/c-1", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert "revoked" in response.json["message"]


def test_revoking_an_unknown_client_fails(runner):
    result = runner.invoke(args=["api-keys", "revoke", "nobody"])
    assert result.exit_code != 0
    assert "no API client" in result.output
