"""Time and size of the folder listings (``/images`` by pages and the index page) at scale.

Builds, once, under ``bench-data/paging/`` (git-ignored):

- ``tree/``: 100 000 files in 100 folders of 1 000 (``f000/`` ... ``f099/``);
- ``flat/``: 100 000 files in one folder (the worst case: each process reads
  the whole folder once).

The files have ``.fits`` names and 16 bytes each; they are not valid FITS files:
listings never open images, they read names, stat the files of the page and
look for source stamps in the cache folder. In each measured folder every other
file has a source stamp and a (placeholder) pickle in the cache folder, so the
"prepared" lookup pays the read of a stamp for half the page and a miss for
the other half.

Measures through the Flask test client, in process (no HTTP server): the first
page of a folder in a fresh app ("cold": the folder is read; the first HTML
page also compiles the template), the same page again ("warm"), a later page
reached with the cursor of the page before, and the same for the index page
(HTML). Prints milliseconds per request (medians; wall clock, and this
process's CPU time, which the other jobs of a shared machine do not inflate)
and answer sizes in bytes. The files stay in the page cache between runs:
"cold" means a new process state, not a cold disk. With ``--old`` also times
the old flat ``/images`` of the whole tree once (several seconds).

With ``--gunicorn`` the same requests also go over HTTP to the example app under
gunicorn (one worker, so that its first listing of a folder is the cold one),
one new connection per request.

Run: ``.venv/bin/python benchmarks/images_paging.py [--old] [--gunicorn]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import ROOT, bench_dir, free_port, http_get, wait_http
from flask import Flask

sys.path.insert(0, str(ROOT))

from flask_fitstiles import FitsTiles  # noqa: E402
from flask_fitstiles.core.cachefiles import (  # noqa: E402
    SourceStamp,
    get_prefix,
    write_source_stamp,
)
from flask_fitstiles.core.signing import get_secret_key  # noqa: E402
from flask_fitstiles.tiled import FORMAT_VERSION  # noqa: E402

FILES = 100_000
FOLDERS = 100
LIMIT = 100
REPEATS = 15
COLD_REPEATS = 5
TILE = (256, 256)


def build(root: Path) -> tuple[Path, Path, Path]:
    """Make (once) the tree, the flat folder and their cache folder."""
    tree, flat, cache = root / "tree", root / "flat", root / "cache"
    done = root / ".built"
    if done.exists():
        return tree, flat, cache
    started = time.perf_counter()
    for folder in (tree, flat, cache):
        folder.mkdir(parents=True, exist_ok=True)
    per_folder = FILES // FOLDERS
    for f in range(FOLDERS):
        sub = tree / f"f{f:03d}"
        sub.mkdir(exist_ok=True)
        for i in range(per_folder):
            (sub / f"img{i:05d}.fits").write_bytes(b"not FITS, 16 B\n\n")
    for i in range(FILES):
        (flat / f"img{i:06d}.fits").write_bytes(b"not FITS, 16 B\n\n")
    # Listings are not kept for folders changed in the last second.
    time.sleep(1.5)
    done.touch()
    print(f"built {2 * FILES} files in {time.perf_counter() - started:.1f} s")
    return tree, flat, cache


def stamp(tree: Path, flat: Path, cache: Path) -> None:
    """Make (once) every other file of the measured folders look prepared."""
    done = cache / ".stamped-2"
    if done.exists():
        return
    key = get_secret_key(str(cache))
    for folder in (tree / "f000", tree / "f050", flat):
        for path in sorted(folder.iterdir())[::2]:
            real = os.path.realpath(path)
            info = os.stat(real)
            pickle = cache / (get_prefix(real, None, TILE) + ".pkl")
            pickle.write_bytes(b"")
            source = SourceStamp(FORMAT_VERSION, info.st_size, info.st_mtime_ns)
            write_source_stamp(str(pickle), source, key)
    done.touch()


def make_app(data: Path, cache: Path) -> Flask:
    """Return a fresh app (empty per-process memo) over ``data``."""
    app = Flask("paging_bench")
    FitsTiles(app, url_prefix="/fits", data_dir=data, cache_dir=cache)
    return app


Timing = tuple[float, float | None, int]


def cold(data: Path, cache: Path, url: str) -> Timing:
    """Return the median wall and CPU milliseconds of the first request of fresh apps."""
    runs = [timed(fetcher(make_app(data, cache), url), 1) for _ in range(COLD_REPEATS)]
    cpu = statistics.median(run[1] or 0.0 for run in runs)
    return statistics.median(run[0] for run in runs), cpu, runs[-1][2]


def timed(get: Callable[[], bytes], repeats: int, cpu: bool = True) -> Timing:
    """Return the median wall and CPU milliseconds of ``repeats`` calls, and the size.

    The CPU time is this process's (the work of an in-process request, whatever
    else the machine runs); None for requests served by another process.
    """
    walls, cpus = [], []
    size = 0
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        size = len(get())
        walls.append((time.perf_counter() - started) * 1e3)
        cpus.append((time.process_time() - started_cpu) * 1e3)
    return statistics.median(walls), statistics.median(cpus) if cpu else None, size


def fetcher(app: Flask, url: str) -> Callable[[], bytes]:
    client = app.test_client()

    def get() -> bytes:
        response = client.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True))
        return response.get_data()

    return get


def row(label: str, ms: float, cpu_ms: float | None, size: int) -> None:
    cpu = f"{cpu_ms:8.2f}" if cpu_ms is not None else "       -"
    print(f"{label:<58} {ms:9.2f} ms {cpu} ms CPU {size:10d} B")


def later_cursor(app: Flask, path: str, folder: str, pages: int) -> str:
    """Walk ``pages`` pages of a folder's listing; return the cursor that follows."""
    client = app.test_client()
    cursor = ""
    for _ in range(pages):
        query = f"dir={folder}&limit={LIMIT}" + (f"&cursor={cursor}" if cursor else "")
        cursor = client.get(f"{path}?{query}").get_json()["next_cursor"]
    return cursor


