"""FIF name -> :class:`~flask_fitstiles.tiled.Tiled`: path safety, freshness, open images.

An :class:`ImageRegistry` serves the FITS files of one data folder. It never
imports Flask: the web layer calls :meth:`ImageRegistry.resolve` and
:meth:`ImageRegistry.get` (or :meth:`ImageRegistry.open` for both at once).

Safety: a name from a client is checked as text first (relative, no ``..``, no
hidden component, a FITS suffix), then its real path must still lie inside the
real data folder and be a regular file. Nothing outside the folder is opened,
and error messages never show a server path.

Per process: the registry keeps an LRU of open images and one cache of encoded
tiles shared by all of them. Both are made on first use *in the process* (so
after gunicorn forks its workers) and are guarded by locks; concurrent first
requests for one image wait for a single load, and the inter-process file lock
of :func:`~flask_fitstiles.tiled.pickledTiled` makes one worker prepare it.

Disk budget: with ``max_cached_images``, each load of an image into a process
is followed by :func:`~flask_fitstiles.core.budget.enforce_budget`, which
removes the least recently used prepared images beyond the budget. An image in
use has its pickle touched at most once every :data:`TOUCH_SECONDS` per process.
An image's files are memory-mapped as soon as it is loaded, so requests in
flight on an evicted image keep reading it; an image whose files vanish between
loading and mapping is loaded (prepared) again.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from ..errors import BadFitsError, FolderNotFoundError, ImageBusyError, ImageNotFoundError
from ..tiled import (
    FORMAT_VERSION,
    Tiled,
    get_object_filename,
    get_prepared,
    pickledTiled,
)
from . import budget, listing
from .cachefiles import SourceStamp, get_prefix, read_source_stamp, write_source_stamp
from .signing import find_secret_key
from .tilecache import TileCache

__all__ = ["FITS_SUFFIXES", "TOUCH_SECONDS", "ImageRegistry", "is_fits_name"]

logger = logging.getLogger(__name__)

#: File name endings served as FITS images (compared in lower case).
FITS_SUFFIXES: tuple[str, ...] = (".fits", ".fit", ".fts", ".fz", ".fits.gz")

# Files that failed to load are remembered (by size and mtime) so that a broken
# file is not read again on every request; this bounds that memory.
_MAX_FAILURES = 256
# Verdicts of is_prepared, remembered with the stats they were made for.
_MAX_PREPARED_MEMO = 4096
# Longest image name echoed back in an error message.
_MAX_ECHO = 200
# Loads of one image in a row whose files vanish before they are mapped.
_MAX_LOAD_ATTEMPTS = 3

#: Seconds between two touches of an image in use by one process (disk budget).
TOUCH_SECONDS = 60.0

_Key = tuple[str, int | None]


def _echo(name: str) -> str:
    """Return a client-given name fit for an error message (quoted, shortened)."""
    return repr(name if len(name) <= _MAX_ECHO else name[:_MAX_ECHO] + "...")


def is_fits_name(name: str) -> bool:
    """Tell whether a file name has one of the FITS suffixes (any case).

    Parameters
    ----------
    name : str
        File name.

    Returns
    -------
    fits : bool
        True if the name ends with one of :data:`FITS_SUFFIXES`.
    """
    return name.lower().endswith(FITS_SUFFIXES)


@dataclass
class _ProcessState:
    """Everything the registry holds in memory for one process."""

    pid: int
    open_images: LRUCache[_Key, Tiled]
    tile_cache: TileCache
    failures: LRUCache[Hashable, tuple[str, tuple[str, ...]]]
    prepared: LRUCache[_Key, tuple[tuple[int, ...], bool]]
    folders: listing.FolderScans
    # When each open image was last marked as used (time.monotonic()).
    touched: dict[_Key, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Per-image load locks with their number of users, removed when unused.
    loading: dict[_Key, tuple[threading.Lock, list[int]]] = field(default_factory=dict)


class ImageRegistry:
    """The FITS images of one data folder, prepared on demand and kept open per process.

    Parameters
    ----------
    data_dir : str or path
        Folder of the served images; it must exist.
    cache_dir : str or path
        Folder of the prepared images (pickles and memory-mapped pyramids).
    tile_size : tuple[int, int], optional
        Tile shape (height, width) in pixels.
    brightness, contrast, color_saturation, gamma : float, optional
        Display defaults of the served images.
    quality : int, optional
        Default JPEG quality.
    max_region_tiles : int, optional
        Most tiles a region (RGN) request may cover.
    max_open_images : int, optional
        Most images kept open per process (least recently used ones are closed).
    tile_cache_bytes : int, optional
        Size bound of the per-process cache of encoded tiles; 0 disables it.
    prepare_wait : float, optional
        Seconds to wait for another process that prepares the same image
        before answering "busy" (:class:`~flask_fitstiles.errors.ImageBusyError`).
    nthreads : int, optional
        Compute threads used while preparing an image (None: one per CPU).
    secret_key : str or bytes, optional
        Key that signs and verifies the prepared pickles (None: the
        FITSTILES_SECRET_KEY environment variable, else a random key kept in
        the cache folder; see :func:`~flask_fitstiles.tiled.pickledTiled`).
    max_cached_images : int, optional
        Most prepared images kept in the cache folder, least recently used
        removed first; 0 means no limit.

    Raises
    ------
    NotADirectoryError
        If ``data_dir`` is not an existing folder.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str],
        *,
        tile_size: tuple[int, int] = (256, 256),
        brightness: float = 0.0,
        contrast: float = 1.0,
        color_saturation: float = 1.5,
        gamma: float = 2.2,
        quality: int = 95,
        max_region_tiles: int = 1024,
        max_open_images: int = 32,
        tile_cache_bytes: int = 256 << 20,
        prepare_wait: float = 60.0,
        nthreads: int | None = None,
        secret_key: str | bytes | None = None,
        max_cached_images: int = 0,
    ) -> None:
        real = os.path.realpath(os.fspath(data_dir))
        if not os.path.isdir(real):
            raise NotADirectoryError(
                f"the data folder {os.fspath(data_dir)} does not exist"
            )
        self.data_dir = Path(real)
        self.cache_dir = Path(os.path.abspath(os.fspath(cache_dir)))
        self.tile_size = (int(tile_size[0]), int(tile_size[1]))
        self.max_open_images = int(max_open_images)
        self.tile_cache_bytes = int(tile_cache_bytes)
        self.prepare_wait = float(prepare_wait)
        self.max_cached_images = max(0, int(max_cached_images))
        self.tiled_options: dict[str, Any] = {
            "tilesize": self.tile_size,
            "brightness": float(brightness),
            "contrast": float(contrast),
            "color_saturation": float(color_saturation),
            "gamma": float(gamma),
            "quality": int(quality),
            "max_region_tile_count": int(max_region_tiles),
            "nthreads": nthreads,
        }
        self._secret_key = secret_key
        self._state: _ProcessState | None = None
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.data_dir)!r})"

    # -- per-process state -------------------------------------------------------------

    def _process_state(self) -> _ProcessState:
        """Return this process's caches, making them on first use after a fork."""
        pid = os.getpid()
        state = self._state
        if state is not None and state.pid == pid:
            return state
        with self._state_lock:
            state = self._state
            if state is None or state.pid != pid:
                state = _ProcessState(
                    pid=pid,
                    open_images=LRUCache(maxsize=max(1, self.max_open_images)),
                    tile_cache=TileCache(self.tile_cache_bytes),
                    failures=LRUCache(maxsize=_MAX_FAILURES),
                    prepared=LRUCache(maxsize=_MAX_PREPARED_MEMO),
                    folders=listing.FolderScans(is_fits_name),
                )
                self._state = state
            return state

    @property
    def tile_cache(self) -> TileCache:
        """The encoded-tile cache of this process, shared by every open image."""
        return self._process_state().tile_cache

    # -- names -------------------------------------------------------------------------

    def resolve(self, fif: str) -> Path:
        """Return the real path of an image given by its name relative to the data folder.

        Parameters
        ----------
        fif : str
            Relative POSIX path of the image (``FIF`` without its ``[N]`` suffix).

        Returns
        -------
        path : pathlib.Path
            Real (symlink-free) path of a regular file inside the data folder.

        Raises
        ------
        ImageNotFoundError
            If the name is not a plain relative path to a FITS file inside the
            data folder (absolute, ``..`` or hidden components, backslash, NUL,
            empty components, other suffix), or leads outside the folder through
            a symlink, or no such file exists.
        """
        loc = ("query", "FIF")
        parts = fif.split("/")
        if (
            not fif
            or "\0" in fif
            or "\\" in fif
            or any(not part or part.startswith(".") for part in parts)
        ):
            raise ImageNotFoundError(
                "FIF must name an image by its path relative to the data folder, "
                "without '..', hidden or empty components, backslashes or NUL; "
                "the images endpoint lists the names",
                loc,
            )
        not_found = ImageNotFoundError(
            f"no image {_echo(fif)} in the data folder; "
            "the images endpoint lists the names",
            loc,
        )
        if not is_fits_name(parts[-1]):
            raise not_found
        real = os.path.realpath(os.path.join(self.data_dir, *parts))
        if not self._inside(real):
            raise not_found
        try:
            mode = os.stat(real).st_mode
        except OSError:
            raise not_found from None
        if not stat.S_ISREG(mode):
            raise not_found
        return Path(real)

    def _inside(self, real: str) -> bool:
        """Tell whether a real path lies strictly inside the data folder."""
        root = os.fspath(self.data_dir)
        return real.startswith(root.rstrip(os.sep) + os.sep)

    # -- images ------------------------------------------------------------------------

    def open(self, fif: str, extnum: int | None = None) -> Tiled:
        """Return the open image of a client-given name (:meth:`resolve` + :meth:`get`).

        Parameters
        ----------
        fif : str
            Image name relative to the data folder.
        extnum : int, optional
            HDU number, to serve that HDU alone.

        Returns
        -------
        tiled : Tiled
            The prepared image.
        """
        return self.get(self.resolve(fif), extnum)

    def get(self, fif_path: str | os.PathLike[str], extnum: int | None = None) -> Tiled:
        """Return the prepared image of a resolved path, loading or preparing it if needed.

        Parameters
        ----------
        fif_path : str or path
            Real path of the image, as returned by :meth:`resolve`.
        extnum : int, optional
            HDU number, to serve that HDU alone.

        Returns
        -------
        tiled : Tiled
            The prepared image, with the registry's tile cache attached.

        Raises
        ------
        BadFitsError
            If the file is not a displayable FITS image.
        ImageBusyError
            If the image is still being prepared (by this process or another)
            after ``prepare_wait`` seconds.
        """
        key: _Key = (os.fspath(fif_path), extnum)
        state = self._process_state()
        with state.lock:
            tiled = state.open_images.get(key)
            touch = tiled is not None and self._touch_due(state, key)
        if tiled is not None and tiled.is_fresh():
            if touch:
                budget.touch(tiled.object_filename)
            return tiled
        # One deadline for both waits (for this process's loader thread, then for
        # another process's file lock), so that queued threads never wait longer.
        deadline = time.monotonic() + self.prepare_wait
        lock = self._acquire_load_lock(state, key)
        try:
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise self._busy(key[0])
            try:
                with state.lock:
                    tiled = state.open_images.get(key)
                if tiled is not None and tiled.is_fresh():
                    return tiled
                tiled = self._load(state, key, deadline)
                with state.lock:
                    state.open_images[key] = tiled
                    state.touched[key] = time.monotonic()
                    # Forget the touch times of images that are no longer open.
                    for stale in [k for k in state.touched if k not in state.open_images]:
                        del state.touched[stale]
                return tiled
            finally:
                lock.release()
        finally:
            self._release_load_lock(state, key)

    def _touch_due(self, state: _ProcessState, key: _Key) -> bool:
        """Tell whether an image in use should be touched now (call under the lock)."""
        if not self.max_cached_images:
            return False
        now = time.monotonic()
        last = state.touched.get(key)
        if last is not None and now - last < TOUCH_SECONDS:
            return False
        state.touched[key] = now
        return True

    def _busy(self, path: str) -> ImageBusyError:
        wait = int(self.prepare_wait)
        return ImageBusyError(
            f"image {os.path.basename(path)} is still being prepared; "
            "retry in a few seconds",
            retry_after=max(1, wait) if wait > 0 else 5,
        )

    @staticmethod
    def _acquire_load_lock(state: _ProcessState, key: _Key) -> threading.Lock:
        with state.lock:
            entry = state.loading.get(key)
            if entry is None:
                entry = state.loading[key] = (threading.Lock(), [0])
            entry[1][0] += 1
            return entry[0]

    @staticmethod
    def _release_load_lock(state: _ProcessState, key: _Key) -> None:
        with state.lock:
            entry = state.loading[key]
            entry[1][0] -= 1
            if entry[1][0] == 0:
                del state.loading[key]

    def _load(self, state: _ProcessState, key: _Key, deadline: float) -> Tiled:
        """Load (or prepare) one image and map its files; then keep the disk budget.

        The files are mapped right away, so that an eviction by another process
        cannot pull them away from requests later; if they vanish before that
        (evicted between loading and mapping), the image is loaded again.
        """
        for _ in range(_MAX_LOAD_ATTEMPTS):
            tiled = self._load_once(state, key, max(0.0, deadline - time.monotonic()))
            try:
                tiled.get_data()
                tiled.get_tiles()
            except FileNotFoundError:
                logger.info(
                    "%s was evicted while loading; loading it again", tiled.image_name
                )
                continue
            self._heal_stamp(tiled)
            if self.max_cached_images:
                budget.touch(tiled.object_filename)
                try:
                    budget.enforce_budget(
                        self.cache_dir,
                        self.max_cached_images,
                        keep=(budget.prefix_of(tiled.object_filename),),
                    )
                except OSError as error:
                    logger.warning("could not keep the cache folder's budget: %s", error)
            return tiled
        raise self._busy(key[0])

    def _heal_stamp(self, tiled: Tiled) -> None:
        """Give a loaded image its source stamp if it lacks it (prepared before stamps)."""
        key = self._stamp_key()
        prefix = budget.prefix_of(tiled.object_filename)
        if (
            key is None
            or read_source_stamp(self.cache_dir, prefix, key) == tiled.source_stamp
        ):
            return
        try:
            write_source_stamp(tiled.object_filename, tiled.source_stamp, key)
        except OSError as error:
            logger.warning("no source stamp for %s: %s", tiled.image_name, error)

    def _stamp_key(self) -> bytes | None:
        """Return the pickles' key if it exists (read each time: it may appear later)."""
        return find_secret_key(os.fspath(self.cache_dir), self._secret_key)

    def _load_once(self, state: _ProcessState, key: _Key, wait: float) -> Tiled:
        """Load (or prepare) one image; remember files that cannot be served."""
        path, extnum = key
        try:
            source = os.stat(path)
        except OSError:
            raise ImageNotFoundError(
                "the image disappeared from the data folder", ("query", "FIF")
            ) from None
        failure_key = (key, source.st_size, source.st_mtime_ns)
        with state.lock:
            failure = state.failures.get(failure_key)
        if failure is not None:
            raise BadFitsError(*failure)
        try:
            tiled = pickledTiled(
                path,
                cache_dir=self.cache_dir,
                lock_timeout=wait,
                secret_key=self._secret_key,
                extnum=extnum,
                **self.tiled_options,
            )
        except BadFitsError as error:
            with state.lock:
                # Message and location only: the exception would keep its frames.
                state.failures[failure_key] = (error.msg, error.loc)
            raise
        tiled.tile_cache = state.tile_cache
        return tiled

    def is_prepared(
        self, fif_path: str | os.PathLike[str], extnum: int | None = None
    ) -> bool:
        """Tell whether an image has a fresh prepared copy (no preparation needed).

        Parameters
        ----------
        fif_path : str or path
            Real path of the image, as returned by :meth:`resolve`.
        extnum : int, optional
            HDU number.

        Returns
        -------
        prepared : bool
            True if the image is open and fresh in this process and its pickle
            is still in the cache folder, or if a fresh, verified pickle made
            with the registry's tile size is in the cache folder.
        """
        path = os.fspath(fif_path)
        key: _Key = (path, extnum)
        state = self._process_state()
        with state.lock:
            tiled = state.open_images.get(key)
        # An open image may have been evicted from the disk since (disk budget).
        if tiled is not None and tiled.is_fresh() and os.path.exists(tiled.object_filename):
            return True
        try:
            source = os.stat(path)
            pickled = os.stat(
                get_object_filename(path, self.cache_dir, extnum, self.tile_size)
            )
        except OSError:
            return False
        # Reading and verifying a pickle costs far more than two stats: the verdict
        # is kept until the source or the pickle changes.
        stamp = (source.st_size, source.st_mtime_ns, pickled.st_size, pickled.st_mtime_ns)
        with state.lock:
            memo = state.prepared.get(key)
        if memo is not None and memo[0] == stamp:
            return memo[1]
        prepared = (
            get_prepared(
                path,
                self.cache_dir,
                secret_key=self._secret_key,
                extnum=extnum,
                tilesize=self.tile_size,
            )
            is not None
        )
        with state.lock:
            state.prepared[key] = (stamp, prepared)
        return prepared

    def is_listed_prepared(
        self, real_path: str, source: os.stat_result, key: bytes | None
    ) -> bool:
        """Tell cheaply whether an image (whole file) is prepared, for listings.

        One read of the image's source stamp (a few bytes, with its HMAC) and
        one stat of its pickle, compared with the source's stat: no pickle is
        read. Nothing is written.

        Parameters
        ----------
        real_path : str
            Real path of the image.
        source : os.stat_result
            Its stat.
        key : bytes or None
            The pickles' key (None: there is none yet, nothing is prepared).

        Returns
        -------
        prepared : bool
            True if a stamp made with ``key`` matches the source's size and
            mtime and the format version, and the pickle is there.
        """
        if key is None:
            return False
        prefix = get_prefix(real_path, None, self.tile_size)
        stamp = read_source_stamp(self.cache_dir, prefix, key)
        if stamp != SourceStamp(FORMAT_VERSION, source.st_size, source.st_mtime_ns):
            return False
        return os.path.exists(os.path.join(self.cache_dir, prefix + ".pkl"))

    def list_folder(
        self, folder: str, after: listing.Position | None = None, limit: int = 100
    ) -> listing.FolderPage:
        """Return one page of a folder of the data folder: sub-folders, then images.

        The cost is that of the page: the folder's names are read once per
        process and kept until it changes; each entry of the page costs an
        lstat and :meth:`is_listed_prepared`. Nothing is prepared, nothing
        written.

        Parameters
        ----------
        folder : str
            Client-given folder relative to the data folder (``""``: the root),
            confined like image names.
        after : Position, optional
            Last entry of the previous page (``page.next_position``).
        limit : int, optional
            Most entries on the page.

        Returns
        -------
        page : FolderPage
            The page.

        Raises
        ------
        BadParameterError
            If the folder name is malformed.
        FolderNotFoundError
            If there is no such folder inside the data folder.
        """
        root = os.fspath(self.data_dir)
        path = listing.resolve_folder(root, folder)
        try:
            scan = self._process_state().folders.get(path)
        except OSError:
            # Removed (or made unreadable) since it was resolved.
            raise FolderNotFoundError(
                "that folder can no longer be read; list its parent again",
                ("query", "dir"),
            ) from None
        key = self._stamp_key()

        def prepared(real: str, info: os.stat_result) -> bool:
            return self.is_listed_prepared(real, info, key)

        return listing.read_page(root, folder, path, scan, after, limit, prepared)

    def stats(self) -> dict[str, Any]:
        """Return figures about this process's caches (for monitoring).

        Returns
        -------
        stats : dict
            ``pid``; ``open_images`` (one ``{"name", "extnum", "size",
            "mtime_ns"}`` per open image: its public name and the source file
            size and modification time it was prepared from) and
            ``max_open_images``; ``tile_cache`` (``bytes``, ``max_bytes``,
            ``entries``, ``hits``, ``misses``); ``prepared_images`` (pickles in
            the cache folder) and ``max_cached_images`` (0: no limit).
        """
        state = self._process_state()
        with state.lock:
            items = list(state.open_images.items())
        root = os.fspath(self.data_dir)
        open_images = [
            {
                "name": Path(os.path.relpath(path, root)).as_posix(),
                "extnum": extnum,
                "size": int(tiled.source_size),
                "mtime_ns": int(tiled.source_mtime_ns),
            }
            for (path, extnum), tiled in items
        ]
        open_images.sort(key=lambda image: (str(image["name"]), image["extnum"] or -1))
        cache = state.tile_cache
        try:
            prepared = sum(name.endswith(".pkl") for name in os.listdir(self.cache_dir))
        except OSError:
            prepared = 0
        return {
            "pid": state.pid,
            "open_images": open_images,
            "max_open_images": self.max_open_images,
            "tile_cache": {
                "bytes": cache.currsize,
                "max_bytes": cache.maxbytes,
                "entries": len(cache),
                "hits": cache.hits,
                "misses": cache.misses,
            },
            "prepared_images": prepared,
            "max_cached_images": self.max_cached_images,
        }

    def list_images(self) -> list[dict[str, Any]]:
        """Return the FITS files of the data folder, recursively.

        Hidden files and folders are skipped, and so are symlinks that lead
        outside the data folder or to anything but a regular file.

        Returns
        -------
        images : list of dict
            One ``{"name": str, "size": int, "prepared": bool}`` per file, sorted
            by name; ``name`` is the relative POSIX path (the ``FIF`` value) and
            ``size`` the file size in bytes.
        """
        images = []
        root = os.fspath(self.data_dir)
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for filename in files:
                if filename.startswith(".") or not is_fits_name(filename):
                    continue
                real = os.path.realpath(os.path.join(folder, filename))
                if not self._inside(real):
                    continue
                try:
                    info = os.stat(real)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                name = Path(os.path.relpath(os.path.join(folder, filename), root))
                images.append(
                    {
                        "name": name.as_posix(),
                        "size": info.st_size,
                        "prepared": self.is_prepared(real),
                    }
                )
        images.sort(key=lambda image: str(image["name"]))
        return images
