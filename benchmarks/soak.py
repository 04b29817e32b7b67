"""Soak test: minutes of mixed load on the example app under gunicorn (not in the CI suite).

Starts gunicorn (``example_app/gunicorn.conf.py``, 2 workers x 4 threads by
default) over the sample images plus two bigger generated ones (a 4096^2 star
field and a 2048^2 3-band cube), with a fresh cache folder, and sends mixed
requests from ``--concurrency`` client threads (one keep-alive connection each)
for ``--duration`` seconds:

* tiles at random levels and indices with random rendering settings (channel,
  colormap, cuts, mix, brightness, contrast, gamma, quality, invert), drawn from
  small sets so that the tile caches see both hits and misses;
* regions (RGN with BIN), INFO, VAL, PFL, obj, the image list and the stats;
* bad requests (malformed or out-of-range parameters, unknown images, path
  traversals, other methods), which must answer 4xx.

It samples every worker's memory (VmRSS, RssAnon, RssFile from ``/proc``) and
the per-worker tile-cache figures (``<prefix>/stats``) every few seconds, and
prints, then writes as JSON: request counts and rates, 5xx count, connection
errors, bad requests not answered 4xx, latencies, worker RSS at the end of the
warm-up (1 minute by default) and at the end, RSS growth after warm-up, and the
tile-cache bytes against their bound.

Pass criteria (exit status 1 otherwise): no 5xx, no connection error, every bad
request answered 4xx, and RSS growth after warm-up under 10% in every worker.
The tile-cache bound defaults to 32 MiB (``--tile-cache-mb``) so that the caches
fill up during the warm-up: growth after that measures leaks, not filling.

Usage::

    .venv/bin/python benchmarks/soak.py                    # 5 minutes, 16 clients
    .venv/bin/python benchmarks/soak.py --duration 60 --concurrency 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from example_app.samples import color_cube, star_field, write_atomic, write_samples  # noqa: E402
from flask_fitstiles.core.pyramid import compute_grid_shape  # noqa: E402

BIG_IMAGES = {
    "big_star4k.fits": lambda: star_field(
        shape=(4096, 4096), nstars=4000, ngalaxies=20, seed=21
    ),
    "big_cube2k.fits": lambda: color_cube(shape=(2048, 2048), seed=22),
}
SAMPLE_IMAGES = ("starfield.fits", "cube.fits", "mosaic.fits")
RSS_FIELDS = ("VmRSS", "RssAnon", "RssFile")
SAMPLE_SECONDS = 5.0


# -- images and server -----------------------------------------------------------------


def prepare_folder(work: Path) -> tuple[Path, Path]:
    """Write the images once (kept between runs); return the data and a fresh cache."""
    data, cache = work / "data", work / "cache"
    data.mkdir(parents=True, exist_ok=True)
    if not all((data / name).exists() for name in SAMPLE_IMAGES):
        write_samples(data)
    for name, make in BIG_IMAGES.items():
        if not (data / name).exists():
            print(f"writing {name}", flush=True)
            write_atomic(make(), data / name)
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    return data, cache


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(
    data: Path, cache: Path, log: Path, port: int, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FITSTILES_", "GUNICORN"))
    }
    env.update(
        FITSTILES_DATA_DIR=str(data),
        FITSTILES_CACHE_DIR=str(cache),
        FITSTILES_TILE_CACHE_BYTES=str(int(args.tile_cache_mb * 2**20)),
    )
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "example_app/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--error-logfile",
        str(log),
        "example_app:create_app()",
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def worker_pids(master: int) -> list[int]:
    """Return the pids of the master's children (the gunicorn workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(entry))
    return sorted(pids)


