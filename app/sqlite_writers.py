"""SQLite writers take turns through a file lock, so a waiting writer starts the moment the
last one commits.

SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2,
5, 10 ... 100 ms between tries. Under many concurrent writes (customers answering prompts,
batches syncing) most of the waiting is those sleeps, long after the lock came free, and the
unlucky writer waits longest. A ``flock`` on a file beside the database is granted as soon as
it is released, in every process that writes (web workers and the scheduler). SQLite's own
locking still guards the data; this only orders the writers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from typing import Any

logger = logging.getLogger(__name__)

WAIT_SECONDS = 30.0
"""As SQLite's busy timeout: a writer that cannot get its turn this long gives up."""

CHECKPOINT_BYTES = 40 * 1024 * 1024
"""A writing connection copies the WAL back into the database file when it is this big.

SQLite's own automatic checkpoint runs inside the commit that crosses its threshold, while
that writer still holds the queue's turn, so every other writer would wait for it (~70 ms for
10,000 pages). These connections turn it off (``wal_autocheckpoint=0``) and run the same
passive checkpoint just after giving up their turn, other writers going on meanwhile, then
take a turn only to copy the few frames written during it. The WAL is truncated when it
restarts (``journal_size_limit=0``), so its file size is what it holds. A large WAL keeps
bulk syncs fast: index pages that many batches touch are copied back once.
"""

CHECKPOINT_RETRY_SECONDS = 1.0
"""While readers keep the WAL from restarting, a connection tries again at most this often."""

WRITERS_SUFFIX = "-writers"


class QueuedWriterConnection(sqlite3.Connection):
    """A connection that holds the writers' lock from ``wait_turn`` until commit or rollback."""

    database: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._holding = False
        self._checkpointed_at = 0.0

    def wait_turn(self, patient: bool = False) -> None:
        """Block until no other writer of this database holds the lock, then hold it.

        Raises ``sqlite3.OperationalError`` ("database is locked") after ``WAIT_SECONDS``.
        ``patient`` instead waits however long it takes, queued in the kernel: a waiter that
        polls can be starved by back-to-back writers in its own process, which hold Python's
        global lock in the moments they do not hold the turn.
        """
        if self._lock_fd is not None and self._lock_pid != os.getpid():
            # A descriptor inherited through fork shares its lock with the parent: this
            # process has no turn of its own yet (closing the copy leaves the parent's).
            os.close(self._lock_fd)
            self._lock_fd, self._holding = None, False
        if self._holding:
            return
        if self._lock_fd is None:
            mode = (
                os.stat(self.database).st_mode & 0o666 if os.path.exists(self.database) else 0o600
            )
            self._lock_fd = os.open(self.database + WRITERS_SUFFIX, os.O_RDWR | os.O_CREAT, mode)
            self._lock_pid = os.getpid()
        if patient:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._holding = True
            return
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
        if self._holding and self._lock_fd is not None and self._lock_pid == os.getpid():
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._holding = False

    def commit(self) -> None:
        wrote = self._holding
        try:
            super().commit()
        finally:
            self._release()
        if wrote:
            self._checkpoint_if_large()

    def _checkpoint_if_large(self) -> None:
        # The data is committed already: a checkpoint that fails is logged, not raised.
        try:
            size = os.stat(self.database + "-wal").st_size
            now = time.monotonic()
            if size < CHECKPOINT_BYTES or now - self._checkpointed_at < CHECKPOINT_RETRY_SECONDS:
                return
            self._checkpointed_at = now
            # The bulk of the copy while other writers go on (busy: another connection is
            # checkpointing already, and will finish the job).
            (busy, _, _) = self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy:
                return
            # Then, holding a turn, the few frames written meanwhile: with the WAL wholly
            # copied back and no writer in between, the next writer restarts it. (Outside the
            # queue alone, back-to-back writers would never let it restart.) Patient, so that
            # back-to-back writers in this process cannot starve it. It has no time limit: a
            # writer holding the turn for long (a refit of a large shop on SQLite) holds this
            # commit's caller as long, after its data is safe, where other writers give up
            # after WAIT_SECONDS. Either way the web request would outlast gunicorn's timeout.
            self.wait_turn(patient=True)
            try:
                self.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            finally:
                self._release()
        except (OSError, sqlite3.Error) as error:
            logger.warning("checkpoint of %s failed: %s", self.database, error)

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


def writer_queue(database: str) -> type[QueuedWriterConnection]:
    """A connection class whose writers queue on a lock file beside ``database``."""
    return type("QueuedWriterConnection", (QueuedWriterConnection,), {"database": database})
