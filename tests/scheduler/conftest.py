"""Real stand-ins for what lies outside the system: an SMTP server (aiosmtpd) and the shop's
webhook receiver (a small HTTP server), plus bulk due prompts for the reliability tests."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from app.db import table_of
from app.models import Customer, Plan, PlanStatus, Product, Prompt, PromptStatus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Inbox:
    """What the SMTP server received, in arrival order."""

    messages: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)  # each message's RCPT TO
    senders: list[str] = field(default_factory=list)  # each message's MAIL FROM
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Headers are read once, on arrival: tests poll message_ids() while mail streams in.
        message_id = str(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"]).strip()
        with self.lock:
            self.messages.append(envelope.content)
            self.ids.append(message_id)
            self.recipients.append(list(envelope.rcpt_tos))
            self.senders.append(envelope.mail_from)
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return list(self.ids)


class SmtpServer:
    """aiosmtpd on a fixed local port that can be stopped and started again."""

    def __init__(self, smtputf8: bool = False) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.smtputf8 = smtputf8
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=self.smtputf8)  # fmt: skip
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    """The SMTP server; ``indirect`` parametrisation with True offers SMTPUTF8."""
    server = SmtpServer(smtputf8=getattr(request, "param", False))
    server.start()
    yield server
    server.stop()


@dataclass
class Receiver:
    """The shop's webhook endpoint: answers ``fail_with`` until told otherwise, or redirects
    to ``moved_to`` (where a GET is answered 200: what a redirect-following client gets)."""

    fail_with: int | None = None
    moved_to: str | None = None
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 301 if state.moved_to else state.fail_with or 204
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
            self.send_response(status)
            if state.moved_to:
                self.send_header("Location", state.moved_to)
            self.end_headers()

        def do_GET(self) -> None:
            state.gets.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/kaidoki"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def insert_due_prompts(
    engine: Engine, n: int, due_at: datetime, locales: tuple[str, ...] = ("ja",)
) -> None:
    """``n`` customers, each with one plan and one prompt due at ``due_at`` (bulk inserts);
    the customers' languages take turns from ``locales``."""
    now = datetime.now(UTC)
    stamps = {"created_at": now, "updated_at": now}
    with engine.begin() as conn:
        conn.execute(insert(table_of(Product)).values(external_id="p-1", name="洗剤", **stamps))
        conn.execute(
            insert(table_of(Customer)),
            [{"external_id": f"c-{i}", "email": f"c{i}@example.jp",
              "locale": locales[i % len(locales)],
              "timezone": "Asia/Tokyo", "is_placeholder": False, "link_version": 0, **stamps}
             for i in range(1, n + 1)],
        )  # fmt: skip
        conn.execute(
            insert(table_of(Plan)),
            [{"customer_id": i, "product_id": 1, "status": PlanStatus.ACTIVE.value,
              "n_purchases": 2, "total_quantity": 2, "last_ordered_on": date(2026, 10, 1),
              "last_quantity": 1, **stamps}
             for i in range(1, n + 1)],
        )  # fmt: skip
        conn.execute(
            insert(table_of(Prompt)),
            [{"plan_id": i, "customer_id": i, "status": PromptStatus.SCHEDULED.value,
              "due_at": due_at - timedelta(minutes=1), "nonce": secrets.token_hex(16),
              "quantity": 1, **stamps}
             for i in range(1, n + 1)],
        )  # fmt: skip
