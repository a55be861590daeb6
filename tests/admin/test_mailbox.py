"""The mailbox (no SMTP configured): staff read the emails that would have been sent."""

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import col

from app.db import get_session
from app.models import MailboxMessage
from tests.admin.conftest import csrf_token, sign_in
from tests.conftest import BASE_URL
from tests.factories import NOW, make_plan
from tests.prompt_links import send_prompt
from tests.scheduler.helpers import deliver, dispatch, parse


def _first_message_path(client) -> str:
    inbox = client.get("/admin/mailbox/")
    assert inbox.status_code == 200
    found = re.search(r'href="(/admin/mailbox/\d+)"', inbox.text)
    assert found is not None, inbox.text
    return found.group(1)


def test_anonymous_visitors_are_sent_to_the_login_page(app, client):
    send_prompt(app)
    response = client.get("/admin/mailbox/")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]
    assert client.get("/admin/mailbox/1/html").status_code == 302


def test_staff_read_a_sent_prompt_with_its_links_clickable(app, client, staff):
    links = send_prompt(app)
    assert sign_in(client).status_code == 302
    inbox = client.get("/admin/mailbox/")
    assert "1 emails were kept here" in inbox.text
    assert 'href="/admin/mailbox/"' in client.get("/admin/").text  # in the navigation
    page = client.get(_first_message_path(client)).text
    assert f'<a href="{BASE_URL}{links["p"]}">' in page
    assert "List-Unsubscribe-Post" in page


def test_the_html_part_is_framed_sandboxed_and_only_by_our_own_pages(app, client, staff):
    send_prompt(app)
    assert sign_in(client).status_code == 302
    path = _first_message_path(client)
    page = client.get(path)
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    html = client.get(path + "/html")
    assert html.status_code == 200
    assert html.mimetype == "text/html"
    assert "<html" in html.text.lower()
    policy = html.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox ") and "script-src" not in policy
    assert "frame-ancestors 'self'" in policy
    assert html.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_links_in_the_framed_html_part_open_the_top_window_but_the_email_is_unchanged(
    app, client, staff
):
    # The link pages refuse to be framed: in the frame, a click would show a browser error.
    send_prompt(app)
    assert sign_in(client).status_code == 302
    html = client.get(_first_message_path(client) + "/html")
    assert re.search(r"<head>\s*<base target=\"_top\">", html.text)
    assert "allow-top-navigation-by-user-activation" in html.headers["Content-Security-Policy"]
    with app.app_context():
        [message] = get_session().query(MailboxMessage).all()
    sent = parse(message.raw).get_body(preferencelist=("html",))
    assert sent is not None and "<base" not in sent.get_content()  # the email as sent


def test_a_missing_message_is_a_404(client, staff):
    assert sign_in(client).status_code == 302
    assert client.get("/admin/mailbox/99999").status_code == 404


def test_with_smtp_configured_there_is_no_mailbox(make_app, database_url):
    app = make_app(database_url, KAIDOKI_SMTP_URL="smtp://127.0.0.1:2525")
    client = app.test_client()
    assert client.get("/admin/mailbox/").status_code == 404
    assert client.get("/mailbox/").status_code == 404


def test_an_email_sent_again_from_the_deliveries_page_arrives_again(app, client, staff):
    send_prompt(app)
    with app.app_context():
        make_plan(get_session(), customer="c-2")
        get_session().commit()
    dispatch(app)
    deliver(app, NOW + timedelta(minutes=1))
    assert sign_in(client).status_code == 302
    first = client.get("/admin/mailbox/").text
    assert first.index("c-2@example.jp") < first.index("c-1@example.jp")  # latest first
    with app.app_context():
        oldest = get_session().query(MailboxMessage).order_by(col(MailboxMessage.id)).first()
        assert oldest is not None
        outbox_id = oldest.outbox_id
    token = csrf_token(client.get("/admin/deliveries").text)
    client.post(f"/admin/deliveries/{outbox_id}/replay", data={"csrf_token": token})
    deliver(app, datetime.now(UTC) + timedelta(minutes=1))  # the replay is due from now
    again = client.get("/admin/mailbox/").text
    assert again.index("c-1@example.jp") < again.index("c-2@example.jp")  # received again
    assert "2 emails were kept here" in again
