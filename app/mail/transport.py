"""Where built messages go: an SMTP server, or (no SMTP configured) the database mailbox."""

from __future__ import annotations

import smtplib
import ssl
from email import message_from_string
from email.header import decode_header, make_header
from types import TracebackType

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.config import SmtpSettings
from app.db import table_of
from app.models import MailboxMessage

SMTP_TIMEOUT_SECONDS = 30


class SmtpTransport:
    """One SMTP connection reused for many messages, opened on first use.

    A dropped connection is reopened once per message; any other failure raises
    ``smtplib.SMTPException`` or ``OSError`` for the caller to record as a failed attempt.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, mail_from: str, to: str, raw: str) -> None:
        data = raw.encode("utf-8")
        try:
            self._connection().sendmail(mail_from, [to], data)
        except smtplib.SMTPServerDisconnected:
            self.close()
            self._connection().sendmail(mail_from, [to], data)

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            s = self.settings
            conn: smtplib.SMTP
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=SMTP_TIMEOUT_SECONDS,
                                        context=ssl.create_default_context())  # fmt: skip
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=SMTP_TIMEOUT_SECONDS)
                if s.security == "starttls":
                    conn.starttls(context=ssl.create_default_context())
            if s.username:
                conn.login(s.username, s.password or "")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._conn = None


def store_in_mailbox(session: Session, outbox_id: int, to: str, raw: str, now: object) -> None:
    """Keep the message in the database mailbox (once per outbox message, even if repeated)."""
    subject = str(make_header(decode_header(message_from_string(raw).get("Subject", ""))))
    values = {"outbox_id": outbox_id, "recipient": to, "subject": subject[:500], "raw": raw,
              "received_at": now}  # fmt: skip
    table = table_of(MailboxMessage)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    session.execute(insert.values(values).on_conflict_do_nothing(index_elements=["outbox_id"]))
