"""One real gunicorn with two workers: concurrent first requests prepare an image once.

The count comes from the "prepared <image> in <s> s" INFO line that
``flask_fitstiles.tiled`` logs each time it prepares an image: the example's
``gunicorn.conf.py`` routes the package's log records to gunicorn's error log
in every worker (``post_fork``), and the test sends that log to a file.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from example_app.samples import star_field, write_atomic

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTUP_SECONDS = 60
REQUESTS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_workers(
    log: Path, proc: subprocess.Popen[bytes], port: int, count: int
) -> None:
    """Wait until ``count`` workers have booted and the port accepts connections."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited ({proc.returncode}):\n{read(log)}")
        if read(log).count("Booting worker") >= count:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not start in {STARTUP_SECONDS} s:\n{read(log)}")


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_two_workers_prepare_a_new_image_once(tmp_path: Path) -> None:
    data, cache, log = tmp_path / "data", tmp_path / "cache", tmp_path / "gunicorn.log"
    data.mkdir()
    # Large enough that preparing it takes a while, so the requests overlap it.
    write_atomic(star_field(shape=(2048, 3072), nstars=500, ngalaxies=5), data / "big.fits")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FITSTILES_", "GUNICORN"))
    }
    env.pop("WEB_CONCURRENCY", None)
    env.update(FITSTILES_DATA_DIR=str(data), FITSTILES_CACHE_DIR=str(cache))
    command = [
        str(GUNICORN),
        "-c",
        "example_app/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--error-logfile",
        str(log),
        "example_app:create_app()",
    ]
    with subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            wait_for_workers(log, proc, port, count=2)
            url = f"http://127.0.0.1:{port}/iip?FIF=big.fits&INFO"
            results: list[tuple[int, bytes]] = []
            barrier = threading.Barrier(REQUESTS)

            def client() -> None:
                barrier.wait()
                results.append(fetch(url))

            threads = [threading.Thread(target=client) for _ in range(REQUESTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
            assert [status for status, _ in results] == [200] * REQUESTS, results[:1]
            assert len({body for _, body in results}) == 1
            assert b'"full_size":[3072,2048]' in results[0][1]
            text = read(log)
            prepared = re.findall(r"\[(\d+)\] \[INFO\] prepared big\.fits in", text)
            assert len(prepared) == 1, text
            status, images = fetch(f"http://127.0.0.1:{port}/images")
            assert status == 200 and b'"prepared": true' in images
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
