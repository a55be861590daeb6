"""SQLite writers take turns through a file lock, so a waiting writer starts the moment the
last one commits.

SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2,
5, 10 ... 100 ms between tries. Under many concurrent writes (customers answering prompts,
batches syncing) most of the waiting is those sleeps, long after the lock came free, and the
unlucky writer waits longest. A blocking ``flock`` on a file beside the database is granted by
the kernel as soon as it is released, in every process that writes (web workers and the
scheduler). SQLite's own locking still guards the data; this only orders the writers.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from typing import Any

WAIT_SECONDS = 30.0
"""As SQLite's busy timeout: a writer that cannot get its turn this long gives up."""


class QueuedWriterConnection(sqlite3.Connection):
    """A connection that holds the writers' lock from ``wait_turn`` until commit or rollback."""

    lock_path: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._holding = False

    def wait_turn(self) -> None:
        """Block until no other writer of this database holds the lock, then hold it.

        Raises ``sqlite3.OperationalError`` ("database is locked") after ``WAIT_SECONDS``.
        """
        if self._holding:
            return
        if self._lock_fd is None or self._lock_pid != os.getpid():
            # A descriptor inherited through fork shares its lock with the parent: reopen.
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
        deadline = time.monotonic() + WAIT_SECONDS
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        self._holding = True

    def _release(self) -> None:
        if self._holding and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._holding = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def writer_queue(lock_path: str) -> type[QueuedWriterConnection]:
    """A connection class whose writers queue on ``lock_path``."""
    return type("QueuedWriterConnection", (QueuedWriterConnection,), {"lock_path": lock_path})