def memory(pid: int) -> dict[str, int]:
    """Return VmRSS, RssAnon and RssFile of a process, in bytes."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in RSS_FIELDS:
                    values[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def get(port: int, path: str, timeout: float = 600.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {proc.returncode}")
        try:
            get(port, "/images", timeout=5)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


# -- the requests ----------------------------------------------------------------------


@dataclass
class ImageInfo:
    """What the load generator needs to know of one image (from INFO)."""

    name: str
    width: int
    height: int
    channels: int
    tile: tuple[int, int]
    levels: int

    def grid(self, z: int) -> tuple[int, int]:
        level = self.levels - 1 - z
        return compute_grid_shape(
            self.height, self.width, self.tile[1], self.tile[0], level
        )


COLORMAPS = ("grey", "jet", "cold", "cool", "hot")


def rendering(rng: random.Random, image: ImageInfo) -> str:
    """Random rendering settings, from small sets (so the caches also get hits)."""
    parts = []
    if image.channels == 1 or rng.random() < 0.5:
        parts.append(f"CHAN={rng.randint(1, image.channels)}")
        if rng.random() < 0.5:
            parts.append(f"CMP={rng.choice(COLORMAPS)}")
    elif rng.random() < 0.5:
        for c in range(1, image.channels + 1):
            r, g, b = (rng.choice((0, 0.5, 1)) for _ in range(3))
            parts.append(f"MIX={c}:{r},{g},{b}")
    if rng.random() < 0.3:
        low = rng.choice((0, 500, 900, 1000))
        parts.append(f"MINMAX=1:{low},{low + rng.choice((100, 1000, 30000))}")
    if rng.random() < 0.3:
        parts.append(f"BRT={rng.choice((-20, 0, 10))}")
    if rng.random() < 0.3:
        parts.append(f"CNT={rng.choice((0.5, 1, 2, 5))}")
    if rng.random() < 0.3:
        parts.append(f"GAM={rng.choice((1, 1.6, 2.2, 3))}")
    if rng.random() < 0.2:
        parts.append(f"QLT={rng.choice((50, 80, 95))}")
    if rng.random() < 0.1:
        parts.append("INV")
    return "&".join(parts)


BAD_REQUESTS = (
    "/iip?FIF={name}&JTL=abc",
    "/iip?FIF={name}&JTL=0,99999999",
    "/iip?FIF={name}&JTL=0,0&GAM=99",
    "/iip?FIF={name}&JTL=0,0&CMP=rainbow",
    "/iip?FIF={name}&JTL=0,0&MINMAX=1:nan,1",
    "/iip?FIF={name}&VAL=1.5,2",
    "/iip?FIF={name}&PFL=1,1:999999,1",
    "/iip?FIF={name}&RGN=90000000,90000000:90000100,90000100",
    "/iip?FIF={name}",
    "/iip?FIF=nope.fits&INFO",
    "/iip?FIF=../../etc/passwd&INFO",
    "/iip?FIF=%2Fetc%2Fpasswd&INFO",
    "/iip?FIF={name}%00&INFO",
    "/iip?FIF={name}[99]&INFO",
    "/iip?FIF={name}&JTL=0,0&QLT=" + "9" * 2000,
    "/nothing-here",
)


def next_request(rng: random.Random, images: list[ImageInfo]) -> tuple[str, str, str]:
    """Return (kind, method, path) of the next request."""
    image = rng.choice(images)
    fif = f"/iip?FIF={quote(image.name)}"
    draw = rng.random()
    if draw < 0.55:
        z = rng.randrange(image.levels)
        rows, cols = image.grid(z)
        extra = rendering(rng, image)
        path = f"{fif}&JTL={z},{rng.randrange(rows * cols)}" + (
            f"&{extra}" if extra else ""
        )
        return "tile", "GET", path
    if draw < 0.63:
        binning = rng.choice((1, 2, 4, 8, 16))
        side = 256 * binning * rng.choice((1, 2))
        x1, y1 = rng.randint(1, image.width), rng.randint(1, image.height)
        extra = rendering(rng, image)
        path = f"{fif}&RGN={x1},{y1}:{x1 + side - 1},{y1 + side - 1}&BIN={binning}"
        return "region", "GET", path + (f"&{extra}" if extra else "")
    if draw < 0.71:
        return "info", "GET", f"{fif}&INFO"
    if draw < 0.80:
        x, y = rng.randint(1, image.width), rng.randint(1, image.height)
        chans = "&".join(f"CHAN={c}" for c in range(1, image.channels + 1))
        return "val", "GET", f"{fif}&VAL={x},{y}&{chans}"
    if draw < 0.87:
        x1, y1 = rng.randint(1, image.width), rng.randint(1, image.height)
        x2, y2 = rng.randint(1, image.width), rng.randint(1, image.height)
        return "pfl", "GET", f"{fif}&PFL={x1},{y1}:{x2},{y2}"
    if draw < 0.89:
        return "obj", "GET", f"{fif}&obj"
    if draw < 0.90:
        return "images", "GET", "/images"
    if draw < 0.99:
        bad = rng.choice(BAD_REQUESTS).format(name=quote(image.name))
        return "bad", rng.choice(("GET",) * 9 + ("POST",)), bad
    return "stats", "GET", "/stats"


# -- the load --------------------------------------------------------------------------


@dataclass
class Results:
    """Counters shared by the client threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    bad_not_4xx: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    bytes_received: int = 0

    def record(
        self, kind: str, method: str, path: str, status: int, seconds: float
    ) -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1
            self.latencies.setdefault(kind, []).append(seconds)
            if status >= 500:
                self.server_errors.append(f"{status} {method} {path[:200]}")
            if kind == "bad" and not 400 <= status < 500:
                self.bad_not_4xx.append(f"{status} {method} {path[:200]}")


