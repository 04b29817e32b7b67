"""Load and preparation benchmark: our example app next to the reference server.

What ``make bench`` runs. For each server (ours under gunicorn; with
``BENCH_PEER=1`` also VisiOmatic 3.0.7, see ``peer.sh``), started on 127.0.0.1 with
2 workers and a fresh cache folder over the same images (``make_images.py``):

* preparing: time of the first INFO request of the 8192^2 and 16384^2 star
  fields (cold cache), peak RSS meanwhile, cache bytes / float32 image bytes;
* load, with ``wrk`` and ``tiles.lua``: random full-resolution 256 x 256 tiles of
  the 8192^2 image, uncached (random CNT per request) and cached (64 tiles),
  8 connections; one connection (tiles/s, p50, p99); one connection on the
  1024^2 and 16384^2 images (scale); colour cube and mosaic (8 connections);
* for ours also in-process: ``Tiled(path, cache_dir=...)`` alone in a
  subprocess, its time and ``ru_maxrss``;
* calibration: a bare Flask app (``bare_app.py``) under the same gunicorn
  settings answering a 32 KiB body, the ceiling of the HTTP stack.

Prints one table (ours, reference, ratio, the issue's target, PASS/FAIL) and
writes ``$BENCH_DIR/results.json``. Environment: ``BENCH_PEER=1`` (reference
server too), ``BENCH_DIR`` (folder), ``BENCH_DURATION`` (seconds per wrk run,
default 10), ``BENCH_WORKERS`` (default 2), ``BENCH_PREPARE_REPEAT`` (cold
preparations per image, default 3: the median time and the largest peak RSS
are reported), ``BENCH_QUIET_WAIT`` (longest wait, in seconds, for other jobs
to leave the CPUs before each timed run; default 60), ``BENCH_PEER_THREADS``
(engine threads of the reference; default its own).

Each wrk run also reports the server's CPU time per request, the share of it
taken by the busiest server process (keep-alive connections stay with the
worker that accepted them: when one worker gets all 8, it is near 100% and the
throughput halves) and the share of the machine's CPU that other jobs took
meanwhile ("other load"): on a 2-core machine a busy neighbour skews every
figure, so check both before trusting one.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    CUBE_4K,
    MOSAIC_8K,
    ROOT,
    STAR_1K,
    STAR_8K,
    STAR_16K,
    RssSampler,
    bench_dir,
    cpu_jiffies,
    folder_bytes,
    free_port,
    http_get,
    images_dir,
    tree_cpu,
    wait_http,
    wait_quiet,
)
from make_images import make_images  # noqa: E402

HERE = Path(__file__).resolve().parent
LUA = HERE / "tiles.lua"
DURATION = int(os.environ.get("BENCH_DURATION") or 10)
WORKERS = int(os.environ.get("BENCH_WORKERS") or 2)
WARMUP = 2  # seconds of requests before the timed runs
# Longest wait for the machine to be quiet before each timed run, seconds.
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT") or 60)
# Cold preparations of the 8192^2 and 16384^2 images per server (median time).
PREPARE_REPEAT = int(os.environ.get("BENCH_PREPARE_REPEAT") or 3)
MB = 1e6
# A new random seed for every wrk run: no run may repeat the requests of another.
_SEEDS = itertools.count(int(time.time()) % 100_000 * 100)

# The reference's figures from the issue, used for the targets when it is not run.
ISSUE_REFERENCE = {
    "uncached_c8_tps": 118.0,
    "cached_c8_tps": 132.0,
    "single_p50_ms": 16.0,
    "prepare_s": 2.5,
    "prepare_peak_mb": 975.0,
    "cache_ratio": 2.3,
}


# --------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Return the path of ``wrk``, installing the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if not shutil.which("apt-get"):
        sys.exit("wrk is missing and apt-get is not available: install wrk first")
    print("installing wrk (apt-get)...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk could not be installed")
    return found


def machine() -> dict[str, Any]:
    """Describe the machine: CPU, memory, kernel, load."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kib * 1024 / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def warm_file(path: Path) -> None:
    """Read a file once so that both servers find it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


@dataclass
class Server:
    """One tile server under test, started in its own process group.

    ``command`` and ``env`` may hold ``{cache}``, replaced at each start by the
    current ``cache_dir`` (a fresh one gives a cold start).
    """

    name: str
    endpoint: str
    command: list[str]
    run_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    #: Leftovers in /dev/shm to remove after a stop (name prefixes, lower case).
    shm_prefixes: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    cache_dir: Path = Path()
    _shm_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cache_dir = self.run_dir / "cache"

    def start(self, cache_dir: Path | None = None) -> None:
        """Start the server (on ``cache_dir`` if given) and wait until it answers."""
        if cache_dir is not None:
            self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cache = str(self.cache_dir)
        if self.shm_prefixes:
            self._shm_before = set(os.listdir("/dev/shm"))
        log = open(self.run_dir / "server.log", "ab")  # noqa: SIM115 - closed by Popen
        self.proc = subprocess.Popen(
            [arg.replace("{cache}", cache) for arg in self.command],
            cwd=ROOT,
            env={
                **os.environ,
                **{k: v.replace("{cache}", cache) for k, v in self.env.items()},
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_http(self.port, self.endpoint, timeout=120.0)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server's process group (ours alone), then wait for it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        time.sleep(0.5)  # let its children exit and free the port
        for name in set(os.listdir("/dev/shm")) - self._shm_before:
            if any(p in name.lower() for p in self.shm_prefixes):
                Path("/dev/shm", name).unlink(missing_ok=True)

    def url(self, fif: str, query: str) -> str:
        """Return the path of an IIP request for image ``fif``."""
        return f"{self.endpoint}?FIF={fif}&{query}"


def our_server(root: Path, name: str = "ours", data_dir: Path | None = None) -> Server:
    """Return our example app under gunicorn over ``data_dir`` (not started)."""
    port = free_port()
    run_dir = root / name
    run_dir.mkdir(parents=True)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return Server(
        name=name,
        endpoint="/iip",
        command=[
            str(gunicorn),
            "-c",
            "example_app/gunicorn.conf.py",
            "example_app:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--no-control-socket",
        ],
        run_dir=run_dir,
        port=port,
        env={
            "FITSTILES_DATA_DIR": str(data_dir or images_dir()),
            "FITSTILES_CACHE_DIR": "{cache}",
            "GUNICORN_LOG_LEVEL": "warning",
        },
    )


def bare_server(root: Path) -> Server:
    """Return the calibration app (``bare_app.py``) under gunicorn (not started)."""
    server = our_server(root, name="bare")
    server.command[3] = "bare_app:create_app()"
    server.command += ["--pythonpath", str(HERE)]
    return server


def peer_server(root: Path, data_dir: Path | None = None) -> Server:
    """Return the reference server (VisiOmatic) from ``peer.sh`` (not started)."""
    port = free_port()
    run_dir = root / "reference"
    run_dir.mkdir(parents=True)
    return Server(
        name="reference",
        endpoint="/api",
        command=[
            "bash",
            str(HERE / "peer.sh"),
            "start",
            str(port),
            str(data_dir or images_dir()),
            "{cache}",
            str(WORKERS),
            os.environ.get("BENCH_PEER_THREADS", ""),
        ],
        run_dir=run_dir,
        port=port,
        # Its shared-memory cache and locks outlive it.
        shm_prefixes=("visiomatic",),
    )


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------


def prepare(server: Server, fif: str) -> dict[str, Any]:
    """Time the first INFO request of ``fif`` and sample the server's memory."""
    warm_file(images_dir() / fif)
    os.sync()  # nobody's earlier writes are flushed during the timing
    assert server.proc is not None
    wait_quiet(QUIET_WAIT)
    with RssSampler(server.proc.pid, interval=0.02) as sampler:
        started = time.perf_counter()
        status, body = http_get(server.port, server.url(fif, "INFO"))
        seconds = time.perf_counter() - started
    info: dict[str, Any] = {}
    if status == 200:
        info = json.loads(body)
    return {
        "status": status,
        "seconds": seconds,
        "peak_hwm_mb": sampler.peak_hwm / MB,
        "peak_tree_mb": sampler.peak_sum / MB,
        "peak_tree_anon_mb": sampler.peak_anon / MB,
        "baseline_tree_mb": sampler.baseline / MB,
        "info": info,
    }


