"""The engine and sessions.

Request handlers and CLI commands own the transaction (they call ``commit``); services only
add and flush. SQLite gets WAL mode, foreign keys and a busy timeout on every connection, so a
web worker and the scheduler can share one file.
"""

from __future__ import annotations

import json
import select
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Engine,
    Table,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.engine.interfaces import DBAPICursor, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator

from app.sqlite_writers import QueuedWriterConnection, writer_queue

ENGINE_KEY = "kaidoki.engine"
READER_KEY = "kaidoki.engine.read_only"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zone type, so values are stored as naive UTC and made aware again on
    the way out; PostgreSQL stores ``timestamptz``. Naive datetimes are refused: a naive value
    reaching the database is a bug upstream.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, write and read the text form in one step each: the generic path (aware ->
    # naive -> SQLAlchemy's own formatting and regex parsing) dominated bulk order syncs. The
    # text is exactly what SQLAlchemy's SQLite DATETIME stores, so both paths agree.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the per-backend connection settings."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
        if database and database != ":memory:" and not database.startswith("file:"):
            connect_args["factory"] = writer_queue(database)
        engine = create_engine(url, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # 64 MiB of page cache per connection (the default is 2 MiB): order and plan
            # indexes are updated at random places, and a small cache rereads them from disk.
            cur.execute("PRAGMA cache_size=-65536")
            if isinstance(dbapi_conn, QueuedWriterConnection):
                # These checkpoint after their commits, outside the writers' queue.
                cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.execute("PRAGMA journal_size_limit=0")
            else:
                # Checkpoint the WAL every ~40 MB instead of ~4 MB: index pages touched by
                # many batches in a row are then copied back to the database once.
                cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over
        # as the SQLAlchemy documentation recommends. BEGIN IMMEDIATE takes the write lock up
        # front: a deferred transaction that reads and then writes fails with SQLITE_BUSY when
        # another process (a second web worker, the scheduler) committed in between, while an
        # immediate one simply waits its turn: first in the writers' queue (``sqlite_writers``),
        # then, against writers outside it, in SQLite's busy timeout. WAL readers are not blocked.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
            _begin_on_sqlite(conn.connection.dbapi_connection, read_only)

        return engine
    engine = create_engine(url, pool_size=5, max_overflow=10)
    _refuse_dead_connections(engine)
    return engine


IDLE_PING_SECONDS = 30.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""
_IDLE_SINCE = "kaidoki.idle_since"


def _refuse_dead_connections(engine: Engine) -> None:
    """Make the pool refuse a PostgreSQL connection that is gone, and open a new one instead.

    In place of ``pool_pre_ping``, which spent a round trip on every checkout, as much as a
    link page's one query. A server says goodbye before it closes a connection (a restart, an
    idle timeout, ``pg_terminate_backend``, a crashed backend), so a closed one has something
    to read, the farewell or end of file, and an idle open one nothing: whatever is there, the
    connection is not one to hand out. A connection can also die silently (the server's host
    down, a failover, a firewall forgetting it): one idle for ``IDLE_PING_SECONDS`` is pinged
    as well. A busy pool's connections are never idle that long, and a dead connection is
    seldom found any other way than by being idle.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if dbapi_conn.closed or dbapi_conn.broken:
            raise DisconnectionError("connection closed")
        poller = select.poll()  # not select.select: that fails for descriptors past 1023
        poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if poller.poll(0):
            raise DisconnectionError("the server closed the connection, or sent unasked-for data")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as error:
                raise DisconnectionError(f"no answer to a ping: {error}") from error


def _begin_on_sqlite(dbapi_conn: Any, read_only: bool) -> None:
    """BEGIN a reader's deferred transaction, or a writer's immediate one once it has its turn
    in the writers' queue. Straight on the driver: through ``exec_driver_sql`` a BEGIN cost
    ~35 us, paid by every request."""
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
    try:
        if not read_only and isinstance(dbapi_conn, QueuedWriterConnection):
            dbapi_conn.wait_turn()
        dbapi_conn.execute(begin)
    except sqlite3.OperationalError as error:  # as SQLAlchemy reports a busy BEGIN
        raise OperationalError(begin, None, error) from error


def init_app(app: Flask, url: str) -> None:
    engine = app.extensions[ENGINE_KEY] = make_engine(url)
    reader: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        # A read-only page runs a query or two, and needs no transaction around them: without
        # one, PostgreSQL is spared the BEGIN and ROLLBACK round trips (GET of a link page
        # 3.3 -> 2.3 ms). On SQLite a deferred BEGIN costs nothing and keeps one snapshot.
        reader["isolation_level"] = "AUTOCOMMIT"
    app.extensions[READER_KEY] = engine.execution_options(**reader)
    app.teardown_appcontext(_close_session)


def get_engine() -> Engine:
    engine: Engine = current_app.extensions[ENGINE_KEY]
    return engine


MAX_ID = 2_147_483_647
"""The largest value an integer column holds (PostgreSQL ``integer``)."""
ID_IN_PATH = f"int(min=1, max={MAX_ID})"
"""A database id in a URL path (a Werkzeug converter): a larger number is not found (404),
never an overflow in the query."""

READ_ONLY_OPTION = "kaidoki_read_only"
# Blueprints whose GET pages only read: on SQLite their transactions begin deferred, so they
# never wait for the write lock (a refit, a big sync) and never hold readers of each other up.
# The API's GETs stay immediate: checking the API key may record its use.
READ_ONLY_GET_BLUEPRINTS = frozenset({"links", "mailbox", "health"})


def read_first(session: Session) -> None:
    """Begin ``session``'s transaction as a reader, for a request that reads before it decides
    to write: on SQLite its reads then neither wait for nor hold the write lock. Call
    ``end_reading`` before the first write. (PostgreSQL locks rows, not the database: there
    both are no-ops, and the reads and writes share one transaction.)"""
    if _on_sqlite(session):
        session.connection(execution_options={READ_ONLY_OPTION: True})


def end_reading(session: Session) -> None:
    """End the reading begun by ``read_first`` and take the write lock, keeping what was
    loaded as loaded (no reload). Whatever was read may have changed since, so the writes
    must be guarded (``UPDATE ... WHERE status = ...``).

    The session's transaction goes on: only SQLite's changes, from a reader's snapshot to a
    writer's, on the same connection (a commit and a new transaction through SQLAlchemy cost
    ~0.2 ms, as much as the answer's writes)."""
    if not _on_sqlite(session) or not session.in_transaction():
        return
    conn = session.connection()
    if not conn.get_execution_options().get(READ_ONLY_OPTION, False):
        return  # writing already
    dbapi_conn = conn.connection.dbapi_connection
    dbapi_conn.execute("COMMIT")  # type: ignore[union-attr]
    _begin_on_sqlite(dbapi_conn, read_only=False)
    conn.execution_options(**{READ_ONLY_OPTION: False})  # writing now: a second call is a no-op


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def get_session() -> Session:
    """The session of the current request or CLI command, opened on first use."""
    if "db_session" not in g:
        read_only = (
            has_request_context()
            and request.method in ("GET", "HEAD")
            and request.blueprint in READ_ONLY_GET_BLUEPRINTS
        )
        engine: Engine = current_app.extensions[READER_KEY if read_only else ENGINE_KEY]
        g.db_session = Session(engine, expire_on_commit=False)
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (for jobs and scripts)."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def utcnow() -> datetime:
    """The current time, aware UTC. Only entry points call this; services take ``now``."""
    return datetime.now(UTC)


def add_unless_taken(session: Session, row: Any) -> IntegrityError | None:
    """Insert ``row`` in a savepoint; the error, with the session's transaction going on, when
    a constraint refuses it: most often another request stored the same unique key first (on
    PostgreSQL the insert waits for that request to commit, and fails only if it did)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as refused:
        return refused
    return None


def pk(model: Any) -> ColumnElement[int]:
    """The ``id`` column of a table model, typed as never NULL (SQLModel types it optional)."""
    return cast("ColumnElement[int]", model.id)


def _dump_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class Prepared:
    """A Core statement compiled once per database, run straight on the driver's cursor.

    For the statements of the hottest request, a customer's answer to a prompt: through
    ``Session.execute`` each costs ~30 us of SQLAlchemy's execution machinery, several times
    what SQLite takes to run it. Parameters are named as in the statement (``bindparam``) and
    converted by the same bind processors SQLAlchemy would use (UTCDateTime, enums, JSON). It
    runs in the session's transaction (begun as usual, by ``session.connection()``), but no
    ORM event fires, pending ORM changes are not flushed first and no loaded object is
    refreshed: the caller shows what it wrote itself. Errors are SQLAlchemy's (``DBAPIError``).
    """

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def execute(self, session: Session, params: Mapping[str, Any]) -> int:
        """Run it; returns the number of rows it changed."""
        cursor = self._execute(session, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def scalar(self, session: Session, params: Mapping[str, Any]) -> Any:
        """Run it (``... RETURNING x``); returns the first column of the first row."""
        cursor = self._execute(session, params)
        try:
            row = cursor.fetchone()
            return None if row is None else row[0]
        finally:
            cursor.close()

    def _execute(self, session: Session, params: Mapping[str, Any]) -> DBAPICursor:
        conn = session.connection()
        dialect = conn.dialect
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.parameters(params))
        except dialect.loaded_dbapi.Error as error:
            # As SQLAlchemy reports it (IntegrityError, OperationalError...), and a dropped
            # connection is not given back to the pool.
            cursor.close()
            if dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor):
                conn.invalidate(error)
            raise DBAPIError.instance(
                compiled.sql, None, error, dialect.loaded_dbapi.Error
            ) from error
        return cursor


class _Compiled:
    def __init__(self, statement: UpdateBase, dialect: Dialect) -> None:
        compiler = statement.compile(dialect=dialect)
        assert isinstance(compiler, SQLCompiler)
        # SQLAlchemy computes these while it executes, which is not done here.
        defaulted = [c.name for c in (*compiler.insert_prefetch, *compiler.update_prefetch)]
        if defaulted:
            raise ValueError(f"Prepared cannot apply Python-side defaults: give {defaulted}")
        if compiler.post_compile_params:
            raise ValueError("Prepared cannot expand parameters (IN lists, literal_execute)")
        self.compiler = compiler
        self.sql = compiler.string
        self.positions = list(compiler.positiontup or ()) if compiler.positional else None
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiler.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.processors[name] = process

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = self.compiler.construct_params(dict(params))
        for name, process in self.processors.items():
            values[name] = process(values[name])
        return values if self.positions is None else [values[n] for n in self.positions]


def table_of(model: Any) -> Table:
    """The Core table of a table model, for bulk statements that skip the ORM's bookkeeping."""
    table: Table = model.__table__
    return table


def insert_many(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows with one DBAPI ``executemany``; every row has the same keys.


    SQLAlchemy's own executemany builds a parameter dictionary per row, which costs more than
    the insert itself when syncing hundreds of thousands of order lines. Here each column's
    bind processor (UTCDateTime, enums, JSON...) is looked up once and applied to plain tuples.
    """
    if rows:
        table = table_of(model)
        columns = list(rows[0])
        _executemany(session, table, "INSERT INTO {table} ({names}) VALUES ({marks})",
                     columns, [[row[c] for c in columns] for row in rows])  # fmt: skip


def bulk_update_by_id(
    session: Session, model: Any, rows: list[dict[str, Any]], unless_changed: str | None = None
) -> int:
    """``UPDATE ... WHERE id = ?`` for many rows at once (one ``executemany`` per column set);
    returns how many rows were updated.

    With ``unless_changed`` (a column), each row also holds that column's value as it was
    read, as the driver returned it (``fetch_raw``), under the key ``"seen"``: a row whose
    column holds anything else now (someone wrote it since) is left as it is.
    """
    table = table_of(model)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(k for k in row if k not in ("id", "seen"))
        by_columns.setdefault(columns, []).append(row)
    template = "UPDATE {table} SET {assignments} WHERE id = {mark}"
    keys = ["id"]
    if unless_changed is not None:
        quote = session.connection().dialect.identifier_preparer.quote
        template += f" AND {quote(table.c[unless_changed].name)} = {{mark}}"
        keys.append("seen")
    updated = 0
    for columns, group in by_columns.items():
        updated += _executemany(
            session,
            table,
            template,
            [*columns, "id"],
            [[row[c] for c in (*columns, *keys)] for row in group],
            n_set=len(columns),
        )
    return updated


def _executemany(
    session: Session,
    table: Table,
    template: str,
    columns: list[str],
    values: list[list[Any]],
    n_set: int = 0,
) -> int:
    """Run ``template`` for every row of ``values`` (one value per name in ``columns``, then
    any values for trailing placeholders of the template, passed as they are); returns the
    number of rows it changed."""
    conn = session.connection()
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    json_mark = mark if dialect.name == "sqlite" else f"CAST({mark} AS JSON)"
    is_json = [isinstance(table.c[name].type, JSON) for name in columns]
    marks = [json_mark if j else mark for j in is_json]
    # JSON is serialised here on every backend; other types use their own bind processors.
    processors = [
        _dump_json if j else table.c[name].type.bind_processor(dialect)
        for name, j in zip(columns, is_json, strict=True)
    ]
    # Convert only the columns that need it (ints and plain strings pass through as they are),
    # and each distinct value once: stamps, days and statuses repeat across a batch.
    for i, process in enumerate(processors):
        if process is not None:
            done: dict[Any, Any] = {}
            for row in values:
                value = row[i]
                try:
                    row[i] = done[value]
                except KeyError:
                    row[i] = done[value] = process(value)
                except TypeError:  # unhashable (JSON documents)
                    row[i] = process(value)
    params = [tuple(row) for row in values]
    sql = template.format(
        table=quote(table.name),
        names=", ".join(quote(c) for c in columns),
        marks=", ".join(marks),
        assignments=", ".join(
            f"{quote(c)} = {m}" for c, m in zip(columns[:n_set], marks, strict=False)
        ),
        mark=mark,
    )
    result = conn.exec_driver_sql(sql, params)  # a list of tuples: executemany
    return int(result.rowcount)


def fetch_raw(session: Session, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the session's connection and return the driver's plain tuples.

    For reads of millions of rows (the refit): SQLAlchemy's Row objects cost more than the
    query itself there. ``sql`` uses the driver's placeholder (``placeholder(session)``).
    """
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def placeholder(session: Session) -> str:
    return "?" if session.connection().dialect.paramstyle == "qmark" else "%s"


def placeholders(session: Session, n: int) -> str:
    """``n`` driver placeholders separated by commas, for ``IN (...)`` with ``fetch_raw``."""
    return ", ".join([placeholder(session)] * n)
