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

CHECKPOINT_BYTES = 16 * 1024 * 1024
"""A writing connection copies the WAL back into the database file when it is this big.

SQLite's own automatic checkpoint runs inside the commit that crosses its threshold, while
that writer still holds the queue's turn, so every other writer would wait for it (~70 ms for
10,000 pages). These connections turn it off (``wal_autocheckpoint=0``) and run the same
passive checkpoint just after giving up their turn, other writers going on meanwhile. The few
frames written during it are copied by the next writer to take a turn, before it begins (see
``FINISH_MARK``). The WAL is truncated when it restarts (``journal_size_limit=0``), so its
file size is what it holds.

The size weighs bulk syncs against customers' clicks. A large WAL keeps bulk syncs fast
(index pages that many batches touch are copied back once), but each checkpoint then stalls
the requests around it. Measured (``benchmarks/links.py --rate 350``, ``benchmarks/ingest.py``):
answer POSTs paced at 350 per second had a p99 of 87 ms at 40 MB, 23 ms at 16 MB and 8 MB,
25 ms with no checkpoint at all; bulk sync ran at 21,500-21,700 order lines per second at
40 MB, 20,800-21,400 at 16 MB, 20,400-20,700 at 8 MB.
"""

CHECKPOINT_RETRY_SECONDS = 1.0
"""While readers keep the WAL from restarting, a connection tries again at most this often."""

WRITERS_SUFFIX = "-writers"

FINISH_MARK = b"c"
"""Written into the writers' lock file by a connection whose checkpoint ran outside the queue.

The WAL restarts only when a writer begins with every frame copied back, so the frames other
writers added during that checkpoint must be copied with no writer in between: by the next
writer to take a turn, before its own transaction, which finds this mark. (The connection
that checkpointed could take a turn of its own instead, but back-to-back writers can starve
a waiter: ``flock`` wakes waiters without handing the lock over, and a writer that has just
let go takes it again first, before the woken one runs.)
"""


class QueuedWriterConnection(sqlite3.Connection):
    """A connection that holds the writers' lock from ``wait_turn`` until commit or rollback."""

    database: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._holding = False
        self._checkpointed_at = 0.0

    def wait_turn(self) -> None:
        """Block until no other writer of this database holds the lock, then hold it.

        Raises ``sqlite3.OperationalError`` ("database is locked") after ``WAIT_SECONDS``.
        Before returning, finishes a checkpoint left for the next writer (``FINISH_MARK``).
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
        if os.pread(self._lock_fd, 1, 0) == FINISH_MARK:
            self._finish_checkpoint()

    def _finish_checkpoint(self) -> None:
        # Holding the turn, before this writer's transaction: with every frame copied back
        # and no writer in between, this writer's first write restarts the WAL. Busy: a
        # checkpoint that began before the mark was set still runs; the next writer retries.
        assert self._lock_fd is not None
        try:
            (busy, _, _) = self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy:
                os.pwrite(self._lock_fd, b"\0", 0)
        except (OSError, sqlite3.Error) as error:
            logger.warning("checkpoint of %s failed: %s", self.database, error)

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
            assert self._lock_fd is not None
            if os.pread(self._lock_fd, 1, 0) == FINISH_MARK:
                return  # copied back already but for the last frames, which the next writer copies
            # The bulk of the copy while other writers go on (busy: another connection is
            # checkpointing already, and will finish the job).
            (busy, _, _) = self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy:
                return
            # The frames written meanwhile are the next writer's to copy, holding its turn.
            os.pwrite(self._lock_fd, FINISH_MARK, 0)
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
