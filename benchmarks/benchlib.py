"""Shared helpers of the benchmarks: folders, image names, ports, process memory."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Repository root (the folder holding ``benchmarks/``).
ROOT = Path(__file__).resolve().parent.parent

#: The benchmark images, by role (file names inside the benchmark folder).
STAR_8K = "star8k.fits"
CUBE_4K = "cube4k.fits"
MOSAIC_8K = "mosaic8k.fits"
STAR_1K = "star1k.fits"
STAR_16K = "star16k.fits"
ALL_IMAGES = (STAR_8K, CUBE_4K, MOSAIC_8K, STAR_1K, STAR_16K)


def bench_dir() -> Path:
    """Return the benchmark folder (``$BENCH_DIR`` or ``bench-data/``), created."""
    folder = Path(os.environ.get("BENCH_DIR") or ROOT / "bench-data").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def images_dir() -> Path:
    """Return the folder of the benchmark images (served by both servers)."""
    folder = bench_dir() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 600.0) -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port``; return the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(port: int, path: str = "/", timeout: float = 120.0) -> None:
    """Wait until the server on ``port`` answers ``path`` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_get(port, path, timeout=5.0)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer on port {port} after {timeout} s") from None
            time.sleep(0.2)


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces: the fields after it follow the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def _status_kib(pid: int, key: str) -> int:
    """Return a ``/proc/<pid>/status`` field in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pids: list[int], key: str = "VmRSS:") -> int:
    """Return the summed resident set size (or another status field) of ``pids``."""
    return 1024 * sum(_status_kib(pid, key) for pid in pids)


def reset_hwm(pid: int) -> None:
    """Reset the peak RSS (VmHWM) of a process to its current RSS, if allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def hwm_bytes(pid: int) -> int:
    """Return the peak resident set size (VmHWM) of one process."""
    return 1024 * _status_kib(pid, "VmHWM:")


@dataclass
class RssSampler:
    """Sample the memory of a process tree every ``interval`` seconds in a thread.

    ``peak_sum`` is the largest summed RSS of the tree seen, ``peak_anon`` the
    largest summed anonymous RSS (heap, not file pages); ``peak_hwm`` the largest
    VmHWM of one of its processes (the kernel's own peak, which no sampling
    interval can miss; reset at start where the kernel allows it, see
    ``reset_hwm``); ``baseline`` the summed RSS at start.
    """

    root_pid: int
    interval: float = 0.02
    baseline: int = 0
    peak_sum: int = 0
    peak_anon: int = 0
    peak_hwm: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        pids = process_tree(self.root_pid)
        for pid in pids:
            reset_hwm(pid)
        self.baseline = rss_bytes(pids)
        self.peak_sum = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        pids = process_tree(self.root_pid)
        self.peak_sum = max(self.peak_sum, rss_bytes(pids))
        self.peak_anon = max(self.peak_anon, rss_bytes(pids, "RssAnon:"))
        self.peak_hwm = max([self.peak_hwm, *(hwm_bytes(pid) for pid in pids)])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def cpu_jiffies() -> tuple[int, int]:
    """Return the machine's (busy, total) CPU time in clock ticks (from /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def tree_cpu(pid: int) -> dict[int, int]:
    """Return the CPU time (user + system, clock ticks) so far of each process of a tree.

    Children that exited and were waited for count in their parent's cumulative
    fields.
    """
    ticks = {}
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 (1-based) of the full line.
        ticks[member] = sum(int(v) for v in fields[11:15])
    return ticks


def wait_quiet(
    max_wait: float = 120.0, threshold: float = 0.15, window: float = 2.0
) -> float:
    """Wait until the machine's CPUs are mostly idle; return the last busy fraction.

    Other jobs on a small machine skew every figure: this waits, at most
    ``max_wait`` seconds, for a ``window`` with less than ``threshold`` of the CPU
    time busy.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy0, total0 = cpu_jiffies()
        time.sleep(window)
        busy1, total1 = cpu_jiffies()
        busy = (busy1 - busy0) / max(1, total1 - total0)
        if busy < threshold or time.monotonic() > deadline:
            return busy


def folder_bytes(folder: Path) -> int:
    """Return the total size of the regular files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
