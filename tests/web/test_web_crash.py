"""kill -9 of gunicorn (master and workers) while it prepares an image, then a restart.

The first server runs ``tests.web.stall_app``: the worker that prepares the image
writes one of its files under a temporary name, with garbage at its start, and
stalls there; the whole session is then killed with SIGKILL. The second server,
the plain example app over the same folders, must prepare the image again from
the source (its pixel values equal astropy's, its tiles equal those of a clean
preparation, bit for bit) and remove the leftovers.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from flask_fitstiles.tiled import get_prepared, pickledTiled
from tests.web.servers import fetch, gunicorn, prepared_count, read

pytestmark = pytest.mark.slow  # servers or killed subprocesses

SHAPE = (1100, 1300)


def leftovers(cache: Path) -> list[str]:
    return sorted(name for name in os.listdir(cache) if ".tmp-" in name)


@pytest.mark.parametrize("stage", ["frame", "levels", "pickle"])
def test_killed_server_prepares_again(tmp_path: Path, stage: str) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    pixels = np.random.default_rng(3).normal(1000.0, 30.0, SHAPE).astype(np.float32)
    fits.PrimaryHDU(pixels).writeto(data / "victim.fits")
    flag = tmp_path / "stalled"
    env = {"FITSTILES_TEST_STALL": stage, "FITSTILES_TEST_STALL_FLAG": str(flag)}
    answers: list[tuple[int, bytes]] = []

    def first_request(url: str) -> None:
        try:
            answers.append(fetch(url, timeout=120))
        except OSError as error:  # the server dies under it
            answers.append((-1, repr(error).encode()))

    with gunicorn(
        data, cache, tmp_path / "first.log", app="tests.web.stall_app:create_app()", env=env
    ) as server:
        client = threading.Thread(
            target=first_request, args=(f"{server.url}/iip?FIF=victim.fits&INFO",)
        )
        client.start()
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert time.monotonic() < deadline, read(server.log)
            time.sleep(0.02)
        assert leftovers(cache), "the preparation should be under way"
        server.kill()
        client.join(30)
    assert answers and answers[0][0] != 200
    # What the killed run left is not taken for a prepared image...
    stale = leftovers(cache)
    assert stale
    assert get_prepared(data / "victim.fits", cache) is None

    with gunicorn(data, cache, tmp_path / "second.log") as server:
        status, body = fetch(f"{server.url}/iip?FIF=victim.fits&INFO")
        assert status == 200, body
        assert b'"full_size":[1300,1100]' in body
        # ...the image is prepared again, from the source...
        rng = np.random.default_rng(4)
        # The first rows are where the stalled run wrote garbage.
        points = [
            (1, 1),
            (700, 1),
            (1300, 3),
            *zip(rng.integers(1, 1301, 40), rng.integers(1, 1101, 40), strict=True),
        ]
        for x, y in points:
            status, body = fetch(f"{server.url}/iip?FIF=victim.fits&VAL={x},{y}")
            assert status == 200
            assert body.decode() == f'{{"values":[{float(pixels[y - 1, x - 1])!r}]}}'
        # ...its tiles are those of a clean preparation, at every level...
        reference = pickledTiled(data / "victim.fits", cache_dir=tmp_path / "reference")
        for level in range(reference.nlevels):
            z = reference.nlevels - 1 - level
            _, rows, cols = (int(n) for n in reference.shapes[level])
            # Top-left (where the levels' garbage went), bottom-left (the frame's), ...
            for index in sorted({0, (rows - 1) * cols, rows * cols // 2, rows * cols - 1}):
                status, body = fetch(f"{server.url}/iip?FIF=victim.fits&JTL={z},{index}")
                assert status == 200
                assert body == reference.get_encoded_tile(level, index), (level, index)
        assert prepared_count(read(server.log), "victim.fits") == 1
    # ...and the leftovers are gone.
    assert leftovers(cache) == []
    assert get_prepared(data / "victim.fits", cache) is not None
