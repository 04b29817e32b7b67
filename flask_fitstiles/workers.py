"""A gunicorn worker that shares keep-alive connections fairly between workers.

All workers of a gunicorn server accept from one listening socket, and whichever
wakes first takes the connection. Tile clients (browsers, ``wrk``) open a few
keep-alive connections at once and keep them: often one worker takes them all,
and the other workers, and their CPUs, stay idle for as long as the connections
live (a browser's six connections to a tile server can live for the whole
visit). Measured here: 2 workers, 8 connections, one worker did 100 % of the
work in some runs and served about half the tiles per second.

:class:`BalancedThreadWorker` is gunicorn's ``gthread`` worker that, once it
holds as many connections as it has threads, waits a moment before accepting
one more: a sibling with free threads, woken by the same connection, takes it
first. When every worker is as busy, the connection is accepted a millisecond
later, as before. Measured here (2 workers x 4 threads, ``wrk -c8``): the eight
connections were split 4/4 in 10 tries out of 10, against 1/7 to 4/4 with the
plain worker; a cheap cached tile requested over new connections
(``Connection: close``) at saturation is served about 5 % less often, the price
of that millisecond.

Use it with ``worker_class = "flask_fitstiles.workers.BalancedThreadWorker"``.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

__all__ = ["BalancedThreadWorker"]


class BalancedThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, leaving new connections to idler siblings first."""

    #: Seconds a worker whose threads all have a connection waits before it accepts.
    defer_seconds = 0.001

    def accept(self, *args: Any) -> None:
        """Accept a connection, after a short wait when every thread has one.

        Parameters
        ----------
        *args : Any
            As gunicorn's ``ThreadWorker.accept`` (its signature varies by version).
        """
        if self.nr_conns >= self.cfg.threads:
            # An idle sibling, woken by the same event, accepts during this wait;
            # the accept below then finds nothing (EAGAIN, handled by gunicorn).
            time.sleep(self.defer_seconds)
        super().accept(*args)
