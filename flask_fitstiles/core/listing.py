"""Folder listings of the data folder, one page at a time.

A page of a folder costs what the page holds, not what the folder holds: the
folder's entry names are read once per process (one ``scandir``, no per-file
system call except for symlinks) and kept, sorted, in :class:`FolderScans`
until the folder changes; a page then starts by bisection after the position
the previous page ended at, and only the entries of the page are looked at
(an ``lstat`` each, the target of a symlink checked and stat'ed, and whatever
the caller's ``prepared`` check costs).

Order: sub-folders first, then images, each sorted by name (code points, as
Python sorts strings). A :data:`Position` ``(kind, name)`` is the last entry a
page returned; the next page holds what comes strictly after it, so entries
added or removed between two pages never make the listing repeat or skip the
entries that stay.

Nothing here imports Flask; names given by clients are checked here.
"""

from __future__ import annotations

import heapq
import os
import stat
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from ..errors import BadParameterError, FolderNotFoundError

__all__ = [
    "FOLDER",
    "IMAGE",
    "MAX_KEPT_NAMES",
    "FolderPage",
    "FolderScan",
    "FolderScans",
    "ImageEntry",
    "Position",
    "check_folder_name",
    "read_page",
    "resolve_folder",
]

#: Kind of an entry in a :data:`Position`: sub-folders come before images.
FOLDER = 0
IMAGE = 1

#: Where a page ended: ``(kind, name)`` of the last entry it returned.
Position = tuple[int, str]

#: Most entry names a process keeps, all folders together: about 70 bytes each,
#: so at most some 35 MB per worker. A larger folder is read for every page.
MAX_KEPT_NAMES = 500_000

# A folder modified less than this before it was read may change again within
# the same timestamp tick (Linux stamps files with a coarse clock), and a kept
# listing would then never see that change: such a listing is not kept.
_SETTLE_NS = 1_000_000_000
# Entries that may be looked at per page entry asked for: a page skips broken
# symlinks and the like, but never looks at an unbounded run of them.
_LOOK_FACTOR = 4
_LOOK_EXTRA = 64
_MAX_ECHO = 200


def check_folder_name(name: str) -> list[str]:
    """Return the components of a client-given folder name, or refuse it.

    Parameters
    ----------
    name : str
        Folder relative to the data folder, POSIX style; ``""`` is the data
        folder itself.

    Returns
    -------
    parts : list of str
        Its components (empty for the data folder).

    Raises
    ------
    BadParameterError
        If the name is absolute, or has ``..``, ``.``, hidden or empty
        components, backslashes or NUL characters.
    """
    if name == "":
        return []
    parts = name.split("/")
    if "\0" in name or "\\" in name or any(not p or p.startswith(".") for p in parts):
        raise BadParameterError(
            "dir must name a folder by its path relative to the data folder (empty for "
            "the data folder itself), without a leading '/', '..', hidden or empty "
            "components, backslashes or NUL",
            ("query", "dir"),
        )
    return parts


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def resolve_folder(root: str, name: str) -> str:
    """Return the real path of a folder given by its name relative to the data folder.

    Parameters
    ----------
    root : str
        Real (symlink-free) path of the data folder.
    name : str
        Client-given folder name (see :func:`check_folder_name`).

    Returns
    -------
    real : str
        Real path of a folder that is the data folder or lies inside it.

    Raises
    ------
    BadParameterError
        If the name is malformed.
    FolderNotFoundError
        If no such folder exists inside the data folder (a symlink that leads
        outside it counts as missing).
    """
    parts = check_folder_name(name)
    real = os.path.realpath(os.path.join(root, *parts))
    if not _inside(root, real) or not os.path.isdir(real):
        shown = name if len(name) <= _MAX_ECHO else name[:_MAX_ECHO] + "..."
        raise FolderNotFoundError(
            f"no folder {shown!r} in the data folder; list the data folder itself "
            "(dir empty) to see its folders",
            ("query", "dir"),
        )
    return real


