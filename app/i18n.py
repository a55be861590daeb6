"""Translations (Flask-Babel): customer-facing text in Japanese and English.

Catalogues live in ``app/translations``; ``make translations`` extracts and compiles them. The
language of a customer page is the customer's own (set by the view in ``g.locale``), else the
browser's preference, else Japanese.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates
from flask import Flask, g, request
from flask_babel import Babel, format_date, get_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

LOCALES = ("ja", "en")


def select_locale() -> str:
    chosen = g.get("locale")
    if chosen in LOCALES:
        return str(chosen)
    if request:
        return request.accept_languages.best_match(LOCALES) or LOCALES[0]
    return LOCALES[0]


def format_date_long(day: date | None) -> str:
    return str(format_date(day, format="long")) if day is not None else ""


def format_time_short(moment: datetime | None) -> str:
    """A time of day in the zone the view chose (``g.timezone``: the customer's)."""
    if moment is None:
        return ""
    zone = ZoneInfo(g.get("timezone") or "UTC")
    return str(dates.format_time(moment.astimezone(zone), format="short", locale=get_locale()))


def bound_gettext() -> dict[str, Any]:
    """``gettext`` for a template, bound to the current locale's catalogue, looked up once.

    Flask-Babel's template ``gettext`` finds the catalogue again on every call (dozens per
    page or email); a template context's ``gettext`` shadows it. Same "new style" semantics as
    Jinja's i18n extension: escaped in HTML templates, always %-formatted.
    """
    translate = get_translations().ugettext

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        result = translate(string)
        if context.eval_ctx.autoescape:
            result = Markup(result)  # noqa: S704 - our own catalogue, as Jinja's i18n does
        return result % variables  # type: ignore[no-any-return]

    return {"gettext": gettext}


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "ja")
    app.config["WTF_I18N_ENABLED"] = True
    Babel(app, locale_selector=select_locale)
    # The page's language as chosen (the customer's, else the browser's): for <html lang>.
    app.jinja_env.globals["page_locale"] = select_locale
    app.jinja_env.filters["format_date_long"] = format_date_long
    app.jinja_env.filters["format_time_short"] = format_time_short
    # Runs at every render, after the view has chosen the locale (or inside force_locale).
    app.context_processor(bound_gettext)