def grid(info: dict[str, Any]) -> tuple[int, int, int]:
    """Return (full-resolution JTL level, columns, rows) from an INFO answer."""
    width, height = info["full_size"][:2]
    tile_w, tile_h = info["tile_size"][:2]
    return (
        int(info["tile_levels"]) - 1,
        math.ceil(width / tile_w),
        math.ceil(height / tile_h),
    )


def run_wrk(
    server: Server,
    fif: str,
    info: dict[str, Any],
    mode: str,
    connections: int,
    duration: int = DURATION,
    extra: str = "",
    label: str = "",
) -> dict[str, Any]:
    """Run wrk on random full-resolution tiles of ``fif``; return its figures."""
    level, ncols, nrows = grid(info)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{server.port}",
        "--",
        server.endpoint,
        fif,
        str(level),
        str(ncols),
        str(nrows),
        mode,
        str(next(_SEEDS)),
        extra,
    ]
    assert server.proc is not None
    idle_before = wait_quiet(QUIET_WAIT)
    hz = os.sysconf("SC_CLK_TCK")
    busy0, total0 = cpu_jiffies()
    per_process0 = tree_cpu(server.proc.pid)
    server0 = sum(per_process0.values())
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    busy1, total1 = cpu_jiffies()
    per_process1 = tree_cpu(server.proc.pid)
    server1 = sum(per_process1.values())
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_ticks = (child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime) * hz
    total = max(1, total1 - total0)
    with open(server.run_dir / "wrk.log", "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(command)}\n{out.stdout}{out.stderr}\n")
    found = re.search(r"^WRKJSON (.*)$", out.stdout, re.MULTILINE)
    if not found:
        raise RuntimeError(f"wrk failed ({label}): {out.stderr or out.stdout}")
    stats: dict[str, Any] = json.loads(found.group(1))
    seconds = stats["duration_us"] / 1e6
    stats["connections"] = connections
    stats["tps"] = stats["requests"] / seconds if seconds else 0.0
    stats["errors"] = sum(
        stats[k] for k in ("connect", "read", "write", "status", "timeout")
    )
    # CPU use meanwhile, in fractions of the machine: the server, wrk, and the
    # rest ("other": jobs that do not belong to the benchmark, which skew it).
    stats["cpu_busy_before"] = idle_before
    stats["cpu_server"] = (server1 - server0) / total
    stats["cpu_wrk"] = wrk_ticks / total
    stats["cpu_other"] = max(0.0, (busy1 - busy0 - (server1 - server0) - wrk_ticks) / total)
    # Share of the server's CPU time taken by its busiest process: with keep-alive
    # connections pinned to the worker that accepted them, one worker may get
    # them all and the other idle (then about 1.0 with 2 workers, instead of 0.5).
    spent = [per_process1[p] - per_process0.get(p, 0) for p in per_process1]
    stats["busiest_process_share"] = max(spent) / max(1, sum(spent)) if spent else 0.0
    if stats["requests"]:
        # Server CPU per request, in ms of one core.
        stats["server_cpu_ms"] = (server1 - server0) / hz / stats["requests"] * 1e3
    print(
        f"  {server.name:9s} {label:28s} {stats['tps']:8.0f} tiles/s  "
        f"p50 {stats['p50_us'] / 1000:7.2f} ms  p99 {stats['p99_us'] / 1000:7.2f} ms  "
        f"errors {stats['errors']}  cpu/req {stats.get('server_cpu_ms', 0):.2f} ms  "
        f"busiest process {stats['busiest_process_share'] * 100:.0f}%  "
        f"other load {stats['cpu_other'] * 100:.0f}%",
        flush=True,
    )
    return stats