class FolderScan:
    """The entry names of one folder, as read at one moment.

    Sorting 100 000 names costs more than selecting the few a page needs, so a
    scan is sorted only once it is used again (:meth:`sort`, called when a kept
    scan serves another page); until then a page selects its entries from the
    unsorted names. Both give the same pages.

    Parameters
    ----------
    signature : tuple of int
        Device, inode, modification and change times of the folder when read.
    folders : list of str
        Names of the sub-folders (symlinks to folders included).
    images : list of str
        Names of the entries with a FITS suffix that are not folders.
    """

    __slots__ = ("signature", "_folders", "_images", "_sorted")

    def __init__(
        self, signature: tuple[int, ...], folders: list[str], images: list[str]
    ) -> None:
        self.signature = signature
        self._folders = folders
        self._images = images
        self._sorted = False

    def __len__(self) -> int:
        return len(self._folders) + len(self._images)

    @property
    def folders(self) -> list[str]:
        """Names of the sub-folders, sorted."""
        return sorted(self._folders) if not self._sorted else list(self._folders)

    @property
    def images(self) -> list[str]:
        """Names of the images, sorted."""
        return sorted(self._images) if not self._sorted else list(self._images)

    def sort(self) -> None:
        """Sort the names once, so that pages start by bisection from then on."""
        if not self._sorted:
            # New lists, swapped in: a thread selecting meanwhile reads the old ones.
            self._folders, self._images = sorted(self._folders), sorted(self._images)
            self._sorted = True

    def after(self, position: Position | None, count: int) -> list[Position]:
        """Return the first entries that come strictly after a position, in order.

        Parameters
        ----------
        position : Position or None
            Last entry of the previous page; None starts at the beginning.
        count : int
            Most entries returned.

        Returns
        -------
        entries : list of Position
            ``(kind, name)`` of each following entry, folders first, then
            images, each by name.
        """
        # Read once: sort() may swap the lists and the flag in another thread.
        is_sorted, folders, images = self._sorted, self._folders, self._images
        kind, name = position if position is not None else (FOLDER, "")
        entries: list[Position] = []
        if kind == FOLDER:
            entries = [(FOLDER, n) for n in _first_after(folders, name, count, is_sorted)]
            name = ""
        if len(entries) < count:
            more = _first_after(images, name, count - len(entries), is_sorted)
            entries += [(IMAGE, n) for n in more]
        return entries


def _first_after(names: list[str], name: str, count: int, is_sorted: bool) -> list[str]:
    """Return the ``count`` smallest names greater than ``name``, sorted."""
    if is_sorted:
        start = bisect_right(names, name)
        return names[start : start + count]
    # "" is smaller than any name: no filtering needed from the start.
    candidates = [n for n in names if n > name] if name else names
    return heapq.nsmallest(count, candidates)


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)


def scan_folder(path: str, is_image_name: Callable[[str], bool]) -> FolderScan:
    """Read the names of a folder's sub-folders and images (hidden entries skipped).

    Parameters
    ----------
    path : str
        Real path of the folder.
    is_image_name : callable
        Tells whether a file name is an image name (its suffix).

    Returns
    -------
    scan : FolderScan
        The sorted names.
    """
    signature = _signature(os.stat(path))
    folders: list[str] = []
    others: list[str] = []
    # This loop runs over every entry of folders of a hundred thousand files: it
    # does the least per entry. is_dir answers from the folder's own record (no
    # system call) except for symlinks, which it follows; symlinks are checked
    # when they are listed (read_page).
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (folders if is_dir else others).append(entry.name)
    return FolderScan(
        signature,
        [name for name in folders if not name.startswith(".")],
        [name for name in others if not name.startswith(".") and is_image_name(name)],
    )


