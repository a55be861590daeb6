"""Addresses as written on the wire: envelope (``wire_address``) and headers."""

import pytest

from app.mail.addresses import UndeliverableAddress, header_address, wire_address


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        ("c-1@example.jp", "c-1@example.jp"),
        ("Kaidoki <no-reply@shop.jp>", "no-reply@shop.jp"),
        ("買い時 <no-reply@例え.jp>", "no-reply@xn--r8jz45g.jp"),
        ("hans@faß.de", "hans@xn--fa-hia.de"),  # IDNA 2008, not fass.de
        ("jösé@example.com", "jösé@example.com"),  # only SMTPUTF8 can carry it
    ],
)
def test_the_envelope_gets_the_bare_address_with_an_ascii_domain(given, wire):
    assert wire_address(given) == wire


@pytest.mark.parametrize("given", ["no-reply", "a@-例え.jp", "@example.jp"])
def test_what_has_no_wire_form_is_refused_with_the_reason(given):
    with pytest.raises(UndeliverableAddress):
        wire_address(given)


@pytest.mark.parametrize(
    ("given", "header"),
    [
        ("pat@example.com", "pat@example.com"),
        ("山田 <a@例え.jp>", "=?utf-8?b?5bGx55Sw?= <a@xn--r8jz45g.jp>"),
        ("jösé@example.com", "jösé@example.com"),
        ('"jö sé"@example.com', '"jö sé"@example.com'),  # quoted once, not twice
        ('"Smith, Pat" <jösé@example.com>', '"Smith, Pat" <jösé@example.com>'),
    ],
)
def test_headers_keep_names_and_write_domains_in_ascii(given, header):
    assert header_address(given) == header
