"""``db.Prepared``: statements run on the driver's cursor behave as through SQLAlchemy; pooled
connections the database server closed are not handed out."""

import time

import psycopg
import pytest
from sqlalchemy import bindparam, create_engine, insert, text, update
from sqlalchemy.exc import IntegrityError

from app import db
from app.db import Prepared, get_engine, get_session, table_of
from app.models import Customer, Locale
from tests.factories import NOW

_customer = table_of(Customer)
_COLUMNS = ("external_id", "timezone", "locale", "is_placeholder", "link_version", "created_at",
            "updated_at")  # fmt: skip
_ADD = Prepared(insert(_customer).values({name: bindparam(name) for name in _COLUMNS}).inline())
_RENAME = Prepared(
    update(_customer)
    .where(_customer.c.external_id == bindparam("external_id"))
    .values(name=bindparam("name"))
)


def _add(session, external_id):
    _ADD.execute(session, {"external_id": external_id, "timezone": "Asia/Tokyo",
                           "locale": Locale.EN, "is_placeholder": False, "link_version": 0,
                           "created_at": NOW, "updated_at": NOW})  # fmt: skip


def test_written_values_read_back_as_the_orm_writes_them_and_count_the_rows(app):
    with app.app_context():
        session = get_session()
        _add(session, "c-1")
        assert _RENAME.execute(session, {"external_id": "c-1", "name": "山田"}) == 1
        assert _RENAME.execute(session, {"external_id": "nobody", "name": "x"}) == 0
        session.commit()
        [customer] = session.query(Customer).all()
        assert (customer.name, customer.locale, customer.created_at) == ("山田", Locale.EN, NOW)


def test_a_violated_constraint_is_sqlalchemys_integrity_error_and_rolls_back(app):
    with app.app_context():
        session = get_session()
        _add(session, "c-1")
        with pytest.raises(IntegrityError):
            _add(session, "c-1")
        session.rollback()
        assert session.query(Customer).count() == 0


def test_a_statement_that_needs_python_side_defaults_is_refused(app):
    """SQLAlchemy fills those in while it executes; run here they would be NULL."""
    missing = Prepared(insert(_customer).values(external_id=bindparam("external_id")).inline())
    with app.app_context(), pytest.raises(ValueError, match="link_version"):
        missing.execute(get_session(), {"external_id": "c-1"})


def test_pooled_connections_the_server_closed_are_replaced_unseen(app, client, db_backend):
    """A PostgreSQL restart (here: the server ending every connection of this app) costs no
    request an error: the pool hands out a new connection instead of a dead one."""
    if db_backend != "postgres":
        pytest.skip("SQLite connections are files, not sessions a server can end")
    assert client.get("/readyz").status_code == 200
    with app.app_context():
        engine = get_engine()
        held = [engine.connect() for _ in range(3)]  # the pool now holds a few connections
        for conn in held:
            conn.close()
        pids = _backend_pids(engine)
        assert pids
    admin = create_engine(engine.url.render_as_string(hide_password=False))
    with admin.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(:pids) AS pid"),
                      {"pids": pids})  # fmt: skip
    admin.dispose()
    time.sleep(0.2)  # the farewells reach the app's sockets
    for _ in range(5):
        assert client.get("/readyz").status_code == 200


def _backend_pids(engine):
    # Every connection the pool holds, checked out at once so that each is a different one.
    conns = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in conns]
    finally:
        for c in conns:
            c.close()


def test_a_pooled_connection_that_died_silently_is_found_by_its_idle_ping(
    app, client, db_backend, monkeypatch
):
    """A connection whose server went away without a word (a failover, a firewall that forgot
    it) looks alive on its socket: one idle a while is pinged, and replaced if the ping fails."""
    if db_backend != "postgres":
        pytest.skip("SQLite connections are files, not sessions a server can end")
    assert client.get("/readyz").status_code == 200
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.05)
    time.sleep(0.1)
    with app.app_context():
        dialect = get_engine().dialect
    pings = []

    def ping_into_the_void(dbapi_conn):
        pings.append(dbapi_conn)
        if len(pings) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return True

    monkeypatch.setattr(dialect, "do_ping", ping_into_the_void)
    assert client.get("/readyz").status_code == 200
    assert len(pings) >= 1
    assert pings[0].closed  # the dead one was thrown away
