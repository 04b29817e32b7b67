"""File names and safe writes in the cache folder of prepared images.

Each prepared image has three files, named after the image's absolute path, HDU
and tile size: the pickled :class:`~flask_fitstiles.tiled.Tiled` object, the
frame and the reduced pyramid levels. Files are written under a temporary name
next to their final one and renamed when complete, so a crash never leaves a
half file under a final name; :func:`remove_leftovers` clears what a crash left.

A fourth, tiny file, the source stamp (``<prefix>.src``), records the source
size and modification time the pickle was made from, in plain text with an
HMAC made with the pickles' key: listings of the data folder tell "prepared"
from a stat and a read of a few bytes, without reading and verifying the
pickle (:func:`read_source_stamp`). A stamp made with another key (the key
changed, so the pickle will not verify either) does not count. It is a hint
for listings only; serving an image always verifies the pickle itself.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import re
import secrets
import sys
from typing import Any, NamedTuple

from .signing import sign_text

__all__ = [
    "SourceStamp",
    "aside",
    "get_cache_dir",
    "get_data_filename",
    "get_image_filename",
    "get_object_filename",
    "get_prefix",
    "get_tiles_filename",
    "read_source_stamp",
    "remove_leftovers",
    "start_writeback",
    "unlink_quietly",
    "write_source_stamp",
]

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def get_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Return the cache folder, creating it (mode 0700) if needed.

    Parameters
    ----------
    cache_dir : str or path, optional
        Explicit folder; None means FITSTILES_CACHE_DIR from the environment,
        else ``$XDG_CACHE_HOME/flask_fitstiles`` (``~/.cache/flask_fitstiles``).

    Returns
    -------
    cache_dir : str
        Absolute path of the folder.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("FITSTILES_CACHE_DIR") or None
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache"
        )
        cache_dir = os.path.join(base, "flask_fitstiles")
    path = os.path.abspath(os.fspath(cache_dir))
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def get_prefix(
    image_filename: str | os.PathLike[str],
    extnum: int | None = None,
    tilesize: tuple[int, ...] = (256, 256),
) -> str:
    """Return the file name prefix of an image's files in the cache folder.

    Unlike the ``get_*_filename`` functions it neither needs nor creates the
    cache folder: listings use it to look for prepared images without writing.

    Parameters
    ----------
    image_filename : str or path
        Full image filename.
    extnum : int, optional
        HDU number, when a single HDU of the file is served.
    tilesize : tuple of int, optional
        Tile shape (y, x) of the pyramid.

    Returns
    -------
    prefix : str
        ``<safe file stem>-<20 hex digits>``, shared by the image's files.
    """
    path = os.path.abspath(os.fspath(image_filename))
    # Each (file, HDU, tile size) has its own files: two apps with different tile
    # sizes over one cache folder must not prepare over each other.
    tiles = "x".join(str(int(v)) for v in tilesize)
    digest = hashlib.sha256(f"{path}\0{extnum}\0{tiles}".encode()).hexdigest()[:20]
    stem = _UNSAFE_CHARS.sub("_", os.path.basename(path))[:64]
    return f"{stem}-{digest}"


def get_object_filename(
    image_filename: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    extnum: int | None = None,
    tilesize: tuple[int, int] = (256, 256),
) -> str:
    """Return the name of the file containing the pickled Tiled object.

    Parameters
    ----------
    image_filename : str or path
        Full image filename.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    extnum : int, optional
        HDU number, when a single HDU of the file is served.
    tilesize : tuple[int, int], optional
        Tile shape (y, x) of the pyramid.

    Returns
    -------
    filename : str
        Pickled object filename.
    """
    prefix = get_prefix(image_filename, extnum, tilesize)
    return os.path.join(get_cache_dir(cache_dir), prefix + ".pkl")


def get_image_filename(prefix: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Return the name of the file containing the memory-mapped image datacube.

    Parameters
    ----------
    prefix : str
        Image name prefix in the cache folder.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).

    Returns
    -------
    filename : str
        Filename of the memory-mapped frame (channels, y, x) float32.
    """
    return os.path.join(get_cache_dir(cache_dir), prefix + ".data.f32")


def get_data_filename(
    image_filename: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    extnum: int | None = None,
    tilesize: tuple[int, int] = (256, 256),
) -> str:
    """Return the name of the file containing the memory-mapped image data.

    Parameters
    ----------
    image_filename : str or path
        Full image filename.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    extnum : int, optional
        HDU number, when a single HDU of the file is served.
    tilesize : tuple[int, int], optional
        Tile shape (y, x) of the pyramid.

    Returns
    -------
    filename : str
        Filename of the memory-mapped image data.
    """
    return get_image_filename(get_prefix(image_filename, extnum, tilesize), cache_dir)


def get_tiles_filename(
    image_filename: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    extnum: int | None = None,
    tilesize: tuple[int, int] = (256, 256),
) -> str:
    """Return the name of the file containing the memory-mapped tile datacube.

    Parameters
    ----------
    image_filename : str or path
        Full image filename.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    extnum : int, optional
        HDU number, when a single HDU of the file is served.
    tilesize : tuple[int, int], optional
        Tile shape (y, x) of the pyramid.

    Returns
    -------
    filename : str
        Filename of the memory-mapped reduced pyramid levels.
    """
    prefix = get_prefix(image_filename, extnum, tilesize)
    return os.path.join(get_cache_dir(cache_dir), prefix + ".tiles.f32")


