"""Staff accounts, signing in through the real login form, and a small shop with a forecast."""

import re
from datetime import UTC, date, datetime

import pytest

from app.db import get_session
from app.models import AdminRole
from app.services import admin_users, demo, forecasting

PASSWORD = "correct horse battery staple"
OPERATOR = "ops@example.jp"
VIEWER = "viewer@example.jp"
TODAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                    r'type="hidden" name="csrf_token" value="([^"]+)"')  # fmt: skip


@pytest.fixture
def staff(app):
    with app.app_context():
        for email, role in ((OPERATOR, AdminRole.OPERATOR), (VIEWER, AdminRole.VIEWER)):
            admin_users.create_user(get_session(), email, PASSWORD, role, "test", NOW)
        get_session().commit()


@pytest.fixture
def clock(monkeypatch):
    """The admin pages' clock, pinned to the day the shop's forecast was made."""
    monkeypatch.setattr("app.admin.views.utcnow", lambda: NOW)


@pytest.fixture
def shop(app, clock):
    """A small demo shop (customers, products, orders) with a fitted forecast."""
    with app.app_context():
        demo.load_demo(get_session(), TODAY, NOW, n_customers=20)
        forecasting.refit(get_session(), TODAY, NOW)
        get_session().commit()
    return app


def csrf_token(page_html: str) -> str:
    found = _TOKEN.search(page_html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1) or found.group(2)


def sign_in(client, email=OPERATOR, password=PASSWORD):
    token = csrf_token(client.get("/admin/login").text)
    return client.post("/admin/login", data={"email": email, "password": password,
                                             "csrf_token": token})  # fmt: skip


@pytest.fixture
def operator(client, staff):
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def viewer(client, staff):
    assert sign_in(client, VIEWER).status_code == 302
    return client
