"""Every customer-facing string has a Japanese translation, and the compiled catalogue is the
one the sources say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
JA = ROOT / "app/translations/ja/LC_MESSAGES"


def _plain(value: object) -> object:
    """Plural ids and strings come as tuples from .po files and lists from .mo files."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_every_extracted_string_is_translated_into_japanese(tmp_path):
    pot = tmp_path / "messages.pot"
    pybabel = str(Path(sys.executable).with_name("pybabel"))
    subprocess.run([pybabel, "-q", "extract", "-F", "babel.cfg", "-o", str(pot), "app"],
                   cwd=ROOT, check=True)  # fmt: skip
    with pot.open("rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    with (JA / "messages.po").open("rb") as f:
        catalog = read_po(f)
    missing = sorted(str(i) for i in extracted if i not in catalog or not catalog[i].string)
    assert missing == [], "run `make translations` and translate these"
    fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
    assert fuzzy == []


def test_the_compiled_catalogue_matches_the_po_file():
    with (JA / "messages.po").open("rb") as f:
        source = {_plain(m.id): _plain(m.string) for m in read_po(f) if m.id}
    with (JA / "messages.mo").open("rb") as f:
        compiled = {_plain(m.id): _plain(m.string) for m in read_mo(f) if m.id}
    assert compiled == source, "run `make translations` to recompile messages.mo"
