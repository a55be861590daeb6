def test_healthz_says_ok(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_is_ok_when_database_is_at_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["migrations"] == "at head"


def test_readyz_is_503_when_migrations_are_pending(new_database, database_url, make_app):
    response = make_app(new_database()).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["migrations"] == "pending"


def test_readyz_is_503_when_database_is_unreachable(database_url, make_app):
    response = make_app("postgresql://nobody@127.0.0.1:1/none").test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"
