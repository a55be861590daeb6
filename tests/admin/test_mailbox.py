"""The mailbox (no SMTP configured): staff read the emails that would have been sent."""

import re

from tests.admin.conftest import sign_in
from tests.conftest import BASE_URL
from tests.prompt_links import send_prompt


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


def test_a_missing_message_is_a_404(client, staff):
    assert sign_in(client).status_code == 302
    assert client.get("/admin/mailbox/99999").status_code == 404


def test_with_smtp_configured_there_is_no_mailbox(make_app, database_url):
    app = make_app(database_url, KAIDOKI_SMTP_URL="smtp://127.0.0.1:2525")
    client = app.test_client()
    assert client.get("/admin/mailbox/").status_code == 404
    assert client.get("/mailbox/").status_code == 404
