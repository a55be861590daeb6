from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app import migrate


def test_migrations_upgrade_from_empty_and_downgrade_to_empty(new_database, database_url):
    url = new_database()
    migrate.upgrade(url)
    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {
        "customer",
        "product",
        "orders",
        "order_line",
        "plan",
        "api_client",
        "audit_log",
    } <= tables
    migrate.downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    # And up again: a downgrade must leave nothing behind that blocks the next upgrade.
    migrate.upgrade(url)
    assert "plan" in inspect(engine).get_table_names()
    engine.dispose()


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    engine.dispose()
    assert diff == []
