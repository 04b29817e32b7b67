"""gunicorn settings of the example app.

Run from the repository root::

    gunicorn -c example_app/gunicorn.conf.py "example_app:create_app()"

Environment: FITSTILES_BIND (or GUNICORN_BIND) for the address, default
127.0.0.1:8000; GUNICORN_WORKERS (or WEB_CONCURRENCY), default 2;
GUNICORN_THREADS, default 4; GUNICORN_LOG_LEVEL, default info. Options given
on the command line (``--bind``, ``--workers``, ...) override this file.

Each worker is a process with its own tile cache and open images, made after
the fork; prepared images are shared through the cache folder on disk.
"""

from __future__ import annotations

import logging
import os
from typing import Any


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value:
            return int(value)
    return default


bind = (
    os.environ.get("FITSTILES_BIND") or os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
)
workers = _env_int("GUNICORN_WORKERS", "WEB_CONCURRENCY", default=2)
# gunicorn's gthread worker, sharing keep-alive connections fairly between the
# workers (see flask_fitstiles/workers.py).
worker_class = "flask_fitstiles.workers.BalancedThreadWorker"
threads = _env_int("GUNICORN_THREADS", default=4)
keepalive = 5
graceful_timeout = 30
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# No control socket in the home folder (gunicorn >= 25): two demos can run side by side.
control_socket_disable = True


def post_fork(server: Any, worker: Any) -> None:
    """Send the package's log records (e.g. "prepared X in 0.4 s") to gunicorn's log.

    Parameters
    ----------
    server : gunicorn.arbiter.Arbiter
        The master.
    worker : gunicorn.workers.base.Worker
        The new worker.
    """
    error_log = logging.getLogger("gunicorn.error")
    for name in ("flask_fitstiles", "example_app"):
        package_logger = logging.getLogger(name)
        package_logger.handlers = list(error_log.handlers)
        package_logger.setLevel(error_log.level)
        package_logger.propagate = False