def client(
    port: int,
    images: list[ImageInfo],
    seed: int,
    stop: threading.Event,
    results: Results,
) -> None:
    """One client: a keep-alive connection, requests back to back until ``stop``."""
    rng = random.Random(seed)
    conn: http.client.HTTPConnection | None = None
    while not stop.is_set():
        kind, method, path = next_request(rng, images)
        for attempt in range(2):
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            started = time.perf_counter()
            try:
                conn.request(method, path)
                response = conn.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (
                http.client.RemoteDisconnected,
                BrokenPipeError,
                ConnectionResetError,
            ) as e:
                conn.close()
                conn = None
                # An idle keep-alive connection closed by the server: a browser
                # retries on a new one; so do we, once.
                if reused and attempt == 0:
                    with results.lock:
                        results.reconnects += 1
                    continue
                with results.lock:
                    results.connection_errors[type(e).__name__] += 1
                break
            except OSError as error:
                if conn is not None:
                    conn.close()
                conn = None
                with results.lock:
                    results.connection_errors[type(error).__name__] += 1
                break
            seconds = time.perf_counter() - started
            results.record(kind, method, path, response.status, seconds)
            with results.lock:
                results.bytes_received += len(body)
            break
    if conn is not None:
        conn.close()


@dataclass
class Sample:
    """One sample of the workers' memory and caches."""

    t: float
    memory: dict[int, dict[str, int]]
    stats: dict[int, dict[str, Any]]


def sampler(
    port: int,
    master: int,
    started: float,
    stop: threading.Event,
    samples: list[Sample],
    workers: int,
) -> None:
    """Every few seconds, read the workers' memory and (per worker) /stats."""
    stats: dict[int, dict[str, Any]] = {}
    while not stop.wait(SAMPLE_SECONDS):
        pids = worker_pids(master)
        # /stats lands on one worker at random: ask until each has answered recently.
        for _ in range(8 * workers):
            try:
                status, body = get(port, "/stats", timeout=30)
            except OSError:
                continue
            if status == 200:
                figures = json.loads(body)
                stats[figures["pid"]] = figures
            if set(pids) <= set(stats):
                break
        samples.append(
            Sample(
                time.monotonic() - started,
                {pid: memory(pid) for pid in pids},
                {pid: stats[pid] for pid in pids if pid in stats},
            )
        )


