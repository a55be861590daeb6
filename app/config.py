"""Typed settings read from ``KAIDOKI_*`` environment variables.

Every setting is parsed and checked when the app starts; a bad value stops start-up with a
message naming the variable, instead of failing later inside a request. The README's
configuration table lists the same fields in the same order.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    )


def setting_names() -> list[str]:
    """The environment variable of every setting, in declaration order (used by a README test)."""
    return [PREFIX + f.name.upper() for f in fields(Settings)]


def _parse_int(raw: str | None, name: str, errors: list[str]) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        errors.append(f"{PREFIX}{name} must be a whole number, not {raw!r}")
        return 0
    if value <= 0:
        errors.append(f"{PREFIX}{name} must be positive")
    return value


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
