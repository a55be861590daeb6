"""Alembic environment: the target metadata is the SQLModel tables in app.models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # SQLModel's AutoString is a plain String; render it so that revisions need no sqlmodel.
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


_OPTIONS: dict[str, Any] = {
    "target_metadata": target_metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    "render_as_batch": True,
    "compare_type": True,
    "render_item": _render_item,
}


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    # Plain `alembic` run from the project folder: use the app's own setting.
    from app.config import load_settings

    instance = Path(__file__).resolve().parent.parent / "instance"
    return load_settings(os.environ, instance).database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    section = {"sqlalchemy.url": _url()}
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection: object) -> None:
    context.configure(connection=connection, **_OPTIONS)  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
