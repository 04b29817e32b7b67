"""Per-process memo of encoded tiles, bounded in bytes.

One :class:`TileCache` lives in each worker process (it is created lazily, so
after gunicorn forks); threads share it under a lock. Keys carry the image
identity (file, HDU, size, mtime) and every rendering setting after
normalisation, so a changed source file never meets its old tiles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from cachetools import LRUCache

__all__ = ["TileCache"]


class TileCache:
    """Thread-safe LRU cache of JPEG byte strings, bounded in total bytes.

    Parameters
    ----------
    maxbytes : int
        Largest total size of the cached values; 0 disables caching.
    """

    def __init__(self, maxbytes: int = 64 << 20) -> None:
        self.maxbytes = int(maxbytes)
        self._cache: LRUCache[Hashable, bytes] = LRUCache(
            maxsize=max(1, self.maxbytes), getsizeof=len
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """Return the cached value for ``key``, making and storing it if missing.

        The value is made outside the lock, so threads render in parallel; two
        threads that miss the same key at once both render it (harmless).

        Parameters
        ----------
        key : Hashable
            Cache key.
        make : callable
            Function that returns the value.

        Returns
        -------
        value : bytes
            Cached or new value.
        """
        if self.maxbytes <= 0:
            return make()
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self.hits += 1
                return value
            self.misses += 1
        value = make()
        if len(value) <= self.maxbytes:
            with self._lock:
                self._cache[key] = value
        return value

    @property
    def currsize(self) -> int:
        """Total bytes held."""
        with self._lock:
            return int(self._cache.currsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._cache.clear()