def aside(final: str) -> str:
    """Return a temporary name next to ``final`` for a file being written.

    Parameters
    ----------
    final : str
        Final file name.

    Returns
    -------
    name : str
        Unique name in the same folder, recognised by :func:`remove_leftovers`.
    """
    return f"{final}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def remove_leftovers(final: str) -> None:
    """Remove temporary files of interrupted writes of ``final``.

    Call it only while holding the image's preparation lock.

    Parameters
    ----------
    final : str
        Final file name.
    """
    folder, name = os.path.split(final)
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(name + ".tmp-"):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


class SourceStamp(NamedTuple):
    """What a prepared image was made from, as its source stamp file records it.

    Parameters
    ----------
    format_version : int
        Format version of the pickle (``tiled.FORMAT_VERSION``).
    size : int
        Source file size in bytes.
    mtime_ns : int
        Source file modification time in nanoseconds.
    """

    format_version: int
    size: int
    mtime_ns: int


_STAMP_SUFFIX = ".src"
_STAMP_MAGIC = "fitstiles-source"
# A stamp is one short line; anything longer is not one.
_STAMP_MAX_BYTES = 128


def _stamp_filename(object_filename: str) -> str:
    base = object_filename[:-4] if object_filename.endswith(".pkl") else object_filename
    return base + _STAMP_SUFFIX


def _stamp_text(stamp: SourceStamp) -> str:
    return f"{_STAMP_MAGIC} {stamp.format_version} {stamp.size} {stamp.mtime_ns}"


def write_source_stamp(object_filename: str, stamp: SourceStamp, key: bytes) -> None:
    """Write the source stamp of a prepared image next to its pickle (atomically).

    Parameters
    ----------
    object_filename : str
        Path of the pickle (``<prefix>.pkl``); the stamp is ``<prefix>.src``.
    stamp : SourceStamp
        What the pickle was made from.
    key : bytes
        The key that signed the pickle.

    Raises
    ------
    OSError
        If the stamp cannot be written.
    """
    final = _stamp_filename(object_filename)
    temp = aside(final)
    text = _stamp_text(stamp)
    try:
        with open(temp, "x", encoding="ascii") as f:
            f.write(f"{text} {sign_text(text, key)}\n")
        os.replace(temp, final)
    except BaseException:
        unlink_quietly(temp)
        raise


def read_source_stamp(
    cache_dir: str | os.PathLike[str], prefix: str, key: bytes
) -> SourceStamp | None:
    """Return the source stamp of a prepared image, if it has one made with ``key``.

    Parameters
    ----------
    cache_dir : str or path
        Cache folder (not created).
    prefix : str
        Prefix of the image's files (:func:`get_prefix`).
    key : bytes
        The key of the pickles.

    Returns
    -------
    stamp : SourceStamp or None
        The stamp; None if there is none, it is not a stamp, or it was made
        with another key.
    """
    path = os.path.join(os.fspath(cache_dir), prefix + _STAMP_SUFFIX)
    try:
        with open(path, "rb") as f:
            raw = f.read(_STAMP_MAX_BYTES + 1)
    except OSError:
        return None
    if len(raw) > _STAMP_MAX_BYTES or not raw.isascii():
        return None
    text, _, mac = raw.decode("ascii").strip().rpartition(" ")
    fields = text.split(" ")
    if len(fields) != 4 or fields[0] != _STAMP_MAGIC:
        return None
    try:
        stamp = SourceStamp(int(fields[1]), int(fields[2]), int(fields[3]))
    except ValueError:
        return None
    # Compared in constant time, like every signature.
    if not hmac.compare_digest(mac, sign_text(_stamp_text(stamp), key)):
        return None
    return stamp


def unlink_quietly(path: str) -> None:
    """Remove a file if it exists, ignoring errors.

    Parameters
    ----------
    path : str
        File to remove.
    """
    try:
        os.unlink(path)
    except OSError:
        pass


def _load_sync_file_range() -> Any:
    """Return libc's ``sync_file_range`` (Linux), or None where there is none."""
    try:
        # The process's own symbols include libc's (no ldconfig lookup needed).
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    func.restype = ctypes.c_int
    return func


_SYNC_FILE_RANGE = _load_sync_file_range() if sys.platform.startswith("linux") else None
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to start writing a just-written byte range to disk, now.

    Dirty pages otherwise wait (up to 30 s, or until gigabytes pile up) and the
    final ``fsync`` writes all of them while nothing else runs; started early,
    the disk works while the next stripes are computed, and that ``fsync`` only
    waits for the tail. It does not wait and makes no durability promise: the
    ``fsync`` before the pickle is written does. A no-op where unsupported.

    Parameters
    ----------
    fd : int
        File descriptor the range was written through.
    offset, nbytes : int
        Byte range.
    """
    if _SYNC_FILE_RANGE is not None:
        # Failure only means no early start; fsync still does the work later.
        _SYNC_FILE_RANGE(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)
