"""Email addresses as they go on the wire, including internationalised ones.

A domain outside ASCII (``hanako@例え.jp``) has an ASCII form (IDNA 2008 with UTS #46 mapping,
``xn--r8jz45g.jp``; Python's own ``idna`` codec is IDNA 2003, which maps ``faß.de`` to another
domain, ``fass.de``) that every server accepts, so it is written that way in the envelope and
the headers alike. A local part outside ASCII (``jösé@example.com``) has none: it can only be
sent to a server that offers SMTPUTF8 (RFC 6531), with the header left in UTF-8 (RFC 6532).
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import formataddr, parseaddr, unquote
from functools import lru_cache
from urllib.parse import urlsplit

import idna


class UndeliverableAddress(ValueError):
    """An address that cannot be written for SMTP: no retry would help."""


@lru_cache(maxsize=1024)
def wire_address(address: str) -> str:
    """The bare address (``a@b``) with its domain in ASCII; raises UndeliverableAddress if
    the domain has no such form, or there is no address at all. ``address`` may carry a
    display name (``Name <a@b>``)."""
    if not address.isascii() or "<" in address or " " in address:
        address = parseaddr(address)[1] or address
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise UndeliverableAddress(f"{address!r} is not an email address")
    try:
        return f"{local}@{_ascii_domain(domain)}"
    except (idna.IDNAError, UnicodeError) as error:
        raise UndeliverableAddress(f"{address!r}: its domain has no ASCII form ({error})") from None


def _ascii_domain(domain: str) -> str:
    """``domain`` as it is written on the wire (IDNA 2008); raises ``idna.IDNAError`` or
    ``UnicodeError`` for one that has no such form."""
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def needs_smtputf8(*addresses: str) -> bool:
    """Whether these (wire) addresses can only be sent with SMTPUTF8."""
    return not all(a.isascii() for a in addresses)


@lru_cache(maxsize=256)
def header_address(value: str) -> str:
    """An address header's value for ``value`` (``"Name <a@b>"`` or a bare address): the name
    as RFC 2047 encoded-words, the domain in ASCII. An address that cannot be written is left
    as it is, for the transport to refuse."""
    if value.isascii() and "<" not in value and "," not in value and " " not in value:
        return value  # a bare address
    name, address = parseaddr(value)
    if not address:
        return value
    try:
        address = wire_address(address)
    except UndeliverableAddress:
        return value
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    # Only an SMTPUTF8 server will take it, and there the header is UTF-8 too (RFC 6532).
    local, _, domain = address.rpartition("@")
    return str(Address(display_name=name, username=unquote(local), domain=domain))


@lru_cache(maxsize=16)
def message_id_domain(base_url: str) -> str:
    """The domain our Message-IDs end in: the service's own host, in ASCII (a Message-ID is
    a header an ASCII-only server must take too)."""
    host = urlsplit(base_url).hostname or "localhost"
    try:
        return _ascii_domain(host)
    except (idna.IDNAError, UnicodeError):
        return "localhost"
