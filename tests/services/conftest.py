"""A small shop with a fitted model, for the tests of the services that forecast."""

from datetime import UTC, date, datetime

import pytest

from app.db import get_session
from app.services import demo, forecasting

TODAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo, the shop's zone


@pytest.fixture
def shop(app):
    """A small demo shop with a fitted model."""
    with app.app_context():
        session = get_session()
        demo.load_demo(session, TODAY, NOW, n_customers=20)
        forecasting.refit(session, TODAY, NOW)
        session.commit()
    return app
