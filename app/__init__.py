"""The application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask


def create_app(environ: Mapping[str, str] | None = None, instance_path: str | None = None) -> Flask:
    """Build the Flask app from ``environ`` (default: the process environment).

    Raises ``app.config.ConfigError`` when a ``KAIDOKI_*`` setting is unusable.
    """
    from app import admin, db, errors, health, i18n, metrics
    from app.api import init_api
    from app.cli import register_commands
    from app.config import SETTINGS_KEY, load_settings
    from app.links.views import bp as links_bp

    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    settings = load_settings(os.environ if environ is None else environ, Path(app.instance_path))
    app.extensions[SETTINGS_KEY] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        TESTING=settings.env == "test",
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    _configure_logging(settings.log_level)

    errors.init_app(app)
    db.init_app(app, settings.database_url)
    metrics.init_app(app)
    i18n.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(links_bp)
    init_api(app)
    admin.init_app(app)
    register_commands(app)
    return app


def _configure_logging(level: str) -> None:
    # Configured once per process; a second create_app (tests) only adjusts the level.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(level)
