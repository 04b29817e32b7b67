"""Live servers for the tests: gunicorn in a subprocess, werkzeug in a thread.

gunicorn runs the example app (or another app factory) in its own session, so
that :meth:`Gunicorn.kill` can SIGKILL the master and every worker at once. The
package's log records reach gunicorn's error log through the example's
``gunicorn.conf.py`` (``post_fork``); the tests read that log, e.g. to count the
"prepared <image> in <s> s" lines.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def fetch(url: str, timeout: float = 60) -> tuple[int, bytes]:
    """GET ``url``; return the status and the body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def prepared_count(log_text: str, image: str) -> int:
    """Count the "prepared <image> in" lines that the workers logged."""
    return len(re.findall(rf"\[INFO\] prepared {re.escape(image)} in", log_text))


@dataclass
class Gunicorn:
    """A running gunicorn: its URL, process (the master) and error log."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        return [
            int(p) for p in re.findall(r"Booting worker with pid: (\d+)", read(self.log))
        ]

    def kill(self) -> None:
        """SIGKILL the master and its workers (their whole session) at once."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)


def _wait_until_up(server: Gunicorn, port: int, workers: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(
                f"gunicorn exited ({server.proc.returncode}):\n{read(server.log)}"
            )
        if len(server.worker_pids()) >= workers:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(
        f"gunicorn did not start in {STARTUP_SECONDS} s:\n{read(server.log)}"
    )


@contextmanager
def gunicorn(
    data: Path,
    cache: Path,
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    app: str = "example_app:create_app()",
    env: Mapping[str, str] | None = None,
) -> Iterator[Gunicorn]:
    """Run gunicorn with the example's configuration over ``data`` and ``cache``."""
    port = free_port()
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FITSTILES_", "GUNICORN")) and k != "WEB_CONCURRENCY"
    }
    environment.update(FITSTILES_DATA_DIR=str(data), FITSTILES_CACHE_DIR=str(cache))
    environment.update(env or {})
    command = [
        str(GUNICORN),
        "-c",
        "example_app/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--error-logfile",
        str(log),
        app,
    ]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Gunicorn(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_until_up(server, port, workers)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        # Workers left behind by a killed master die with their session.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server on a free port; yield its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
