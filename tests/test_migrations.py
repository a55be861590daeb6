import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
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


def test_reorder_ids_are_never_reused_after_upgrading_a_sqlite_database(new_database, db_backend):
    if db_backend != "sqlite":
        pytest.skip("PostgreSQL's sequences never reuse ids")
    url = new_database()
    migrate.upgrade(url, "a7c3d9e1f250")
    engine = create_engine(url)  # foreign keys unenforced: bare rows are enough here
    stamp = "2026-12-01 00:00:00.000000"
    reorder = (
        "INSERT INTO reorder (id, prompt_id, plan_id, customer_id, product_id, quantity, "
        "status, confirmed_at, handoff_at, created_at, updated_at) VALUES "
        f"(:id, :id, 1, 1, 1, 1, 'pending', '{stamp}', '{stamp}', '{stamp}', '{stamp}')"
    )
    with engine.begin() as conn:
        conn.execute(text(reorder), [{"id": 1}, {"id": 2}])
        # Reorder 3 was confirmed and undone before: its row is gone, its webhook cancelled.
        conn.execute(text(
            "INSERT INTO outbox (kind, dedupe_key, status, event_type, recipient, payload, "
            f"attempts, available_at, created_at, updated_at) VALUES ('webhook', "
            f"'msg_reorder.confirmed_3', 'cancelled', 'reorder.confirmed', 'x', '{{}}', 0, "
            f"'{stamp}', '{stamp}', '{stamp}')"
        ))  # fmt: skip
    migrate.upgrade(url)
    with engine.begin() as conn:
        conn.execute(text(reorder.replace(":id, :id", "NULL, 10")))
        conn.execute(text("DELETE FROM reorder WHERE prompt_id = 10"))
        conn.execute(text(reorder.replace(":id, :id", "NULL, 11")))
        ids = conn.execute(text("SELECT id FROM reorder ORDER BY id")).scalars().all()
    engine.dispose()
    assert ids == [1, 2, 5]  # past the undone 3, and the deleted 4 is not given out again
