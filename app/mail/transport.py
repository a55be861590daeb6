"""Where built messages go: an SMTP server, or (no SMTP configured) the database mailbox."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Callable
from email import message_from_string
from email.header import decode_header, make_header
from types import TracebackType

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.config import SmtpSettings
from app.db import table_of
from app.mail.addresses import UndeliverableAddress, needs_smtputf8, wire_address
from app.models import MailboxMessage

SMTP_TIMEOUT_SECONDS = 30


class SmtpTransport:
    """One SMTP connection reused for many messages, opened on first use.

    A connection found dropped before a message's sender is accepted is reopened once per
    message. Any other failure raises ``smtplib.SMTPException`` or ``OSError`` for the caller
    to record as a failed attempt, or ``UndeliverableAddress`` for an address no retry helps.
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

    def send(
        self, mail_from: str, to: str, raw: str, while_waiting: Callable[[], None] | None = None
    ) -> None:
        """Send one message; ``while_waiting`` runs once, while the server answers its MAIL
        FROM (before anything of this message is delivered), or before the error if the
        send fails earlier.

        The caller records the previous message's delivery there: between two messages the
        server would sit idle while it did, and on one connection that is the pace of every
        email. A crash in between still repeats at most that one message."""
        data = raw.encode("utf-8")
        waiting = [while_waiting] if while_waiting is not None else []

        def once() -> None:
            while waiting:
                waiting.pop()()

        try:
            try:
                _sendmail(self._connection(), mail_from, to, data, once)
            except _Stale:
                self.close()
                _sendmail(self._connection(), mail_from, to, data, once)
        finally:
            once()

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


class _Stale(smtplib.SMTPServerDisconnected):
    """The connection was gone before the server accepted this message's sender: nothing of
    the message reached it, so sending it again on a new connection cannot repeat it."""


def _sendmail(
    conn: smtplib.SMTP, mail_from: str, to: str, data: bytes, while_waiting: Callable[[], None]
) -> None:
    """``smtplib.SMTP.sendmail`` for one recipient, reading the MAIL FROM reply only after
    ``while_waiting`` has run, and with SMTPUTF8 for an address that needs it.

    Raises _Stale if the server hung up (or said it would, 421) before accepting the sender:
    an idle connection it closed. UndeliverableAddress if the recipient's address cannot be
    given to this server at all. A server that hangs up later, perhaps after taking the
    message, raises ``SMTPServerDisconnected``: the outbox tries again later, with the same
    Message-ID.
    """
    sender, recipient = wire_address(mail_from), wire_address(to)
    try:
        conn.ehlo_or_helo_if_needed()
        options = [f"size={len(data)}"] if conn.does_esmtp and conn.has_extn("size") else []
        if needs_smtputf8(sender, recipient):
            if not conn.has_extn("smtputf8"):
                if needs_smtputf8(sender):  # the configuration's, not this email's, problem
                    raise smtplib.SMTPNotSupportedError(
                        f"the sender {sender!r} needs SMTPUTF8, which the SMTP server lacks"
                    )
                raise UndeliverableAddress(
                    f"{recipient!r} needs SMTPUTF8, which the SMTP server does not offer"
                )
            options.append("SMTPUTF8")
            if conn.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")  # the UTF-8 headers are 8-bit
            conn.command_encoding = "utf-8"  # as smtplib.SMTP.mail does; reset below
        conn.putcmd("mail", " ".join([f"FROM:{smtplib.quoteaddr(sender)}", *options]))
        while_waiting()
        code, reply = conn.getreply()
        if code == 421:  # closing (an idle timeout, say): nothing of this email was taken
            conn.close()
            raise smtplib.SMTPServerDisconnected(f"{code} {reply.decode(errors='replace')}")
    except smtplib.SMTPServerDisconnected as error:
        raise _Stale(*error.args) from error
    try:
        if code != 250:
            _abandon(conn, code)
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = conn.rcpt(recipient)
        if code not in (250, 251):
            _abandon(conn, code)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = conn.data(data)
        if code != 250:
            _abandon(conn, code)
            raise smtplib.SMTPDataError(code, reply)
    finally:
        conn.command_encoding = "ascii"


def _abandon(conn: smtplib.SMTP, code: int) -> None:
    # As sendmail does: 421 means the server is closing the connection; otherwise reset the
    # mail transaction, ignoring a server that hung up meanwhile (the refusal is the error).
    if code == 421:
        conn.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()


def store_in_mailbox(session: Session, outbox_id: int, to: str, raw: str, now: object) -> None:
    """Keep the message in the database mailbox: one copy per outbox message, received again
    (its time renewed, so it tops the mailbox) when the message is sent again after a replay
    or a retry."""
    subject = str(make_header(decode_header(message_from_string(raw).get("Subject", ""))))
    values = {"outbox_id": outbox_id, "recipient": to, "subject": subject[:500], "raw": raw,
              "received_at": now}  # fmt: skip
    table = table_of(MailboxMessage)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    again = {"received_at": now, "raw": raw, "subject": values["subject"], "recipient": to}
    session.execute(
        insert.values(values).on_conflict_do_update(index_elements=["outbox_id"], set_=again)
    )
