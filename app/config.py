"""Typed settings read from ``KAIDOKI_*`` environment variables.

Every setting is parsed and checked when the app starts; a bad value stops start-up with a
message naming the variable, instead of failing later inside a request. The README's
configuration table lists the same fields in the same order.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.mail.addresses import UndeliverableAddress, wire_address

PREFIX = "KAIDOKI_"
SETTINGS_KEY = "kaidoki.settings"
ENVIRONMENTS = ("production", "demo", "test")


class ConfigError(RuntimeError):
    """Raised at start-up when the environment holds an unusable setting."""


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    secret_key: str
    base_url: str
    default_timezone: str
    log_level: str
    max_request_bytes: int
    idempotency_hours: int
    smtp_url: SmtpSettings | None
    mail_from: str
    webhook_url: str | None
    webhook_secret: str | None
    webhook_retry_hours: int
    quiet_hours: tuple[int, int]
    default_send_hour: int
    max_prompts_per_week: int
    undo_minutes: int
    link_max_age_days: int


@dataclass(frozen=True)
class SmtpSettings:
    """Where email goes: ``smtp://`` (plain, for a local relay), ``smtp+starttls://`` or
    ``smtps://`` (implicit TLS), with optional ``user:password@``."""

    host: str
    port: int
    security: str  # "none", "starttls" or "tls"
    username: str | None
    password: str | None