class FolderScans:
    """Per-process memo of folder scans, checked against the folder on each use.

    A kept scan is used while the folder's device, inode, modification and
    change times are the same (an entry added, removed or renamed changes
    them); its size is bounded in entries, least recently used scans go first.

    Parameters
    ----------
    is_image_name : callable
        Tells whether a file name is an image name.
    max_entries : int, optional
        Most names kept, all folders together (:data:`MAX_KEPT_NAMES`).
    """

    def __init__(
        self, is_image_name: Callable[[str], bool], max_entries: int = MAX_KEPT_NAMES
    ) -> None:
        self._is_image_name = is_image_name
        self._max_entries = max_entries
        self._scans: LRUCache[str, FolderScan] = LRUCache(
            maxsize=max_entries, getsizeof=lambda scan: len(scan) + 1
        )
        self._lock = threading.Lock()

    def get(self, path: str) -> FolderScan:
        """Return the scan of a folder, reading it again only if it changed.

        Parameters
        ----------
        path : str
            Real path of the folder.

        Returns
        -------
        scan : FolderScan
            The folder's sorted entry names.
        """
        now = time.time_ns()
        info = os.stat(path)
        with self._lock:
            scan = self._scans.get(path)
        if scan is not None and scan.signature == _signature(info):
            scan.sort()
            return scan
        scan = scan_folder(path, self._is_image_name)
        settled = now - scan.signature[2] > _SETTLE_NS
        if settled and len(scan) + 1 <= self._max_entries:
            with self._lock:
                self._scans[path] = scan
        return scan


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One image of a listing.

    Parameters
    ----------
    name : str
        Path relative to the data folder (the ``FIF`` value).
    size : int
        File size in bytes.
    prepared : bool
        Whether a fresh prepared copy is in the cache folder.
    """

    name: str
    size: int
    prepared: bool


@dataclass(frozen=True, slots=True)
class FolderPage:
    """One page of the listing of one folder.

    Parameters
    ----------
    dir : str
        The folder, relative to the data folder (``""``: the data folder).
    parent : str or None
        Its parent folder, None for the data folder.
    folders : list of str
        Sub-folders on this page, as paths relative to the data folder.
    images : list of ImageEntry
        Images on this page.
    next_position : Position or None
        Where the next page starts after; None on the last page.
    """

    dir: str
    parent: str | None
    folders: list[str]
    images: list[ImageEntry]
    next_position: Position | None


def _listed(root: str, full: str, kind: int) -> tuple[str, os.stat_result] | None:
    """Return the real path and stat of an entry fit to list, else None.

    The folder's path is real, so only a symlink entry can lead elsewhere: one
    lstat tells, and the target is checked only then.
    """
    try:
        info = os.lstat(full)
        real = full
        if stat.S_ISLNK(info.st_mode):
            real = os.path.realpath(full)
            if not _inside(root, real):
                return None
            info = os.stat(real)
    except OSError:
        return None
    fit = stat.S_ISDIR(info.st_mode) if kind == FOLDER else stat.S_ISREG(info.st_mode)
    return (real, info) if fit else None


def read_page(
    root: str,
    folder: str,
    path: str,
    scan: FolderScan,
    after: Position | None,
    limit: int,
    prepared: Callable[[str, os.stat_result], bool],
) -> FolderPage:
    """Return one page of a folder's listing, looking only at the page's entries.

    Parameters
    ----------
    root : str
        Real path of the data folder.
    folder : str
        Checked folder name relative to the data folder (``""`` for the root).
    path : str
        Real path of that folder (:func:`resolve_folder`).
    scan : FolderScan
        The folder's scan.
    after : Position or None
        Last entry of the previous page; None for the first page.
    limit : int
        Most entries (folders and images together) on the page.
    prepared : callable
        ``prepared(real_path, stat)`` tells whether an image is prepared.

    Returns
    -------
    page : FolderPage
        The page; fewer than ``limit`` entries only on the last page, or when
        entries that cannot be listed (broken or escaping symlinks, special
        files) were skipped.
    """
    folders: list[str] = []
    images: list[ImageEntry] = []
    budget = _LOOK_FACTOR * limit + _LOOK_EXTRA
    # One more than may be looked at: it tells whether a next page exists.
    entries = scan.after(after, budget + 1)
    looked = 0
    for kind, name in entries[:budget]:
        looked += 1
        entry = _listed(root, os.path.join(path, name), kind)
        if entry is not None:
            rel = f"{folder}/{name}" if folder else name
            if kind == FOLDER:
                folders.append(rel)
            else:
                real, info = entry
                images.append(ImageEntry(rel, info.st_size, prepared(real, info)))
        if len(folders) + len(images) >= limit:
            break
    more = looked < len(entries)
    parent = None if not folder else folder.rpartition("/")[0]
    next_position = entries[looked - 1] if more else None
    return FolderPage(folder, parent, folders, images, next_position)
