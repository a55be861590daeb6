"""Shared fixtures: the app on SQLite (default) or on a real PostgreSQL (``--db=postgres``).

The PostgreSQL run selects only the tests that touch the database; ``make test`` runs both.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from app import create_app, migrate
from app.db import get_engine, get_session
from app.services.api_keys import create_api_key
from tests import pg_server

pytest_plugins = ["tests.prompt_links"]

SECRET = "test-secret-key-that-is-long-enough-0123456789"
BASE_URL = "https://kaidoki.example.test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default=os.environ.get("KAIDOKI_TEST_DB", "sqlite"),
        help="database backend for the tests that use one",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") != "postgres":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        uses_db = "new_database" in getattr(item, "fixturenames", ())
        (keep if uses_db else drop).append(item)
        if uses_db:
            item.add_marker(pytest.mark.postgres)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def db_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.config.getoption("--db")
    return backend


@pytest.fixture(scope="session")
def new_database(
    db_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the selected backend; returns their URLs."""
    counter = itertools.count()
    if db_backend == "sqlite":
        folder = tmp_path_factory.mktemp("sqlite")
        yield lambda: f"sqlite:///{folder / f'db{next(counter)}.sqlite3'}"
        return
    server = pg_server.start()
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")

    def make() -> str:
        name = f"kaidoki_test_{next(counter)}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        return server.url(name)

    try:
        yield make
    finally:
        admin.dispose()
        server.stop()


@pytest.fixture(scope="session")
def database_url(new_database: Callable[[], str]) -> str:
    """The shared test database, migrated to head once per session."""
    url = new_database()
    migrate.upgrade(url)
    return url


def app_environ(database_url: str, **overrides: str) -> dict[str, str]:
    return {
        "KAIDOKI_ENV": "test",
        "KAIDOKI_DATABASE_URL": database_url,
        "KAIDOKI_SECRET_KEY": SECRET,
        "KAIDOKI_BASE_URL": BASE_URL,
        "KAIDOKI_DEFAULT_TIMEZONE": "Asia/Tokyo",
    } | overrides


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(app_environ(database_url), instance_path=str(tmp_path / "instance"))
    yield app
    with app.app_context():
        _empty_tables(app)
        get_engine().dispose()


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Apps on other databases (e.g. a fresh, unmigrated one) or with other settings
    (``KAIDOKI_*`` overrides as keywords); engines closed afterwards."""
    made: list[Flask] = []

    def make(url: str, **overrides: str) -> Flask:
        environ = app_environ(url, **overrides)
        made.append(create_app(environ, instance_path=str(tmp_path / f"i{len(made)}")))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            get_engine().dispose()


def _empty_tables(app: Flask) -> None:
    engine = get_engine()
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            conn.execute(text("DELETE FROM sqlite_sequence"))  # ids restart, as on PostgreSQL


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def api_key(app: Flask) -> str:
    with app.app_context():
        session = get_session()
        key = create_api_key(session, "test-backend", datetime.now(UTC)).key
        session.commit()
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
