"""ImageRegistry without Flask: names, open images, freshness, per-process state."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from filelock import FileLock

from flask_fitstiles.core import registry as registry_module
from flask_fitstiles.core.registry import ImageRegistry, is_fits_name
from flask_fitstiles.errors import BadFitsError, ImageBusyError, ImageNotFoundError
from flask_fitstiles.tiled import get_object_filename
from tests.web.webtools import Library, small_image


def make_registry(library: Library, **options: object) -> ImageRegistry:
    return ImageRegistry(library.data, library.cache, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["a.fits", "a.FIT", "a.fts", "a.fits.fz", "a.fz", "a.fits.gz", "dir/b.Fits"],
)
def test_fits_names(name: str) -> None:
    assert is_fits_name(name)


@pytest.mark.parametrize("name", ["a.txt", "a.gz", "a.fits.bz2", "fits", "a.fitsx"])
def test_other_names(name: str) -> None:
    assert not is_fits_name(name)


def test_resolve(library: Library) -> None:
    registry = make_registry(library)
    data = Path(os.path.realpath(library.data))
    assert registry.resolve("small.fits") == data / "small.fits"
    assert registry.resolve("sub/deep.fits") == data / "sub" / "deep.fits"
    assert registry.resolve("link_in.fits") == data / "small.fits"
    for name in (
        "",
        "..",
        "../outside/outside.fits",
        "sub/../small.fits",
        "/" + str(data / "small.fits"),
        str(data / "small.fits"),
        "link_out.fits",
        "linkdir/outside.fits",
        "small.fits\0",
        "sub\\deep.fits",
        "sub//deep.fits",
        "folder.fits",
        "notes.txt",
        ".hidden.fits",
        "nope.fits",
    ):
        with pytest.raises(ImageNotFoundError) as error:
            registry.resolve(name)
        assert str(library.root) not in error.value.msg
        assert error.value.loc == ("query", "FIF")


MALFORMED = (
    "FIF must name an image by its path relative to the data folder, without '..', "
    "hidden or empty components, backslashes or NUL; the images endpoint lists the names"
)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", MALFORMED),
        ("small.fits\0", MALFORMED),
        ("sub\\deep.fits", MALFORMED),
        ("sub/../small.fits", MALFORMED),
        ("sub//deep.fits", MALFORMED),
        (
            "nope.fits",
            "no image 'nope.fits' in the data folder; the images endpoint lists the names",
        ),
        (
            "d" * 200 + ".fits",
            f"no image {'d' * registry_module._MAX_ECHO + '...'!r} in the data folder; "
            "the images endpoint lists the names",
        ),
    ],
)
def test_resolve_messages(library: Library, name: str, message: str) -> None:
    # A malformed name and a missing image are told apart; a long name is cut.
    with pytest.raises(ImageNotFoundError) as error:
        make_registry(library).resolve(name)
    assert error.value.msg == message


def test_echo_keeps_names_up_to_the_limit() -> None:
    limit = registry_module._MAX_ECHO
    assert registry_module._echo("a" * limit) == repr("a" * limit)
    assert registry_module._echo("a" * (limit + 1)) == repr("a" * limit + "...")


def test_sibling_folder_with_the_data_folder_name_is_outside(
    fresh_library: Library,
) -> None:
    # "<data>-private" starts with the data folder's path: only a comparison that
    # ends at a path separator tells that it is not inside.
    private = fresh_library.data.parent / (fresh_library.data.name + "-private")
    private.mkdir()
    fits.PrimaryHDU(small_image()).writeto(private / "secret.fits")
    os.symlink(private / "secret.fits", fresh_library.data / "to_secret.fits")
    os.symlink(private, fresh_library.data / "privdir")
    os.symlink(f"../{private.name}/secret.fits", fresh_library.data / "relative.fits")
    registry = make_registry(fresh_library)
    for name in ("to_secret.fits", "privdir/secret.fits", "relative.fits"):
        with pytest.raises(ImageNotFoundError) as error:
            registry.resolve(name)
        assert str(fresh_library.root) not in error.value.msg
    names = {entry["name"] for entry in registry.list_images()}
    assert not names & {"to_secret.fits", "privdir/secret.fits", "relative.fits"}
    # Nothing was prepared from the sibling.
    assert not any(fresh_library.cache.iterdir())


def test_a_data_folder_at_the_root_holds_every_path(tmp_path: Path) -> None:
    # "/" must stay "/" when the trailing separator is taken off for the check.
    registry = ImageRegistry("/", tmp_path / "cache")
    assert registry._inside(str(tmp_path / "a.fits"))


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        ImageRegistry(tmp_path / "missing", tmp_path)


def test_open_images_are_reused_and_share_the_tile_cache(library: Library) -> None:
    registry = make_registry(library)
    first = registry.open("small.fits")
    assert registry.open("small.fits") is first
    assert registry.open("link_in.fits") is first  # same real file
    other = registry.open("mef.fits", 2)
    assert other is not registry.open("mef.fits", 1)
    assert first.tile_cache is registry.tile_cache is other.tile_cache


def test_least_recently_used_image_is_closed(library: Library) -> None:
    registry = make_registry(library, max_open_images=1)
    small = registry.open("small.fits")
    registry.open("scaled.fits")
    again = registry.open("small.fits")
    assert again is not small
    assert again.identity == small.identity  # loaded again, from the same preparation


def test_changed_source_is_prepared_again(fresh_library: Library) -> None:
    registry = make_registry(fresh_library)
    path = fresh_library.data / "small.fits"
    old = registry.open("small.fits")
    assert registry.is_prepared(registry.resolve("small.fits"))
    fits.PrimaryHDU(small_image((50, 60))).writeto(path, overwrite=True)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not old.is_fresh()
    assert not registry.is_prepared(registry.resolve("small.fits"))
    new = registry.open("small.fits")
    assert new is not old
    assert new.identity != old.identity
    assert new.shape[1:] == (50, 60)
    assert registry.is_prepared(registry.resolve("small.fits"))


def test_concurrent_first_requests_prepare_once(
    fresh_library: Library, caplog: pytest.LogCaptureFixture
) -> None:
    registry = make_registry(fresh_library)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(registry.open("starfield.fits"))

    with caplog.at_level(logging.INFO, logger="flask_fitstiles"):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    prepared = [r for r in caplog.records if r.getMessage().startswith("prepared ")]
    assert len(prepared) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert registry._process_state().loading == {}  # no lock left behind


def test_state_is_made_again_after_a_fork(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry(library)
    parent_cache = registry.tile_cache
    parent_image = registry.open("small.fits")
    monkeypatch.setattr(registry_module.os, "getpid", lambda: -1)
    assert registry.tile_cache is not parent_cache
    child_image = registry.open("small.fits")
    assert child_image is not parent_image
    assert child_image.tile_cache is registry.tile_cache


def test_tile_cache_is_bounded(library: Library) -> None:
    registry = make_registry(library, tile_cache_bytes=50_000)
    tiled = registry.open("starfield.fits")
    for index in range(48):
        tiled.get_encoded_tile(0, index, channel=1)
    assert 0 < registry.tile_cache.currsize <= 50_000


def test_bad_files(library: Library) -> None:
    registry = make_registry(library)
    for name, extnum in (("notfits.fits", None), ("table.fits", None), ("mef.fits", 7)):
        with pytest.raises(BadFitsError):
            registry.open(name, extnum)


def test_list_images(library: Library) -> None:
    registry = make_registry(library)
    images = registry.list_images()
    names = [image["name"] for image in images]
    assert names == sorted(names)
    assert "sub/deep.fits" in names and "Upper.FITS" in names and "link_in.fits" in names
    for hidden in ("link_out.fits", "linkdir/outside.fits", ".hidden.fits", "notes.txt"):
        assert hidden not in names
    assert all(isinstance(image["size"], int) for image in images)


def test_prepare_options_reach_the_image(fresh_library: Library) -> None:
    # A fresh cache: the prepared files of another tile size would be replaced.
    registry = make_registry(fresh_library, tile_size=(64, 128), gamma=1.0, quality=70)
    tiled = registry.open("small.fits")
    assert tiled.tile_shape[1:] == (64, 128)
    assert (tiled.gamma, tiled.quality) == (1.0, 70)
    assert np.isfinite(tiled.minmax).all()


def test_queued_threads_share_one_wait_when_busy(fresh_library: Library) -> None:
    registry = make_registry(fresh_library, prepare_wait=0.5)
    path = registry.resolve("small.fits")
    lock = FileLock(get_object_filename(path, fresh_library.cache) + ".lock")
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        try:
            registry.get(path)
            outcomes.append("ok")
        except ImageBusyError as error:
            assert error.retry_after >= 1
            outcomes.append("busy")

    with lock:  # another process is preparing the image
        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - started
    assert outcomes == ["busy"] * 6
    assert elapsed < 2.0  # not 6 x 0.5 s one after the other
    assert registry.get(path).shape[1:] == (200, 300)
