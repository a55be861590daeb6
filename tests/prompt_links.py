"""One sent prompt email's links, and a settable clock for the pages."""

import re
from datetime import timedelta

import pytest

from app.db import get_session
from tests.conftest import BASE_URL
from tests.factories import NOW, make_plan
from tests.scheduler.helpers import deliver, dispatch, mailbox, text_part


def send_prompt(app):
    """Make a plan due, send its prompt email; the email's prompt ("p"), manage ("m") and
    unsubscribe ("u") paths."""
    with app.app_context():
        make_plan(get_session())
        get_session().commit()
    dispatch(app)
    deliver(app)
    [message] = mailbox(app)
    urls = re.findall(re.escape(BASE_URL) + r"(/l/[pmu]/\S+)", text_part(message))
    return {url[3]: url for url in urls}


@pytest.fixture
def links(app):
    """The prompt, manage and unsubscribe paths of one sent prompt email."""
    return send_prompt(app)


@pytest.fixture
def at_now(monkeypatch):
    """Pin the clock the pages read (they are entry points) to a settable moment."""
    clock = {"now": NOW + timedelta(minutes=1)}
    monkeypatch.setattr("app.links.views.utcnow", lambda: clock["now"])
    return clock
