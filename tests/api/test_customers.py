import io
import json

import pytest

from tests.factories import customer_body


def test_put_new_customer_returns_201_created(client, auth):
    response = client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    assert response.status_code == 201
    assert response.json["result"] == "created"
    assert response.json["name"] == "山田花子"
    assert response.json["external_id"] == "c-1"


def test_put_same_customer_twice_is_unchanged(client, auth):
    client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    response = client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    assert response.status_code == 200
    assert response.json["result"] == "unchanged"


def test_put_changed_customer_is_updated_and_readable(client, auth):
    client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    response = client.put(
        "/api/v1/customers/c-1", json=customer_body(locale="en", name="Hanako"), headers=auth
    )
    assert response.json["result"] == "updated"
    got = client.get("/api/v1/customers/c-1", headers=auth).json
    assert (got["locale"], got["name"]) == ("en", "Hanako")


def test_customer_without_timezone_gets_the_configured_default(client, auth):
    body = customer_body()
    del body["timezone"]
    response = client.put("/api/v1/customers/c-1", json=body, headers=auth)
    assert response.json["timezone"] == "Asia/Tokyo"


def test_invalid_email_is_422_naming_the_field(client, auth):
    response = client.put(
        "/api/v1/customers/c-1", json=customer_body(email="not-an-email"), headers=auth
    )
    assert response.status_code == 422
    assert "email" in response.json["errors"]["json"]


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "localtime", "Factory", "posixrules", "right/UTC", "posix/Asia/Tokyo"]
)
def test_unknown_timezone_is_422(client, auth, zone):
    # "localtime" would be whatever zone the server is set to; right/ and posix/ are copies.
    response = client.put("/api/v1/customers/c-1", json=customer_body(timezone=zone), headers=auth)
    assert response.status_code == 422
    assert response.json["errors"]["json"]["timezone"] == [
        "is not an IANA time zone name such as Asia/Tokyo"
    ]


def test_text_that_is_not_valid_unicode_is_422_naming_the_field(client, auth):
    # JSON's "\ud800" decodes to a lone surrogate, which nothing downstream can encode.
    body = '{"email": "s@example.jp", "name": "bad \\ud800 name"}'
    headers = auth | {"Content-Type": "application/json"}
    response = client.put("/api/v1/customers/sur-1", data=body, headers=headers)
    assert response.status_code == 422
    assert response.json["errors"]["json"]["name"] == [
        "must be valid Unicode (contains a lone surrogate such as \\ud800)"
    ]
    assert client.get("/api/v1/customers/sur-1", headers=auth).status_code == 404
    # A path that was not valid UTF-8 (it decodes to U+FFFD) is refused, not stored as "\ufffd".
    bad_path = client.put("/api/v1/customers/%C0%AF", json=customer_body(), headers=auth)
    assert bad_path.status_code == 422
    assert "path" in bad_path.json["errors"]


def test_unknown_field_is_422(client, auth):
    response = client.put(
        "/api/v1/customers/c-1", json=customer_body(favourite_colour="red"), headers=auth
    )
    assert response.status_code == 422
    assert "favourite_colour" in response.json["errors"]["json"]


def test_unsupported_locale_is_422(client, auth):
    response = client.put("/api/v1/customers/c-1", json=customer_body(locale="fr"), headers=auth)
    assert response.status_code == 422
    assert "locale" in response.json["errors"]["json"]


def test_get_unknown_customer_is_404(client, auth):
    response = client.get("/api/v1/customers/nobody", headers=auth)
    assert response.status_code == 404
    assert "nobody" in response.json["message"]


def test_body_that_is_not_json_is_a_clear_error(client, auth):
    response = client.put(
        "/api/v1/customers/c-1", data="{oops", headers=auth | {"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.is_json


def _put_chunked(client, auth, body):
    """A PUT whose body comes without Content-Length (Transfer-Encoding: chunked, decoded by the
    server, as gunicorn does)."""
    return client.put(
        "/api/v1/customers/c-1",
        input_stream=io.BytesIO(json.dumps(body).encode()),
        headers=auth | {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_oversized_chunked_body_is_413_and_nothing_is_stored(app, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = _put_chunked(client, auth, customer_body(name="x" * 5000))
    assert response.status_code == 413
    assert response.is_json
    assert client.get("/api/v1/customers/c-1", headers=auth).status_code == 404


def test_chunked_body_within_the_limit_is_taken_whole(app, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = _put_chunked(client, auth, customer_body(name="x" * 150))
    assert response.status_code == 201, response.json
    assert client.get("/api/v1/customers/c-1", headers=auth).json["name"] == "x" * 150


def test_oversized_body_is_413(app, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.put(
        "/api/v1/customers/c-1", json=customer_body(name="x" * 5000), headers=auth
    )
    assert response.status_code == 413
    assert response.is_json
