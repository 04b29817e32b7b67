"""A FITS file replaced under the same name: the next requests serve the new pixels.

Everything that was made from the old file must follow: its prepared files in the
cache folder (prepared again), the open image of every worker (per-process LRU)
and the cached tiles (keyed on the image identity: path, HDU, size, mtime).
The new content has the same shape, so the file keeps its size: only its
modification time tells.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from flask_fitstiles.tiled import pickledTiled
from tests.web.servers import fetch, gunicorn, prepared_count, read
from tests.web.webtools import PREFIX, Library, make_app, small_image

SHAPE = (200, 300)
PIXELS = [(1, 1), (21, 11), (150, 100), (300, 200)]


def replace(path: Path, pixels: np.ndarray, how: str) -> None:
    """Give ``path`` new content of the same size, by renaming or in place."""
    before = os.stat(path)
    time.sleep(0.02)  # a later modification time than the old file's
    if how == "rename":
        fits.PrimaryHDU(pixels).writeto(path.with_suffix(".new"))
        os.replace(path.with_suffix(".new"), path)
    else:
        with fits.open(path, mode="update") as hdul:
            hdul[0].data[...] = pixels
    after = os.stat(path)
    assert after.st_size == before.st_size
    assert after.st_mtime_ns != before.st_mtime_ns


def values(body: bytes) -> list[float | None]:
    return list(json.loads(body)["values"])


@pytest.mark.parametrize("how", ["rename", "in_place"])
def test_replaced_file_is_served_anew(
    fresh_library: Library, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(fresh_library).test_client()
    path = fresh_library.data / "small.fits"
    old = fits.getdata(path)

    def get(command: str) -> bytes:
        response = client.get(f"{PREFIX}/iip?FIF=small.fits&{command}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_data()

    commands = ["JTL=1,0", "JTL=1,0&CHAN=1&CMP=hot", "RGN=1,1:300,200&BIN=2", "INFO"]
    with caplog.at_level(logging.INFO, logger="flask_fitstiles"):
        before = {command: get(command) for command in commands}
        for x, y in PIXELS:
            expected = None if np.isnan(old[y - 1, x - 1]) else float(old[y - 1, x - 1])
            assert values(get(f"VAL={x},{y}")) == [expected]
        assert get("JTL=1,0") == before["JTL=1,0"]  # from the tile cache
        new = (small_image(SHAPE, seed=42) * -3.0 + 5e4).astype(np.float32)
        replace(path, new, how)
        for x, y in PIXELS:
            assert values(get(f"VAL={x},{y}")) == [float(new[y - 1, x - 1])]
        after = {command: get(command) for command in commands}
    # Tiles, regions and information all changed, and are those of the new file.
    reference = pickledTiled(path, cache_dir=fresh_library.root / "reference")
    assert after["JTL=1,0"] != before["JTL=1,0"]
    assert after["JTL=1,0"] == reference.get_encoded_tile(reference.nlevels - 2, 0)
    assert after["JTL=1,0&CHAN=1&CMP=hot"] == reference.get_encoded_tile(
        reference.nlevels - 2, 0, channel=1, colormap="hot"
    )
    assert after["RGN=1,1:300,200&BIN=2"] != before["RGN=1,1:300,200&BIN=2"]
    assert (
        json.loads(after["INFO"])["images"][0]["min_max"]
        != json.loads(before["INFO"])["images"][0]["min_max"]
    )
    prepared = [r for r in caplog.records if r.getMessage().startswith("prepared small")]
    assert len(prepared) == 2  # once for each content
    listing = client.get(f"{PREFIX}/images").get_json()
    assert {
        "name": "small.fits",
        "size": os.path.getsize(path),
        "prepared": True,
    } in listing


def run_at_once(urls: list[str]) -> list[tuple[int, bytes]]:
    results: list[tuple[int, bytes]] = [(0, b"")] * len(urls)
    barrier = threading.Barrier(len(urls))

    def client(i: int) -> None:
        barrier.wait()
        results[i] = fetch(urls[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def open_in_workers(url: str, workers: int) -> dict[int, dict[str, object]]:
    """Return each worker's stats entry for img.fits (asking until all have answered)."""
    seen: dict[int, dict[str, object]] = {}
    for _ in range(200):
        status, body = fetch(f"{url}/stats")
        assert status == 200
        stats = json.loads(body)
        entry = [image for image in stats["open_images"] if image["name"] == "img.fits"]
        seen[stats["pid"]] = {"image": entry[0] if entry else None, **stats["tile_cache"]}
        if len(seen) == workers:
            return seen
    raise AssertionError(f"only {len(seen)} worker(s) answered /stats")


@pytest.mark.slow
def test_every_gunicorn_worker_notices(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    path = data / "img.fits"
    old = small_image(SHAPE, seed=1)
    fits.PrimaryHDU(old).writeto(path)
    # Not a linear function of the old pixels: those render to the same tiles.
    new = np.ascontiguousarray(old[::-1, ::-1] - 777.0)
    tile = "JTL=9,0&CHAN=1"  # beyond the finest level: full resolution
    with gunicorn(data, cache, tmp_path / "gunicorn.log") as server:
        iip = f"{server.url}/iip?FIF=img.fits&"
        # Both workers open the image and cache its tile.
        for _ in range(20):
            results = run_at_once([iip + tile] * 16 + [iip + "VAL=150,100"] * 16)
            assert {status for status, _ in results} == {200}
            workers = open_in_workers(server.url, 2)
            if all(w["image"] is not None and w["entries"] for w in workers.values()):
                break
        else:
            raise AssertionError(f"a worker never served the image: {workers}")
        old_tile = results[0][1]
        assert values(results[-1][1]) == [float(old[99, 149])]
        old_mtime = {w["image"]["mtime_ns"] for w in workers.values()}  # type: ignore[index]

        replace(path, new, "rename")
        mtime = os.stat(path).st_mtime_ns
        assert mtime not in old_mtime
        # Until every worker has served the image again, all answers are new.
        for _ in range(20):
            results = run_at_once([iip + tile] * 16 + [iip + "VAL=150,100"] * 16)
            assert {body for _, body in results[:16]} != {old_tile}
            assert len({body for _, body in results[:16]}) == 1
            assert {bytes(body) for _, body in results[16:]} == {
                f'{{"values":[{float(new[99, 149])!r}]}}'.encode()
            }
            workers = open_in_workers(server.url, 2)
            if all(w["image"]["mtime_ns"] == mtime for w in workers.values()):  # type: ignore[index]
                break
        else:
            raise AssertionError(f"a worker still has the old image open: {workers}")
        assert prepared_count(read(server.log), "img.fits") == 2
