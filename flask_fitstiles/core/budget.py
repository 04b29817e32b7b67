"""Disk budget of a cache folder: when each prepared image was last used, and eviction.

A prepared image is three files that share one prefix (see
:func:`~flask_fitstiles.tiled.get_object_filename` and friends): ``<prefix>.pkl``
(the signed pickle), ``<prefix>.data.f32`` (the frame) and ``<prefix>.tiles.f32``
(the reduced levels), with a small ``<prefix>.src`` (the source stamp that
listings read) that goes with them. Its preparation is guarded by the inter-process lock
``<prefix>.pkl.lock``; an interrupted preparation leaves files named
``<file>.tmp-<pid>-<hex>`` behind.

Recency is the later of the pickle's modification time (when it was prepared)
and its access time, which :func:`touch` sets explicitly (so it works on
``noatime`` mounts too). :func:`enforce_budget` removes the least recently used
prepared images beyond a count, under a folder-wide lock so that two workers
never evict at once, and under each image's own lock so that an image being
prepared is never touched. It removes the pickle first: an image without its
pickle is simply prepared again, whereas a pickle without its data would only
be found stale later.

Processes that already memory-mapped the files of an evicted image keep reading
them (on POSIX systems an unlinked file lives on while it is mapped); the disk
space comes back when the last of them closes the image.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from filelock import FileLock
from filelock import Timeout as LockTimeout

__all__ = [
    "BUDGET_LOCK_FILENAME",
    "PreparedFiles",
    "enforce_budget",
    "prefix_of",
    "scan",
    "touch",
]

logger = logging.getLogger(__name__)

#: Folder-wide lock held while evicting prepared images.
BUDGET_LOCK_FILENAME = ".fitstiles-budget.lock"

# Seconds to wait for another process that is evicting; it does the same job.
_BUDGET_LOCK_WAIT = 10.0

# <stem>-<20 hex digits>.<kind>[.tmp-...]: the names tiled.py gives the files.
_FILE_RE = re.compile(
    r"(?P<prefix>.+-[0-9a-f]{20})"
    r"(?P<kind>\.pkl|\.data\.f32|\.tiles\.f32|\.src)(?P<tmp>\.tmp-.+)?"
)


@dataclass
class PreparedFiles:
    """The files of one prepared (or partly prepared) image in a cache folder.

    Parameters
    ----------
    prefix : str
        Common file name prefix.
    last_used_ns : int or None
        Recency of the pickle (later of access and modification times), in
        nanoseconds; None if there is no pickle.
    names : list of str
        Names (in the cache folder) of every file of the image, leftovers of
        interrupted preparations included.
    """

    prefix: str
    last_used_ns: int | None = None
    names: list[str] = field(default_factory=list)

    @property
    def object_name(self) -> str:
        """Name of the pickle in the cache folder."""
        return self.prefix + ".pkl"


def prefix_of(object_filename: str | os.PathLike[str]) -> str:
    """Return the prefix of a prepared image from the path of its pickle.

    Parameters
    ----------
    object_filename : str or path
        Path of the pickle (``<prefix>.pkl``).

    Returns
    -------
    prefix : str
        File name prefix shared by the image's files.
    """
    name = os.path.basename(os.fspath(object_filename))
    return name[: -len(".pkl")] if name.endswith(".pkl") else name


def touch(object_filename: str | os.PathLike[str]) -> None:
    """Mark a prepared image as used now (sets its pickle's access time).

    Parameters
    ----------
    object_filename : str or path
        Path of the pickle; a missing file (an evicted image) is ignored.
    """
    path = os.fspath(object_filename)
    try:
        mtime_ns = os.stat(path).st_mtime_ns
        os.utime(path, ns=(time.time_ns(), mtime_ns))
    except OSError:
        pass


def scan(cache_dir: str | os.PathLike[str]) -> dict[str, PreparedFiles]:
    """Return the prepared images of a cache folder, with all their files.

    Parameters
    ----------
    cache_dir : str or path
        Cache folder.

    Returns
    -------
    images : dict
        :class:`PreparedFiles` by prefix; the lock files are not listed.
    """
    images: dict[str, PreparedFiles] = {}
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return images
    for entry in entries:
        match = _FILE_RE.fullmatch(entry.name)
        if match is None:
            continue
        prefix = match["prefix"]
        files = images.setdefault(prefix, PreparedFiles(prefix))
        files.names.append(entry.name)
        if match["kind"] == ".pkl" and match["tmp"] is None:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            files.last_used_ns = max(info.st_atime_ns, info.st_mtime_ns)
    return images


def _recency_ns(path: str) -> int | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return max(info.st_atime_ns, info.st_mtime_ns)


def _remove_image(cache_dir: str, files: PreparedFiles) -> bool:
    """Remove one image's files under its preparation lock.

    Returns False, removing nothing, if the image is being prepared or was
    prepared or used again since the folder was scanned.
    """
    object_filename = os.path.join(cache_dir, files.object_name)
    lock = FileLock(object_filename + ".lock", timeout=0)
    try:
        with lock:
            if _recency_ns(object_filename) != files.last_used_ns:
                return False
            # The pickle first: without it the image is simply prepared again.
            names = [files.prefix + kind for kind in (".pkl", ".data.f32", ".tiles.f32")]
            names += [name for name in files.names if name not in names]
            for name in names:
                try:
                    os.unlink(os.path.join(cache_dir, name))
                except FileNotFoundError:
                    pass
    except LockTimeout:
        return False
    return True


def enforce_budget(
    cache_dir: str | os.PathLike[str],
    max_images: int,
    keep: Collection[str] = (),
) -> list[str]:
    """Remove the least recently used prepared images beyond ``max_images``.

    Also removes the files of images whose preparation was interrupted (files
    without a pickle, nobody preparing them). Images being prepared are left
    alone; so is everything if another process is already evicting.

    Parameters
    ----------
    cache_dir : str or path
        Cache folder.
    max_images : int
        Most prepared images to keep; 0 or less means no limit (nothing is done).
    keep : collection of str, optional
        Prefixes never to remove (e.g. the image just prepared).

    Returns
    -------
    removed : list of str
        Prefixes of the images whose files were removed.
    """
    if max_images <= 0:
        return []
    folder = os.fspath(cache_dir)
    removed: list[str] = []
    budget_lock = FileLock(
        os.path.join(folder, BUDGET_LOCK_FILENAME), timeout=_BUDGET_LOCK_WAIT
    )
    try:
        with budget_lock:
            images = scan(folder)
            prepared = sorted(
                (files for files in images.values() if files.last_used_ns is not None),
                key=lambda files: files.last_used_ns or 0,
                reverse=True,
            )
            kept = [files for files in prepared if files.prefix in keep]
            others = [files for files in prepared if files.prefix not in keep]
            surplus = others[max(0, max_images - len(kept)) :]
            orphans = [files for files in images.values() if files.last_used_ns is None]
            for files in (*surplus, *orphans):
                if files.prefix not in keep and _remove_image(folder, files):
                    removed.append(files.prefix)
    except LockTimeout:
        return removed
    if removed:
        logger.info(
            "removed %d prepared image(s) from the cache folder (budget: %d)",
            len(removed),
            max_images,
        )
    return removed
