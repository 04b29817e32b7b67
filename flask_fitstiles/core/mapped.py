"""Cache files written and read through shared memory maps while an image is prepared.

Why maps and not ``pwrite``: each new page-cache page may cost a fault in the
hypervisor (about 11 us on the 2-vCPU benchmark machine, which hands idle memory
back to the host), and buffered writes to one file are serialised by the kernel
(the inode lock): 1 GiB took 3.3 s by ``pwrite`` from 1 to 32 threads, 1.1 to
1.5 s by stores through a shared map from 2 to 8 threads. Stores also save the
copy out of a stripe buffer. Blocks are reserved up front (``posix_fallocate``): a full disk
is an ``OSError`` then, never a ``SIGBUS`` in the middle of a store.

Pages are released as soon as a stripe is done, so that preparing an image keeps
a few stripes resident, not the whole file (resident set size counts mapped
pages), and their writeback starts right away.
"""

from __future__ import annotations

import mmap
import os
from types import TracebackType

import numpy as np

from .cachefiles import start_writeback

__all__ = ["FileMap"]

_PAGE = mmap.PAGESIZE


class FileMap:
    """A float32 cache file mapped whole, shared, for writing or reading.

    Parameters
    ----------
    fd : int
        Open file descriptor (read-write for ``writable``).
    nelements : int
        File size in float32 elements.
    writable : bool, optional
        Reserve the blocks (the file grows to its size) and map for writing;
        otherwise map an existing file read-only.
    """

    def __init__(self, fd: int, nelements: int, writable: bool = True) -> None:
        nbytes = 4 * int(nelements)
        if nbytes <= 0:
            raise ValueError("cannot map an empty file")
        if writable and hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, nbytes)
        elif writable:
            os.ftruncate(fd, nbytes)  # no block reservation here (macOS)
        self.fd = fd
        self.writable = writable
        self._map = mmap.mmap(
            fd,
            nbytes,
            access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ,
        )
        self._base = np.frombuffer(self._map, dtype=np.uint8)
        self._address = self._base.__array_interface__["data"][0]

    def array(self, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        """Return a float32 array view of the file.

        Parameters
        ----------
        shape : tuple of int
            Array shape.
        offset : int, optional
            Start, in float32 elements.

        Returns
        -------
        view : ndarray
            Writable if the map is.
        """
        count = int(np.prod(shape))
        view = self._base[4 * offset : 4 * (offset + count)].view(np.float32)
        return view.reshape(shape)

    def release(self, view: np.ndarray) -> None:
        """Let go of the pages of a contiguous view that is done with.

        Dirty pages stay in the page cache (their writeback is started); the
        process just stops holding them, so they leave its resident set.

        Parameters
        ----------
        view : ndarray
            C-contiguous view into this map.
        """
        if view.size == 0:
            return
        if not view.flags.c_contiguous:
            raise ValueError("only a contiguous view can be released")
        start = view.__array_interface__["data"][0] - self._address
        end = start + view.nbytes
        # Page-aligned cover: a neighbouring stripe's boundary page may be dropped
        # too, which is harmless for a shared file map (it faults back in).
        first = start - start % _PAGE
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED, first, end - first)
        if self.writable:
            start_writeback(self.fd, start, view.nbytes)

    def close(self) -> None:
        """Unmap the file (views must be gone); pages already written stay written."""
        self._base = np.empty(0, dtype=np.uint8)
        try:
            self._map.close()
        except BufferError:
            # A view is still alive (an exception unwinding): the map goes with it.
            pass

    def __enter__(self) -> FileMap:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
