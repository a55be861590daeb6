"""The real service for the benchmarks: gunicorn on a loopback port, in production mode."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-0123456789-abcdefghij"
SMTP_URL = "smtp://127.0.0.1:9"  # required in production; web requests never send mail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError("service did not become ready")


@contextmanager
def gunicorn(database_url: str, workers: int, *options: str, **settings: str) -> Iterator[str]:
    """Serve the app from ``database_url`` until the block ends; yields its base URL.

    ``options`` go to gunicorn; ``settings`` are extra ``KAIDOKI_*`` variables.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "KAIDOKI_ENV": "production",
        "KAIDOKI_DATABASE_URL": database_url,
        "KAIDOKI_SECRET_KEY": SECRET,
        "KAIDOKI_BASE_URL": base_url,
        "KAIDOKI_SMTP_URL": SMTP_URL,
        "KAIDOKI_LOG_LEVEL": "WARNING",
        **settings,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--log-level", "warning", *options, "wsgi:app"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        wait_ready(base_url)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)
