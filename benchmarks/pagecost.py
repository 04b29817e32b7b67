"""Measure what new page-cache pages cost on this machine (why preparing is not linear).

Creates a 1 GiB file in the benchmark folder, maps it and touches one byte per page,
128 MiB at a time: after a quiet spell (freed memory goes back to the hypervisor
within seconds on small cloud machines), then at once again (reusing the pages the
first run just freed), then from 8 threads after a quiet spell. Prints the
cumulative time after each 128 MiB.

Run: ``.venv/bin/python benchmarks/pagecost.py``
"""

from __future__ import annotations

import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from benchlib import bench_dir

SIZE = 1 << 30
CHUNK = 128 << 20
QUIET = 6.0


def touch_file(path: Path, threads: int) -> list[float]:
    """Touch every page of a new mapped file; return cumulative seconds per chunk."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, SIZE)
        mapping = mmap.mmap(fd, SIZE)
    finally:
        os.close(fd)
    pages = np.frombuffer(mapping, dtype=np.uint8)
    marks: list[float] = []
    started = time.perf_counter()
    step = CHUNK // threads

    def touch(offset: int, pages: np.ndarray = pages) -> None:
        pages[offset : offset + step : mmap.PAGESIZE] = 1

    with ThreadPoolExecutor(threads) as pool:
        for chunk in range(0, SIZE, CHUNK):
            list(pool.map(touch, range(chunk, chunk + CHUNK, step)))
            marks.append(time.perf_counter() - started)
    del touch, pages  # the map cannot close while a view of it lives
    mapping.close()
    path.unlink()
    return marks


def main() -> None:
    """Print the cumulative touch times, cold and at once again, for 1 and 8 threads."""
    path = bench_dir() / "pagecost.tmp"
    runs = [
        ("1 thread, after a quiet spell", QUIET, 1),
        ("1 thread, at once again", 0.0, 1),
        ("8 threads, after a quiet spell", 2 * QUIET, 8),
    ]
    for label, quiet, threads in runs:
        os.sync()
        time.sleep(quiet)
        marks = touch_file(path, threads)
        steps = " ".join(f"{m:5.2f}" for m in marks)
        print(f"{label:31s} cumulative s per 128 MiB: {steps}  ({marks[-1]:.2f} s/GiB)")


if __name__ == "__main__":
    main()