def sample_at(samples: list[Sample], t: float) -> Sample:
    return min(samples, key=lambda sample: abs(sample.t - t))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def report(
    args: argparse.Namespace,
    results: Results,
    samples: list[Sample],
    elapsed: float,
    log_text: str,
) -> tuple[dict[str, Any], bool]:
    total = sum(results.statuses.values())
    by_kind: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    for (kind, status), count in results.statuses.items():
        by_kind[kind] += count
        by_class[f"{status // 100}xx"] += count
    warm = sample_at(samples, args.warmup)
    end = samples[-1]
    workers: dict[str, Any] = {}
    growth_ok = True
    for pid in sorted(end.memory):
        at_warm, at_end = warm.memory.get(pid, {}), end.memory[pid]
        growth = (
            (at_end["VmRSS"] - at_warm["VmRSS"]) / at_warm["VmRSS"] if at_warm else None
        )
        anon_growth = (
            (at_end["RssAnon"] - at_warm["RssAnon"]) / at_warm["RssAnon"]
            if at_warm
            else None
        )
        growth_ok &= growth is not None and growth < 0.10
        cache = end.stats.get(pid, {}).get("tile_cache", {})
        workers[str(pid)] = {
            "rss_warm": at_warm,
            "rss_end": at_end,
            "rss_growth": growth,
            "rss_anon_growth": anon_growth,
            "rss_max": max(s.memory.get(pid, {}).get("VmRSS", 0) for s in samples),
            "tile_cache": cache,
            "open_images": len(end.stats.get(pid, {}).get("open_images", [])),
        }
    all_latencies = [v for values in results.latencies.values() for v in values]
    summary = {
        "duration_s": elapsed,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "threads": args.threads,
        "tile_cache_bound": int(args.tile_cache_mb * 2**20),
        "warmup_s": args.warmup,
        "requests": total,
        "requests_per_s": total / elapsed,
        "mib_per_s": results.bytes_received / elapsed / 2**20,
        "by_kind": dict(by_kind),
        "by_status_class": dict(by_class),
        "server_errors_5xx": len(results.server_errors),
        "server_error_examples": results.server_errors[:10],
        "connection_errors": dict(results.connection_errors),
        "keepalive_reconnects": results.reconnects,
        "bad_requests_not_4xx": results.bad_not_4xx[:10],
        "latency_ms": {
            kind: {
                "p50": 1000 * percentile(values, 0.5),
                "p99": 1000 * percentile(values, 0.99),
                "max": 1000 * max(values),
            }
            for kind, values in sorted(results.latencies.items())
            if values
        },
        "latency_all_p99_ms": 1000 * percentile(all_latencies, 0.99)
        if all_latencies
        else None,
        "worker_memory": workers,
        "rss_samples": [
            {"t": s.t, **{str(pid): m.get("VmRSS") for pid, m in s.memory.items()}}
            for s in samples
        ],
        "prepared_lines": log_text.count("] prepared "),
        "error_log_tracebacks": log_text.count("Traceback"),
    }
    passed = (
        not results.server_errors
        and not results.connection_errors
        and not results.bad_not_4xx
        and growth_ok
        and summary["error_log_tracebacks"] == 0
    )
    summary["passed"] = passed
    return summary, passed


