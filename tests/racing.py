"""Requests raced against each other on a real database, each in its own thread."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import event

from app.db import get_engine

T = TypeVar("T")


def at_once(calls: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run each of ``calls`` in a thread of its name, all released together; their results.

    Fails naming what any of them raised: the test client raises a request's unhandled error,
    which in production would be a 500.
    """
    barrier = threading.Barrier(len(calls))
    results: dict[str, T] = {}
    raised: dict[str, Exception] = {}

    def run(name: str, call: Callable[[], T]) -> None:
        barrier.wait(timeout=10)
        try:
            results[name] = call()
        except Exception as error:
            raised[name] = error

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a raced request hung"
    assert not raised, f"raced requests failed: {raised}"
    return results


@contextlib.contextmanager
def meeting_before(
    app: Flask, statement: str, parties: int, then: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Hold each thread's first SQL statement matching the regular expression ``statement``
    until ``parties`` threads have reached theirs, then release them all (calling ``then`` in
    each): whatever they read before it, none of them has yet written.

    A thread that can never get there (it waits for a lock another holds) only delays the
    others by a few seconds: the meeting is then called off.
    """
    pattern = re.compile(statement)
    barrier = threading.Barrier(parties)
    met = threading.local()

    def hold(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if getattr(met, "done", False) or not pattern.match(sql):
            return
        met.done = True
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        then()

    with app.app_context():
        engine = get_engine()
    event.listen(engine, "before_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", hold)