def load_settings(environ: Mapping[str, str], instance_path: Path) -> Settings:
    """Parse the ``KAIDOKI_*`` variables of ``environ``.

    Raises ConfigError listing every bad or missing variable at once. In ``demo`` mode a
    missing secret key is generated once and kept in the instance folder, so links in demo
    emails survive a restart; in ``production`` it must be given.
    """
    errors: list[str] = []

    def get(name: str, default: str | None = None) -> str | None:
        value = environ.get(PREFIX + name)
        return value if value not in (None, "") else default

    env = get("ENV", "production") or "production"
    if env not in ENVIRONMENTS:
        errors.append(f"{PREFIX}ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")

    default_db = "sqlite:///" + str(instance_path / "kaidoki.sqlite3")
    database_url = get("DATABASE_URL", default_db) or default_db
    if not database_url.startswith(("sqlite:", "postgresql")):
        errors.append(f"{PREFIX}DATABASE_URL must be a sqlite:// or postgresql:// URL")
    elif database_url.startswith("postgresql://"):
        # SQLAlchemy's bare postgresql:// means psycopg2; we ship psycopg 3.
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")

    secret_key = get("SECRET_KEY")
    if secret_key is None:
        if env == "production":
            errors.append(f"{PREFIX}SECRET_KEY is required (at least 32 characters)")
        else:
            secret_key = _instance_secret(instance_path)
    elif len(secret_key) < 32:
        errors.append(f"{PREFIX}SECRET_KEY must be at least 32 characters long")

    base_url = get("BASE_URL")
    if base_url is None:
        if env == "production":
            errors.append(f"{PREFIX}BASE_URL is required (the public URL used in email links)")
        base_url = "http://127.0.0.1:5000"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors.append(f"{PREFIX}BASE_URL must be an absolute http(s) URL, not {base_url!r}")

    default_timezone = get("DEFAULT_TIMEZONE", "Asia/Tokyo") or "Asia/Tokyo"
    try:
        ZoneInfo(default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{PREFIX}DEFAULT_TIMEZONE {default_timezone!r} is not an IANA time zone")

    log_level = (get("LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        errors.append(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    max_request_bytes = _parse_int(get("MAX_REQUEST_BYTES", "8388608"), "MAX_REQUEST_BYTES", errors)
    idempotency_hours = _parse_int(get("IDEMPOTENCY_HOURS", "24"), "IDEMPOTENCY_HOURS", errors)

    delivery = _delivery_settings(get, env, parts.hostname or "localhost", errors)

    if errors:
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(errors))
    assert secret_key is not None
    return Settings(
        env=env,
        database_url=database_url,
        secret_key=secret_key,
        base_url=base_url.rstrip("/"),
        default_timezone=default_timezone,
        log_level=log_level,
        max_request_bytes=max_request_bytes,
        idempotency_hours=idempotency_hours,
        **delivery,
    )


def _delivery_settings(
    get: Callable[[str, str | None], str | None], env: str, host: str, errors: list[str]
) -> dict[str, Any]:
    """The email, webhook and prompt-timing settings (the Settings fields after the core ones)."""
    smtp = _parse_smtp(get("SMTP_URL", None), errors)
    if smtp is None and env == "production":
        errors.append(f"{PREFIX}SMTP_URL is required (the demo keeps mail in a database mailbox)")
    mail_from = get("MAIL_FROM", f"Kaidoki <no-reply@{host}>") or ""
    try:
        wire_address(mail_from)
    except UndeliverableAddress:
        errors.append(f"{PREFIX}MAIL_FROM must be an email address (perhaps with a name: "
                      f"Shop <no-reply@shop.example>), not {mail_from!r}")  # fmt: skip

    webhook_url = get("WEBHOOK_URL", None)
    webhook_secret = get("WEBHOOK_SECRET", None)
    if webhook_url is not None:
        hook = urlsplit(webhook_url)
        if hook.scheme not in ("http", "https") or not hook.netloc:
            errors.append(f"{PREFIX}WEBHOOK_URL must be an absolute http(s) URL")
        if webhook_secret is None:
            errors.append(f"{PREFIX}WEBHOOK_SECRET is required with {PREFIX}WEBHOOK_URL")
    if webhook_secret is not None and not _is_webhook_secret(webhook_secret):
        errors.append(
            f"{PREFIX}WEBHOOK_SECRET must be 'whsec_' followed by base64 of 24 to 64 random bytes"
        )
    webhook_retry_hours = _parse_int(
        get("WEBHOOK_RETRY_HOURS", "24"), "WEBHOOK_RETRY_HOURS", errors
    )

    quiet_hours = _parse_quiet_hours(get("QUIET_HOURS", "21-8") or "", errors)
    default_send_hour = _parse_int(
        get("DEFAULT_SEND_HOUR", "10"), "DEFAULT_SEND_HOUR", errors, minimum=0
    )
    if not _hour_allowed(default_send_hour, quiet_hours):
        errors.append(f"{PREFIX}DEFAULT_SEND_HOUR must be a whole hour outside the quiet hours")
    max_prompts_per_week = _parse_int(
        get("MAX_PROMPTS_PER_WEEK", "2"), "MAX_PROMPTS_PER_WEEK", errors
    )
    undo_minutes = _parse_int(get("UNDO_MINUTES", "5"), "UNDO_MINUTES", errors, minimum=0)
    link_max_age_days = _parse_int(get("LINK_MAX_AGE_DAYS", "30"), "LINK_MAX_AGE_DAYS", errors)

    return {
        "smtp_url": smtp,
        "mail_from": mail_from,
        "webhook_url": webhook_url,
        "webhook_secret": webhook_secret,
        "webhook_retry_hours": webhook_retry_hours,
        "quiet_hours": quiet_hours,
        "default_send_hour": default_send_hour,
        "max_prompts_per_week": max_prompts_per_week,
        "undo_minutes": undo_minutes,
        "link_max_age_days": link_max_age_days,
    }


def setting_names() -> list[str]:
    """The environment variable of every setting, in declaration order (used by a README test)."""
    return [PREFIX + f.name.upper() for f in fields(Settings)]


def _parse_int(raw: str | None, name: str, errors: list[str], minimum: int = 1) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        errors.append(f"{PREFIX}{name} must be a whole number, not {raw!r}")
        return 0
    if value < minimum:
        errors.append(f"{PREFIX}{name} must be at least {minimum}")
    return value


_SMTP_SCHEMES = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


def _parse_smtp(raw: str | None, errors: list[str]) -> SmtpSettings | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    scheme = _SMTP_SCHEMES.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme is None or not parts.hostname or port == -1:
        errors.append(
            f"{PREFIX}SMTP_URL must look like smtp+starttls://user:password@host:587 "
            "(schemes: smtp, smtp+starttls, smtps)"
        )
        return None
    return SmtpSettings(
        host=parts.hostname,
        port=port or scheme[1],
        security=scheme[0],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _is_webhook_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def _parse_quiet_hours(raw: str, errors: list[str]) -> tuple[int, int]:
    """ "21-8": no email from 21:00 until 08:00 in the customer's time zone."""
    start, sep, end = raw.partition("-")
    digits = sep and start.isdigit() and end.isdigit()
    if digits and int(start) < 24 and int(end) < 24 and int(start) != int(end):
        return int(start), int(end)
    errors.append(f"{PREFIX}QUIET_HOURS must look like 21-8 (from hour, until hour), not {raw!r}")
    return 21, 8


def _hour_allowed(hour: int, quiet_hours: tuple[int, int]) -> bool:
    start, end = quiet_hours
    # A quiet period may wrap past midnight (21-8) or not (1-6).
    quiet = (start <= hour or hour < end) if start > end else (start <= hour < end)
    return 0 <= hour < 24 and not quiet


def allowed_hours(quiet_hours: tuple[int, int]) -> list[int]:
    """The local hours at which email may go out."""
    return [h for h in range(24) if _hour_allowed(h, quiet_hours)]


def _instance_secret(instance_path: Path) -> str:
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created with owner-only permissions: the key signs customer links.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def current_settings() -> Settings:
    """The settings of the running app (inside an app context)."""
    from flask import current_app

    settings: Settings = current_app.extensions[SETTINGS_KEY]
    return settings
