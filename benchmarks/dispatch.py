"""Prompt dispatch throughput: 10,000 due prompts, rendered and emailed to a local aiosmtpd.

The scheduler's own sweeps run in this process (``dispatch_due_prompts``: claim, render in the
customer's language, write the outbox; then ``deliver_outbox``: claim, send over SMTP, mark
delivered, one commit per message), against SQLite. The SMTP server (aiosmtpd, counting what
it receives) runs in its own process so it does not share this one's interpreter. The baseline,
measured in the same run, is plain ``smtplib`` sending the very same rendered messages over one
connection with no database at all. Targets: at least 200 emails per second, and at least half
the plain rate.

    .venv/bin/python benchmarks/dispatch.py [--prompts 10000] [--database-url URL]

The headline rate is the pipelined one: both sweeps running at once, as in the scheduler.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email import message_from_string, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.db import get_engine, get_session  # noqa: E402
from app.models import Outbox, OutboxStatus  # noqa: E402
from app.scheduler import jobs  # noqa: E402
from benchmarks.service import SECRET  # noqa: E402
from tests.scheduler.conftest import free_port, insert_due_prompts  # noqa: E402

SINK = """
import asyncio, signal, sys
from aiosmtpd.controller import Controller

class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

stop = {signal.SIGTERM, signal.SIGINT}
signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server thread starts: it inherits
controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
signal.sigwait(stop)
controller.stop()
print(Count.n, flush=True)
"""


class Sink:
    """aiosmtpd in a child process that reports how many messages it accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SINK, str(self.port)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return int(out.strip().splitlines()[-1])


def run_kaidoki(
    database_url: str, n: int, pipelined: bool, connections: int
) -> tuple[float, float, list[str]]:
    """Seconds until ``n`` due prompts are dispatched and until they are delivered.

    Sequential: one sweep after the other. Pipelined: both sweeps at once in their own
    threads, as the scheduler's thread pool runs them, so delivery starts on the first batch.
    """
    sink = Sink()
    app = create_app(
        {
            "KAIDOKI_DATABASE_URL": database_url,
            "KAIDOKI_SECRET_KEY": SECRET,
            "KAIDOKI_BASE_URL": "https://kaidoki.example.jp",
            "KAIDOKI_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        }
    )
    timing = jobs.Timing(batch=200, connections=connections)
    migrate.upgrade(database_url)
    with app.app_context():
        insert_due_prompts(get_engine(), n, datetime.now(UTC), locales=("ja", "en"))
    marks: dict[str, float] = {}
    counts: dict[str, int] = {}

    def dispatch() -> None:
        with app.app_context():
            counts["sent"] = jobs.dispatch_due_prompts(timing)
        marks["dispatched"] = time.perf_counter()

    def deliver() -> None:
        delivered = 0
        with app.app_context():
            while delivered < n and time.perf_counter() - started < 600:
                batch = jobs.deliver_outbox(timing)
                delivered += batch
                if not batch:
                    time.sleep(0.01)
        counts["delivered"] = delivered
        marks["delivered"] = time.perf_counter()

    started = time.perf_counter()
    if pipelined:
        threads = [threading.Thread(target=dispatch), threading.Thread(target=deliver)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        dispatch()
        deliver()
    with app.app_context():
        payloads = list(get_session().scalars(select(Outbox.payload)))  # type: ignore[call-overload]
        statuses = set(get_session().scalars(select(Outbox.status)))  # type: ignore[call-overload]
    received = sink.stop()
    sent, delivered = counts.get("sent"), counts.get("delivered")
    if not (sent == delivered == received == n and statuses == {OutboxStatus.DELIVERED}):
        raise SystemExit(f"lost mail: sent {sent}, delivered {delivered}, received {received}")
    return marks["dispatched"] - started, marks["delivered"] - started, payloads


def run_plain(payloads: list[str]) -> float:
    """Seconds for smtplib to send the same rendered messages over one connection."""
    sink = Sink()
    envelopes = [(p, _recipient(p)) for p in payloads]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
        for payload, to in envelopes:
            smtp.sendmail("kaidoki@example.jp", [to], payload.encode())
    elapsed = time.perf_counter() - started
    if sink.stop() != len(payloads):
        raise SystemExit("plain smtplib lost mail")
    return elapsed


def _recipient(payload: str) -> str:
    return str(message_from_string(payload, policy=policy.SMTP)["To"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per run")
    parser.add_argument(
        "--connections",
        type=int,
        default=jobs.Timing.connections,
        help="SMTP connections delivering the outbox (the scheduler's default)",
    )
    args = parser.parse_args()
    n = args.prompts
    results = {}
    for pipelined in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{os.path.join(tmp, 'bench.sqlite')}"
            results[pipelined] = run_kaidoki(url, n, pipelined, args.connections)
            if args.database_url:
                break  # a given database is used once; the prompts are then sent
    plain_s = run_plain(results[False][2])
    plain_rate = n / plain_s
    size = sum(len(p.encode()) for p in results[False][2]) / n
    print(f"prompts: {n}  database: {url.split(':')[0]}  mean message: {size / 1024:.1f} KiB  "
          f"SMTP connections: {args.connections}")  # fmt: skip
    seq_dispatch, seq_total, _ = results[False]
    print("sequential sweeps (dispatch, then deliver):")
    print(f"  dispatch (claim, render ja/en, write outbox): {seq_dispatch:7.2f} s "
          f"{n / seq_dispatch:8.0f}/s")  # fmt: skip
    print(f"  deliver (claim, SMTP send, mark delivered):   {seq_total - seq_dispatch:7.2f} s "
          f"{n / (seq_total - seq_dispatch):8.0f}/s")  # fmt: skip
    print(f"  end to end:                                   {seq_total:7.2f} s "
          f"{n / seq_total:8.0f}/s")  # fmt: skip
    if True in results:
        _, pipe_total, _ = results[True]
        print("pipelined sweeps (both at once, as the scheduler runs them):")
        print(f"  end to end:                                   {pipe_total:7.2f} s "
              f"{n / pipe_total:8.0f}/s")  # fmt: skip
    rate = n / results[max(results)][1]
    print(f"plain smtplib, same messages, one connection:   {plain_s:7.2f} s {plain_rate:8.0f}/s")
    print(f"ratio kaidoki / plain: {rate / plain_rate:.2f}  (target >= 0.50)")
    print(f"target >= 200 emails/s: {'met' if rate >= 200 else 'NOT met'} ({rate:.0f}/s)")
    print(f"target >= 0.5 x plain:  {'met' if rate >= 0.5 * plain_rate else 'NOT met'}")


if __name__ == "__main__":
    main()