def measure(name: str, data: Path, cache: Path, folder: str, pages: int) -> None:
    """Print the figures of one folder: JSON and HTML, first and later pages."""
    base = f"dir={folder}&limit={LIMIT}"
    for path, kind in (("/fits/images", "json"), ("/fits/", "html")):
        row(f"{name} {kind} first page, cold", *cold(data, cache, f"{path}?{base}"))
        app = make_app(data, cache)
        row(
            f"{name} {kind} first page, warm",
            *timed(fetcher(app, f"{path}?{base}"), REPEATS),
        )
        cursor = later_cursor(app, "/fits/images", folder, pages)
        later = f"{path}?{base}&cursor={cursor}"
        row(f"{name} {kind} page {pages + 1}, warm", *timed(fetcher(app, later), REPEATS))


def over_http(name: str, data: Path, cache: Path, folder: str, pages: int) -> None:
    """Print the figures of one folder from the example app under gunicorn."""
    port = free_port()
    env = {
        **os.environ,
        "FITSTILES_DATA_DIR": str(data),
        "FITSTILES_CACHE_DIR": str(cache),
        "GUNICORN_LOG_LEVEL": "warning",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn), "-c", "example_app/gunicorn.conf.py"]
    command += ["example_app:create_app()", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--no-control-socket"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_http(port, "/openapi.json")
        # The worker's own first-request costs (registry state, first JSON error)
        # are paid here, so that "cold" below is the folder's scan.
        assert http_get(port, "/images?dir=no-such-folder")[0] == 404

        def get(path: str) -> Callable[[], bytes]:
            def fetch() -> bytes:
                status, body = http_get(port, path)
                assert status == 200, (path, body[:200])
                return body

            return fetch

        base = f"dir={folder}&limit={LIMIT}"
        row(
            f"{name} json first page, cold (HTTP)",
            *timed(get(f"/images?{base}"), 1, cpu=False),
        )
        row(
            f"{name} json first page, warm (HTTP)",
            *timed(get(f"/images?{base}"), REPEATS, cpu=False),
        )
        cursor = ""
        for _ in range(pages):
            query = base + (f"&cursor={cursor}" if cursor else "")
            cursor = json.loads(get(f"/images?{query}")())["next_cursor"]
        later = f"{base}&cursor={cursor}"
        row(
            f"{name} json page {pages + 1}, warm (HTTP)",
            *timed(get(f"/images?{later}"), REPEATS, cpu=False),
        )
        row(
            f"{name} html first page, warm (HTTP)",
            *timed(get(f"/?{base}"), REPEATS, cpu=False),
        )
        row(
            f"{name} html page {pages + 1}, warm (HTTP)",
            *timed(get(f"/?{later}"), REPEATS, cpu=False),
        )
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="also time the old /images")
    parser.add_argument("--gunicorn", action="store_true", help="also over HTTP")
    args = parser.parse_args()
    # The old listing reads the placeholder pickles and logs each as unreadable.
    logging.getLogger("flask_fitstiles").setLevel(logging.ERROR)
    tree, flat, cache = build(bench_dir() / "paging")
    stamp(tree, flat, cache)
    print(
        f"limit={LIMIT}; warm: median of {REPEATS} requests; cold: median of "
        f"{COLD_REPEATS} first requests of fresh apps; Flask test client, in process"
    )
    row(
        "tree root (100 folders)",
        *timed(fetcher(make_app(tree, cache), "/fits/images?dir="), 1),
    )
    measure("tree f000 (1 000 files)", tree, cache, "f000", 5)
    measure("tree f050 (1 000 files)", tree, cache, "f050", 9)
    measure("flat (100 000 files)", flat, cache, "", 500)
    if args.gunicorn:
        over_http("tree f050 (1 000 files)", tree, cache, "f050", 9)
        over_http("flat (100 000 files)", flat, cache, "", 500)
    if args.old:
        old = timed(fetcher(make_app(tree, cache), "/fits/images"), 1)
        row("old /images, whole tree (100 000 files)", *old)


if __name__ == "__main__":
    main()