def check_tile(server: Server, fif: str, info: dict[str, Any]) -> int:
    """Fetch one full-resolution tile; return its size (fails if not a JPEG)."""
    level, ncols, nrows = grid(info)
    status, body = http_get(server.port, server.url(fif, f"JTL={level},0"))
    if status != 200 or body[:2] != b"\xff\xd8":
        raise RuntimeError(f"{server.name}: tile request failed ({status}): {body[:200]!r}")
    return len(body)


def prepare_logged(server: Server, fif: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prepare ``fif`` on ``server`` and print the figures; return them and INFO."""
    prep = prepare(server, fif)
    print(
        f"  {server.name:9s} prepare {fif:15s} {prep['seconds']:6.2f} s  "
        f"peak RSS {prep['peak_hwm_mb']:6.0f} MB (one process), "
        f"{prep['peak_tree_mb']:6.0f} MB (all)  status {prep['status']}",
        flush=True,
    )
    info: dict[str, Any] = prep.pop("info")
    if prep["status"] != 200:
        raise RuntimeError(f"{server.name}: INFO of {fif} failed ({prep['status']})")
    return prep, info


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median time and the largest peaks of repeated preparations."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_hwm_mb": max(r["peak_hwm_mb"] for r in runs),
        "peak_tree_mb": max(r["peak_tree_mb"] for r in runs),
        "peak_tree_anon_mb": max(r["peak_tree_anon_mb"] for r in runs),
        "runs": runs,
    }


def measure(server: Server, results: dict[str, Any]) -> None:
    """Run every measurement on one server; store the figures into ``results``.

    Preparing: ``PREPARE_REPEAT`` cold starts (fresh cache folder, fresh
    processes) for the 8192^2 image, then fresh processes for the 16384^2 one.
    Load: the 8192^2 image is loaded alone first, as in the issue's figures; the
    other images are prepared next for the scale, colour and mosaic runs.
    """
    print(f"{server.name}: port {server.port}", flush=True)
    results["port"] = server.port
    info: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[dict[str, Any]]] = {STAR_8K: [], STAR_16K: []}
    prepared = results["prepare"] = {}
    cache = server.cache_dir
    try:
        for rep in range(PREPARE_REPEAT):
            if rep:
                shutil.rmtree(cache, ignore_errors=True)
            cache = server.run_dir / f"cache-{rep}"
            for fif in (STAR_8K, STAR_16K):
                # Fresh processes: what earlier requests mapped in would count in
                # the peak RSS of this preparation.
                server.start(cache)
                try:
                    prep, info[fif] = prepare_logged(server, fif)
                finally:
                    server.stop()
                runs[fif].append(prep)
                if fif == STAR_8K:
                    # Only the 8192^2 image is prepared yet: its cache size alone.
                    results["cache_bytes_8k"] = folder_bytes(cache)
        prepared.update({fif: summarize(r) for fif, r in runs.items()})
    finally:
        prepared.update({fif: summarize(r) for fif, r in runs.items() if r})

    wrk: dict[str, dict[str, Any]] = {}
    results["wrk"] = wrk
    server.start(cache)
    try:
        results["tile_bytes"] = check_tile(server, STAR_8K, info[STAR_8K])
        # Every worker opens the image (and faults its pages in) before timing.
        run_wrk(server, STAR_8K, info[STAR_8K], "uncached", 8, WARMUP, label="(warm-up)")
        wrk["uncached_c8"] = run_wrk(
            server, STAR_8K, info[STAR_8K], "uncached", 8, label="8k uncached c=8"
        )
        run_wrk(server, STAR_8K, info[STAR_8K], "cached", 8, WARMUP, label="(warm-up)")
        wrk["cached_c8"] = run_wrk(
            server, STAR_8K, info[STAR_8K], "cached", 8, label="8k cached c=8"
        )
        wrk["single_8k"] = run_wrk(
            server, STAR_8K, info[STAR_8K], "uncached", 1, label="8k uncached c=1"
        )
        for fif in (STAR_1K, CUBE_4K, MOSAIC_8K):
            prep, info[fif] = prepare_logged(server, fif)
            prepared[fif] = summarize([prep])
        for fif, key in ((STAR_1K, "single_1k"), (STAR_16K, "single_16k")):
            run_wrk(server, fif, info[fif], "uncached", 1, WARMUP, label="(warm-up)")
            wrk[key] = run_wrk(server, fif, info[fif], "uncached", 1, label=f"{key} c=1")
        for fif, key in ((CUBE_4K, "cube_c8"), (MOSAIC_8K, "mosaic_c8")):
            run_wrk(server, fif, info[fif], "uncached", 8, WARMUP, label="(warm-up)")
            wrk[key] = run_wrk(
                server, fif, info[fif], "uncached", 8, label=f"{key} uncached"
            )
    finally:
        server.stop()


def calibrate(server: Server) -> dict[str, Any]:
    """Measure the bare HTTP stack: a fixed 32 KiB body, 8 connections."""
    print(f"{server.name}: port {server.port}", flush=True)
    server.start()
    try:
        info = {"full_size": [8192, 8192], "tile_size": [256, 256], "tile_levels": 6}
        run_wrk(server, STAR_8K, info, "cached", 8, WARMUP, label="(warm-up)")
        return {"c8": run_wrk(server, STAR_8K, info, "cached", 8, label="32 KiB body c=8")}
    finally:
        server.stop()


def prepare_in_process(fif: str, cache_dir: Path) -> dict[str, Any]:
    """Prepare ``fif`` with ``Tiled`` alone in a fresh interpreter; time and peak RSS."""
    warm_file(images_dir() / fif)
    os.sync()
    wait_quiet(QUIET_WAIT)
    out = subprocess.run(
        [sys.executable, __file__, "--in-process", str(images_dir() / fif), str(cache_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _in_process_main(path: str, cache_dir: str) -> None:
    """Child side of :func:`prepare_in_process`: print a JSON line."""
    from flask_fitstiles.tiled import Tiled

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    Tiled(path, cache_dir=cache_dir)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps({"seconds": seconds, "maxrss_mb": peak / MB, "before_mb": baseline / MB})
    )


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure of both servers and the issue's target."""

    label: str
    unit: str
    ours: float | None
    reference: float | None = None
    target: str = ""
    passed: bool | None = None

    def ratio(self) -> float | None:
        """Return ours / reference, when both are known."""
        if self.ours is None or not self.reference:
            return None
        return self.ours / self.reference


def _get(results: dict[str, Any] | None, *keys: str) -> float | None:
    """Return a nested figure of ``results``, or None when it is missing."""
    value: Any = results
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if value is not None else None


def figures(results: dict[str, Any] | None, image_bytes: int) -> dict[str, float | None]:
    """Return the table's figures of one server."""

    def wrk(run: str, key: str, scale: float = 1.0) -> float | None:
        value = _get(results, "wrk", run, key)
        return None if value is None else value * scale

    prep8 = _get(results, "prepare", STAR_8K, "seconds")
    prep16 = _get(results, "prepare", STAR_16K, "seconds")
    p50_1k = wrk("single_1k", "p50_us", 1e-3)
    p50_16k = wrk("single_16k", "p50_us", 1e-3)
    cache = _get(results, "cache_bytes_8k")
    errors = other = None
    if results and "wrk" in results:
        errors = float(sum(run["errors"] for run in results["wrk"].values()))
        other = 100 * max(run["cpu_other"] for run in results["wrk"].values())
    return {
        "uncached_c8_tps": wrk("uncached_c8", "tps"),
        "cached_c8_tps": wrk("cached_c8", "tps"),
        "single_tps": wrk("single_8k", "tps"),
        "single_p50_ms": wrk("single_8k", "p50_us", 1e-3),
        "single_p99_ms": wrk("single_8k", "p99_us", 1e-3),
        "errors": errors,
        "prepare_s": prep8,
        "prepare_peak_mb": _get(results, "prepare", STAR_8K, "peak_hwm_mb"),
        "prepare_tree_mb": _get(results, "prepare", STAR_8K, "peak_tree_mb"),
        "cache_ratio": None if cache is None else cache / image_bytes,
        "p50_1k_ms": p50_1k,
        "p50_16k_ms": p50_16k,
        "scale_ratio": (
            max(p50_1k, p50_16k) / min(p50_1k, p50_16k) if p50_1k and p50_16k else None
        ),
        "prepare16_s": prep16,
        "prepare16_ratio": prep16 / prep8 if prep16 and prep8 else None,
        "prepare16_peak_mb": _get(results, "prepare", STAR_16K, "peak_hwm_mb"),
        "cube_c8_tps": wrk("cube_c8", "tps"),
        "mosaic_c8_tps": wrk("mosaic_c8", "tps"),
        "cpu_uncached_ms": wrk("uncached_c8", "server_cpu_ms"),
        "cpu_cached_ms": wrk("cached_c8", "server_cpu_ms"),
        "other_load_pct": other,
        "busiest_pct": wrk("uncached_c8", "busiest_process_share", 100),
    }


# Table rows: (figure key, label, unit, target kind, limit). Target kinds: "x ref>="
# and "x ref<=" are relative to the reference (measured, else the issue's figure);
# ">=", "<=", "<" are absolute; None is a figure without a target.
SPECS: list[tuple[str, str, str, str | None, float]] = [
    ("uncached_c8_tps", "uncached tiles/s, c=8", "1/s", "x ref>=", 10),
    ("cached_c8_tps", "cached tiles/s, c=8", "1/s", ">=", 3000),
    ("single_tps", "single client tiles/s", "1/s", None, 0),
    ("single_p50_ms", "single client p50, uncached", "ms", "<=", 2),
    ("single_p99_ms", "single client p99, uncached", "ms", None, 0),
    ("errors", "errors (HTTP >= 400 + socket)", "", "<=", 0),
    ("prepare_s", "prepare 8192^2 (first INFO)", "s", "x ref<=", 0.8),
    ("prepare_peak_mb", "peak RSS preparing (process)", "MB", "x ref<=", 0.5),
    ("prepare_tree_mb", "peak RSS preparing (all procs)", "MB", None, 0),
    ("inproc_s", "in-process Tiled(): time", "s", None, 0),
    ("inproc_mb", "in-process Tiled(): maxrss", "MB", None, 0),
    ("cache_ratio", "cache / float32 image bytes", "x", "<=", 1.5),
    ("p50_1k_ms", "scale: p50 1024^2, c=1", "ms", None, 0),
    ("p50_16k_ms", "scale: p50 16384^2, c=1", "ms", None, 0),
    ("scale_ratio", "scale: p50 max/min", "x", "<=", 1.2),
    ("prepare16_s", "prepare 16384^2", "s", None, 0),
    ("prepare16_ratio", "prepare 16384^2 / 8192^2", "x", "<=", 4.5),
    ("prepare16_peak_mb", "peak RSS preparing 16384^2", "MB", "<", 1500),
    ("inproc16_mb", "in-process Tiled() 16384^2: maxrss", "MB", None, 0),
    ("cube_c8_tps", "colour cube uncached, c=8", "1/s", None, 0),
    ("mosaic_c8_tps", "mosaic uncached, c=8", "1/s", None, 0),
    ("bare_c8_tps", "bare Flask 32 KiB body, c=8", "1/s", None, 0),
    ("cpu_uncached_ms", "server CPU per uncached tile", "ms", None, 0),
    ("cpu_cached_ms", "server CPU per cached tile", "ms", None, 0),
    ("busiest_pct", "busiest server process, uncached c=8", "%", None, 0),
    ("other_load_pct", "other jobs' CPU, worst wrk run", "%", None, 0),
]


def build_rows(
    ours: dict[str, float | None], ref: dict[str, float | None] | None
) -> list[Row]:
    """Return the table's rows with their targets checked."""
    rows = []
    for key, label, unit, kind, limit in SPECS:
        value = ours.get(key)
        reference = ref.get(key) if ref is not None else None
        target, passed = "", None
        if kind in ("x ref>=", "x ref<="):
            base = reference if ref is not None else ISSUE_REFERENCE.get(key)
            sign = kind[-2:]
            source = "" if ref is not None else " (issue)"
            if base is not None:
                target = f"{sign} {limit:g} x ref = {limit * base:.4g}{source}"
                limit *= base
            kind = sign if base is not None else None
        elif kind is not None:
            target = "= 0" if (kind, limit) == ("<=", 0) else f"{kind} {limit:g}"
        if kind is not None and value is not None:
            passed = {
                ">=": value >= limit,
                "<=": value <= limit,
                "<": value < limit,
            }[kind]
        rows.append(Row(label, unit, value, reference, target, passed))
    return rows


def _fmt(value: float | None) -> str:
    """Format a figure with 3-4 significant digits."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(rows: list[Row], have_ref: bool) -> None:
    """Print the rows as one fixed-width table."""
    head = ("figure", "unit", "ours", "reference", "ours/ref", "target", "result")
    lines = []
    for row in rows:
        result = {True: "PASS", False: "FAIL", None: ""}[row.passed]
        lines.append(
            (
                row.label,
                row.unit,
                _fmt(row.ours),
                _fmt(row.reference) if have_ref else "(not run)",
                _fmt(row.ratio()) if have_ref else "",
                row.target,
                result,
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    rule = "  ".join("-" * w for w in widths)
    print(rule)
    for i, line in enumerate([head, *lines]):
        cells = [
            cell.ljust(w) if j in (0, 1, 5, 6) else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if i == 0:
            print(rule)
    print(rule)


def main() -> None:
    """Run the whole benchmark and print the table."""
    ensure_wrk()
    make_images()
    peer = os.environ.get("BENCH_PEER", "") not in ("", "0")
    if peer:
        subprocess.run(["bash", str(HERE / "peer.sh"), "setup"], check=True)
    info = machine()
    print(
        f"machine: {info['cpus']} x {info['cpu']}, {info['memory_gb']} GB, "
        f"load {info['loadavg_at_start'][0]:.2f}; {WORKERS} workers, "
        f"{DURATION} s per wrk run",
        flush=True,
    )
    folder = bench_dir()
    root = Path(tempfile.mkdtemp(prefix="run-", dir=folder))
    results: dict[str, Any] = {"machine": info, "duration_s": DURATION, "workers": WORKERS}
    try:
        in_process: dict[str, dict[str, Any]] = {}
        results["in_process"] = in_process
        for fif in (STAR_8K, STAR_16K):
            try:
                res = in_process[fif] = prepare_in_process(fif, root / f"in-process-{fif}")
                print(
                    f"  in-process Tiled({fif}): {res['seconds']:.2f} s, "
                    f"maxrss {res['maxrss_mb']:.0f} MB",
                    flush=True,
                )
            except subprocess.CalledProcessError as error:
                print(f"  in-process Tiled({fif}): FAILED\n{error.stderr}", flush=True)
            shutil.rmtree(root / f"in-process-{fif}", ignore_errors=True)
        try:
            results["bare"] = calibrate(bare_server(root))
        except Exception as error:
            print(f"bare: FAILED: {error}", flush=True)
        makers = [our_server, peer_server] if peer else [our_server]
        for make in makers:
            server = make(root)
            results[server.name] = {}
            try:
                measure(server, results[server.name])
            except Exception as error:  # report what was measured, and why not more
                print(f"{server.name}: FAILED: {error}", flush=True)
                results[server.name]["error"] = str(error)
    finally:
        # The run folder holds the caches (GBs); keep the logs only.
        for sub in root.glob("*/cache*"):
            shutil.rmtree(sub, ignore_errors=True)
    image_bytes = 8192 * 8192 * 4
    ours = figures(results.get("ours"), image_bytes)
    ref = figures(results["reference"], image_bytes) if peer else None
    ours["bare_c8_tps"] = _get(results, "bare", "c8", "tps")
    for fif, suffix in ((STAR_8K, ""), (STAR_16K, "16")):
        ours[f"inproc{suffix}_s"] = _get(results, "in_process", fif, "seconds")
        ours[f"inproc{suffix}_mb"] = _get(results, "in_process", fif, "maxrss_mb")
    rows = build_rows(ours, ref)
    results["figures"] = {"ours": ours, "reference": ref}
    results["table"] = [{**row.__dict__, "ratio": row.ratio()} for row in rows]
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    print()
    print_table(rows, peer)
    for name in ("ours", "reference"):
        for run, stats in results.get(name, {}).get("wrk", {}).items():
            # One connection is served by one worker by design.
            spread = WORKERS > 1 and stats.get("connections", 1) > 1
            if spread and stats.get("busiest_process_share", 0) > 0.8:
                print(
                    f"warning: {name} {run}: one process did "
                    f"{stats['busiest_process_share']:.0%} of the work (its workers got "
                    "unequal shares of the keep-alive connections)"
                )
            if stats.get("cpu_other", 0) > 0.1:
                print(
                    f"warning: {name} {run}: other jobs took "
                    f"{stats['cpu_other']:.0%} of the CPU"
                )
    print(f"(logs in {root})")
    text = json.dumps(results, indent=2, default=str) + "\n"
    (root / "results.json").write_text(text, encoding="utf-8")  # kept with the logs
    out = folder / "results.json"
    out.write_text(text, encoding="utf-8")
    print(f"results written to {out}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-process":
        _in_process_main(sys.argv[2], sys.argv[3])
    else:
        main()
