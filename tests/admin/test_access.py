"""Who may see and change what on the admin pages, and how sign-in resists abuse."""

import pytest
from sqlmodel import col

from app.db import get_session
from app.models import AuditLog, Product
from tests.admin.conftest import OPERATOR, PASSWORD, VIEWER, csrf_token, sign_in

PAGES = ["/admin/", "/admin/products", "/admin/deliveries", "/admin/audit"]


@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_signing_in_shows_the_dashboard_with_strict_security_headers(client, staff):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/admin/")
    assert page.status_code == 200 and OPERATOR in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client, staff):
    wrong_password = sign_in(client, OPERATOR, "not the password")
    unknown_email = sign_in(client, "nobody@example.jp", PASSWORD)
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert "Wrong email or password." in response.text
    assert client.get("/admin/").status_code == 302


def test_after_five_failures_even_the_right_password_waits(client, staff):
    for _ in range(5):
        assert sign_in(client, OPERATOR, "guess").status_code == 401
    refused = sign_in(client, OPERATOR, PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert sign_in(client, VIEWER, PASSWORD).status_code == 302  # other accounts are not locked


def test_login_never_redirects_to_another_site(client, staff):
    token = csrf_token(client.get("/admin/login").text)
    form = {"email": OPERATOR, "password": PASSWORD, "csrf_token": token}
    response = client.post("/admin/login?next=https://evil.example/admin", data=form)
    assert response.headers["Location"] == "/admin/"


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(shop, operator):
    with shop.app_context():
        product = get_session().query(Product).order_by(col(Product.id)).first()
        assert product is not None
        before = product.lead_time_days
    response = operator.post(f"/admin/products/{product.id}",
                             data={"action": "save", "lead_time_days": before + 5})  # fmt: skip
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "The CSRF token is missing." in response.text
    with shop.app_context():
        assert get_session().get_one(Product, product.id).lead_time_days == before


def test_admin_errors_are_pages_and_api_errors_stay_json(client, operator):
    missing = operator.get("/admin/products/999999")
    assert (missing.status_code, missing.mimetype) == (404, "text/html")
    assert "<h1>Not Found (404)</h1>" in missing.text
    assert "Back to the dashboard" in missing.text
    bad_filter = operator.get("/admin/deliveries?status=lost")
    assert (bad_filter.status_code, bad_filter.mimetype) == (400, "text/html")
    assert "Unknown status or kind: choose one from the filters on this page." in bad_filter.text
    api = client.get("/api/v1/no-such-thing")
    assert (api.status_code, api.mimetype) == (404, "application/json")


def test_a_customer_page_that_does_not_exist_is_a_friendly_page(client):
    page = client.get("/l/x/whatever")
    assert (page.status_code, page.mimetype) == (404, "text/html")
    assert '<html lang="ja">' in page.text
    assert "このページは存在しません" in page.text
    wrong_method = client.delete("/l/p/some-token")
    assert wrong_method.status_code == 405
    assert "このリクエストは処理できませんでした" in wrong_method.text


def test_a_viewer_reads_every_page_but_cannot_change_anything(shop, viewer):
    for path in PAGES:
        assert viewer.get(path).status_code == 200
    with shop.app_context():
        product = get_session().query(Product).order_by(col(Product.id)).first()
    assert product is not None
    page = viewer.get(f"/admin/products/{product.id}")
    assert "Viewers cannot change settings." in page.text
    token = csrf_token(page.text)
    form = {"csrf_token": token, "action": "save", "default_interval_days": 10,
            "min_interval_days": 2, "max_interval_days": 90, "lead_time_days": 9,
            "target_stockout_risk": "0.2", "prompt_expiry_days": 5}  # fmt: skip
    assert viewer.post(f"/admin/products/{product.id}", data=form).status_code == 403
    assert viewer.post("/admin/deliveries/1/replay", data={"csrf_token": token}).status_code == 403
    with shop.app_context():
        assert get_session().get_one(Product, product.id).lead_time_days == product.lead_time_days
        assert get_session().query(AuditLog).filter_by(action="update_settings").count() == 0


def test_signing_out_ends_the_session(operator):
    token = csrf_token(operator.get("/admin/").text)
    assert operator.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert operator.get("/admin/").status_code == 302


def test_create_user_reads_the_password_from_standard_input(app, runner):
    result = runner.invoke(args=["admin", "create-user", "New@Example.jp", "--role", "viewer"],
                           input=PASSWORD + "\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "admin user new@example.jp (viewer) created" in result.output
    assert PASSWORD not in result.output
    client = app.test_client()
    assert sign_in(client, "new@example.jp", PASSWORD).status_code == 302


def test_create_user_refuses_a_short_password_and_a_taken_email(app, runner, staff):
    short = runner.invoke(args=["admin", "create-user", "a@example.jp", "--role", "operator"],
                          input="short\n")  # fmt: skip
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    taken = runner.invoke(args=["admin", "create-user", OPERATOR, "--role", "viewer"],
                          input=PASSWORD + "\n")  # fmt: skip
    assert taken.exit_code == 1 and "already has an account" in taken.output
