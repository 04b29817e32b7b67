"""Disk budget (FITSTILES_MAX_CACHED_IMAGES): least recently used prepared images go.

Requests in flight on an evicted image keep working (its files are mapped as soon
as it is loaded), an image whose files vanish before they are mapped is loaded
again, and images being prepared are never touched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from filelock import FileLock

from flask_fitstiles.core import budget
from flask_fitstiles.core import registry as registry_module
from flask_fitstiles.core.registry import ImageRegistry
from flask_fitstiles.tiled import (
    get_data_filename,
    get_object_filename,
    get_tiles_filename,
)
from tests.web.webtools import PREFIX, Library, make_app

# Kernel file times tick coarsely (a few ms): leave room between two uses.
TICK = 0.03


def files_of(registry: ImageRegistry, name: str) -> list[str]:
    path = registry.resolve(name)
    args = (path, registry.cache_dir, None, registry.tile_size)
    return [get_object_filename(*args), get_data_filename(*args), get_tiles_filename(*args)]


def pickles(cache: Path) -> list[str]:
    return sorted(name for name in os.listdir(cache) if name.endswith(".pkl"))


def pixel(library: Library, name: str, x: int, y: int) -> float:
    return float(
        np.asarray(fits.getdata(library.data / name), dtype=np.float32)[y - 1, x - 1]
    )


def test_least_recently_used_images_are_removed(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "TOUCH_SECONDS", 0.0)
    registry = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=2)
    registry.open("small.fits")
    time.sleep(TICK)
    registry.open("scaled.fits")
    time.sleep(TICK)
    registry.open("small.fits")  # in use again: now more recent than scaled.fits
    time.sleep(TICK)
    registry.open("odd.fits")
    assert len(pickles(fresh_library.cache)) == 2
    assert all(os.path.exists(f) for f in files_of(registry, "small.fits"))
    assert all(os.path.exists(f) for f in files_of(registry, "odd.fits"))
    assert not any(os.path.exists(f) for f in files_of(registry, "scaled.fits"))
    assert not registry.is_prepared(registry.resolve("scaled.fits"))
    assert registry.stats()["prepared_images"] == 2


def test_no_budget_keeps_everything(fresh_library: Library) -> None:
    registry = ImageRegistry(fresh_library.data, fresh_library.cache)
    for name in ("small.fits", "scaled.fits", "odd.fits", "Upper.FITS"):
        registry.open(name)
    assert len(pickles(fresh_library.cache)) == 4


def test_touch_at_most_once_a_minute(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[str] = []
    real_touch = budget.touch
    monkeypatch.setattr(
        budget, "touch", lambda path: touched.append(path) or real_touch(path)
    )
    registry = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=5)
    for _ in range(20):
        registry.open("small.fits")
    assert len(touched) == 1  # when it was loaded
    monkeypatch.setattr(registry_module, "TOUCH_SECONDS", 0.0)
    for _ in range(3):
        registry.open("small.fits")
    assert len(touched) == 4
    pickle_file = files_of(registry, "small.fits")[0]
    assert touched == [pickle_file] * 4
    info = os.stat(pickle_file)
    assert info.st_atime_ns >= info.st_mtime_ns


def test_requests_in_flight_on_an_evicted_image(
    fresh_library: Library, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=1)
    small = registry.open("starfield.fits")
    before = small.get_encoded_tile(1, 0)
    registry.open("small.fits")  # evicts starfield.fits
    assert not any(os.path.exists(f) for f in files_of(registry, "starfield.fits"))
    # The image that was open keeps serving, from its mapped (unlinked) files.
    assert registry.open("starfield.fits") is small
    assert small.get_pixel_values((1,), (500, 400)).values == [
        pixel(fresh_library, "starfield.fits", 500, 400)
    ]
    small.tile_cache = None  # render again, from the mapped pyramid
    assert small.get_encoded_tile(1, 0) == before
    assert small.get_encoded_region(((1, 1), (600, 600)), binning=4)
    # Another process (no open image) prepares it again.
    other = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=1)
    with caplog.at_level(logging.INFO, logger="flask_fitstiles"):
        again = other.open("starfield.fits")
    assert [r for r in caplog.records if r.getMessage().startswith("prepared starfield")]
    assert again.get_encoded_tile(1, 0) == before


def test_files_vanishing_before_mapping_are_loaded_again(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=3)
    registry.open("small.fits")  # prepared once
    fresh = ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=3)
    calls: list[str] = []
    real = registry_module.pickledTiled

    def evicted_after_loading(*args: Any, **kwargs: Any) -> Any:
        tiled = real(*args, **kwargs)
        calls.append(tiled.object_filename)
        if len(calls) == 1:  # another worker evicts it before it is mapped
            for name in (tiled.object_filename, tiled.data_filename, tiled.tiles_filename):
                os.unlink(name)
        return tiled

    monkeypatch.setattr(registry_module, "pickledTiled", evicted_after_loading)
    tiled = fresh.open("small.fits")
    assert len(calls) == 2
    assert tiled.get_pixel_values((1,), (150, 100)).values == [
        pixel(fresh_library, "small.fits", 150, 100)
    ]
    assert all(os.path.exists(f) for f in files_of(fresh, "small.fits"))


def test_leftovers_and_orphans_are_swept_unless_busy(fresh_library: Library) -> None:
    cache = fresh_library.cache
    registry = ImageRegistry(fresh_library.data, cache, max_cached_images=10)
    leftover = f"small.fits-{'a' * 20}.data.f32.tmp-99999-0123abcd"
    orphan = f"gone.fits-{'b' * 20}.tiles.f32"
    busy = f"busy.fits-{'c' * 20}.data.f32.tmp-99999-4567ef01"
    unrelated = "notes.txt"
    for name in (leftover, orphan, busy, unrelated):
        (cache / name).write_bytes(b"x" * 100)
    with FileLock(str(cache / f"busy.fits-{'c' * 20}.pkl.lock")):
        registry.open("small.fits")
    remaining = set(os.listdir(cache))
    assert leftover not in remaining and orphan not in remaining
    assert busy in remaining and unrelated in remaining


def test_budget_holds_under_concurrent_workers(fresh_library: Library) -> None:
    names = ["small.fits", "scaled.fits", "odd.fits", "Upper.FITS", "sub/deep.fits"]
    workers = [
        ImageRegistry(fresh_library.data, fresh_library.cache, max_cached_images=2)
        for _ in range(2)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2 * len(names))

    def use(registry: ImageRegistry, name: str) -> None:
        barrier.wait()
        try:
            tiled = registry.open(name)
            assert tiled.get_pixel_values((1,), (1, 1)).values == [
                pixel(fresh_library, name, 1, 1)
            ]
            tiled.get_encoded_tile(0, 0)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=use, args=(worker, name))
        for worker in workers
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(pickles(fresh_library.cache)) <= 2


def test_budget_through_the_web(fresh_library: Library) -> None:
    app = make_app(fresh_library, max_cached_images=2)
    client = app.test_client()
    names = ["small.fits", "scaled.fits", "odd.fits", "Upper.FITS", "sub/deep.fits"]
    for _ in range(2):
        for name in names:
            response = client.get(f"{PREFIX}/iip?FIF={name}&VAL=2,3")
            assert response.status_code == 200
            assert response.get_json() == {"values": [pixel(fresh_library, name, 2, 3)]}
            assert client.get(f"{PREFIX}/iip?FIF={name}&JTL=0,0").status_code == 200
    assert len(pickles(fresh_library.cache)) == 2
    stats = client.get(f"{PREFIX}/stats").get_json()
    assert stats["prepared_images"] == 2 and stats["max_cached_images"] == 2
    prepared = [
        i["name"] for i in client.get(f"{PREFIX}/images").get_json() if i["prepared"]
    ]
    assert prepared == ["Upper.FITS", "sub/deep.fits"]


@pytest.mark.parametrize("value", [-1, "x", 1.5, True])
def test_bad_budget_setting(library: Library, value: object) -> None:
    with pytest.raises(ValueError, match="FITSTILES_MAX_CACHED_IMAGES"):
        make_app(library, max_cached_images=value)


def test_budget_from_the_environment(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FITSTILES_MAX_CACHED_IMAGES", "7")
    app = make_app(library)
    assert app.config["FITSTILES_MAX_CACHED_IMAGES"] == "7"
    assert app.extensions["fitstiles"]["fitstiles"].registry.max_cached_images == 7