def print_summary(summary: dict[str, Any]) -> None:
    print()
    print(
        f"soak: {summary['duration_s']:.0f} s, {summary['concurrency']} clients, "
        f"{summary['workers']} workers x {summary['threads']} threads"
    )
    print(
        f"requests: {summary['requests']} ({summary['requests_per_s']:.1f}/s, "
        f"{summary['mib_per_s']:.2f} MiB/s); by kind {summary['by_kind']}"
    )
    print(f"statuses: {summary['by_status_class']}")
    print(
        f"5xx: {summary['server_errors_5xx']}  connection errors: "
        f"{sum(summary['connection_errors'].values())} {summary['connection_errors']}  "
        f"keep-alive reconnects: {summary['keepalive_reconnects']}  "
        f"bad requests not 4xx: {len(summary['bad_requests_not_4xx'])}"
    )
    for kind, figures in summary["latency_ms"].items():
        print(
            f"  {kind:7s} p50 {figures['p50']:7.1f} ms  p99 {figures['p99']:7.1f} ms  "
            f"max {figures['max']:7.1f} ms"
        )
    bound = summary["tile_cache_bound"]
    for pid, worker in summary["worker_memory"].items():
        warm, end = worker["rss_warm"], worker["rss_end"]
        cache = worker["tile_cache"]
        growth = worker["rss_growth"]
        print(
            f"worker {pid}: RSS at {summary['warmup_s']:.0f} s {mib(warm.get('VmRSS', 0))} "
            f"(anon {mib(warm.get('RssAnon', 0))}), at end {mib(end['VmRSS'])} "
            f"(anon {mib(end['RssAnon'])}, file {mib(end['RssFile'])}), growth "
            + (f"{100 * growth:+.1f}%" if growth is not None else "n/a")
            + f"; tile cache {mib(cache.get('bytes', 0))} of {mib(bound)} "
            f"({cache.get('entries', 0)} tiles, {cache.get('hits', 0)} hits, "
            f"{cache.get('misses', 0)} misses); {worker['open_images']} open images"
        )
    print(
        f"prepared: {summary['prepared_lines']}  tracebacks in the error log: "
        f"{summary['error_log_tracebacks']}"
    )
    print("PASS" if summary["passed"] else "FAIL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds before the reference memory sample",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--tile-cache-mb",
        type=float,
        default=32.0,
        help="per-worker tile-cache bound (FITSTILES_TILE_CACHE_BYTES)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work folder (default: $BENCH_DIR/soak or bench-data/soak)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    work = args.dir or Path(os.environ.get("BENCH_DIR") or ROOT / "bench-data") / "soak"
    work = work.resolve()
    data, cache = prepare_folder(work)
    log = work / "gunicorn.log"
    log.unlink(missing_ok=True)
    port = free_port()
    proc = start_gunicorn(data, cache, log, port, args)
    try:
        wait_up(port, proc)
        images = []
        for name in sorted(p.name for p in data.glob("*.fits")):
            status, body = get(port, f"/iip?FIF={quote(name)}&INFO")
            if status != 200:
                raise SystemExit(f"INFO of {name}: {status} {body[:200]!r}")
            info = json.loads(body)
            images.append(
                ImageInfo(
                    name,
                    info["full_size"][0],
                    info["full_size"][1],
                    info["channels"],
                    (info["tile_size"][0], info["tile_size"][1]),
                    info["tile_levels"],
                )
            )
        print(
            f"serving {len(images)} images on port {port}; load for {args.duration:.0f} s",
            flush=True,
        )
        results = Results()
        samples: list[Sample] = []
        stop = threading.Event()
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=client, args=(port, images, args.seed + i, stop, results)
            )
            for i in range(args.concurrency)
        ]
        threads.append(
            threading.Thread(
                target=sampler, args=(port, proc.pid, started, stop, samples, args.workers)
            )
        )
        for thread in threads:
            thread.start()
        try:
            while time.monotonic() - started < args.duration:
                time.sleep(min(10.0, args.duration - (time.monotonic() - started)) or 0.1)
                with results.lock:
                    done = sum(results.statuses.values())
                    errors = len(results.server_errors) + sum(
                        results.connection_errors.values()
                    )
                print(
                    f"  {time.monotonic() - started:5.0f} s: {done} requests, "
                    f"{errors} errors",
                    flush=True,
                )
        finally:
            stop.set()
            for thread in threads:
                thread.join(180)
        elapsed = time.monotonic() - started
        log_text = log.read_text(errors="replace") if log.exists() else ""
        summary, passed = report(args, results, samples, elapsed, log_text)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    (work / "soak-results.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    print(f"results: {work / 'soak-results.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
