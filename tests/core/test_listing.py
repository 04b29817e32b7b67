"""Folder scans, their order and memo, folder names, and the source stamps of listings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flask_fitstiles.core import budget
from flask_fitstiles.core.cachefiles import (
    SourceStamp,
    get_prefix,
    read_source_stamp,
    write_source_stamp,
)
from flask_fitstiles.core.listing import (
    FOLDER,
    IMAGE,
    FolderScan,
    FolderScans,
    check_folder_name,
    read_page,
    resolve_folder,
    scan_folder,
)
from flask_fitstiles.errors import BadParameterError, FolderNotFoundError


def is_fits(name: str) -> bool:
    return name.lower().endswith((".fits", ".fz"))


@pytest.mark.parametrize(
    ("name", "parts"),
    [("", []), ("a", ["a"]), ("a/b c/d.fits", ["a", "b c", "d.fits"]), ("~", ["~"])],
)
def test_folder_names_accepted(name: str, parts: list[str]) -> None:
    assert check_folder_name(name) == parts


@pytest.mark.parametrize(
    "name",
    ["/", "/etc", "..", "a/..", "../a", ".", "./a", "a/", "a//b", ".git", "a\\b", "a\0"],
)
def test_folder_names_refused(name: str) -> None:
    with pytest.raises(BadParameterError) as error:
        check_folder_name(name)
    assert error.value.loc == ("query", "dir") and error.value.status == 400


def test_resolve_folder_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    sibling = tmp_path / "data-private"
    sibling.mkdir()
    (root / "escape").symlink_to("../data-private", target_is_directory=True)
    (root / "here").symlink_to("sub", target_is_directory=True)
    (root / "file.fits").write_bytes(b"")
    real = os.path.realpath(root)
    assert resolve_folder(real, "") == real
    assert resolve_folder(real, "here") == os.path.join(real, "sub")
    for name in ("escape", "nope", "file.fits"):
        with pytest.raises(FolderNotFoundError) as error:
            resolve_folder(real, name)
        assert str(tmp_path) not in error.value.msg


def test_scan_sorts_folders_before_images(tmp_path: Path) -> None:
    for name in ("b.fits", "A.FITS", "c.txt", ".h.fits", "é.fits", "z.fz"):
        (tmp_path / name).write_bytes(b"")
    for name in ("zeta", "Alpha", ".hidden", "dir.fits"):
        (tmp_path / name).mkdir()
    scan = scan_folder(os.fspath(tmp_path), is_fits)
    assert scan.folders == ["Alpha", "dir.fits", "zeta"]
    assert scan.images == ["A.FITS", "b.fits", "z.fz", "é.fits"]
    everything = [(FOLDER, n) for n in scan.folders] + [(IMAGE, n) for n in scan.images]
    positions = [None, *everything, (FOLDER, "zz-gone"), (IMAGE, "a-gone"), (FOLDER, "B")]
    # Selected from the unsorted names, then by bisection once sorted: the same.
    for sort in (False, True):
        if sort:
            scan.sort()
        for position in positions:
            start = 0 if position is None else _rank(everything, position)
            for count in (1, 2, 3, 100):
                want = everything[start : start + count]
                assert scan.after(position, count) == want, (sort, position, count)


def _rank(entries: list[tuple[int, str]], position: tuple[int, str]) -> int:
    """Index of the first entry strictly after ``position`` (independent of the code)."""
    return sum(1 for entry in entries if entry <= position)


def test_page_budget_skips_unlistable_entries(tmp_path: Path) -> None:
    root = os.fspath(tmp_path)
    names = [f"broken{i:03d}.fits" for i in range(300)]
    for name in names:
        os.symlink("nowhere", tmp_path / name)
    (tmp_path / "zz.fits").write_bytes(b"ok")
    scan = FolderScan((0,), [], [*names, "zz.fits"])
    first = read_page(root, "", root, scan, None, 10, lambda path, info: False)
    # Broken links are skipped, but a page looks at a bounded number of entries.
    assert first.images == [] and first.next_position == (IMAGE, names[4 * 10 + 64 - 1])
    position = first.next_position
    while position is not None:
        page = read_page(root, "", root, scan, position, 10, lambda path, info: False)
        position = page.next_position
    assert [image.name for image in page.images] == ["zz.fits"]


def test_scans_are_kept_while_the_folder_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / "a.fits").write_bytes(b"")
    past = time.time_ns() - 10**10
    os.utime(tmp_path, ns=(past, past))
    scans = FolderScans(is_fits, max_entries=10)
    first = scans.get(os.fspath(tmp_path))
    assert scans.get(os.fspath(tmp_path)) is first
    (tmp_path / "b.fits").write_bytes(b"")
    second = scans.get(os.fspath(tmp_path))
    assert second is not first and second.images == ["a.fits", "b.fits"]
    # Just changed: not kept (it may change again within the same timestamp).
    assert scans.get(os.fspath(tmp_path)) is not second
    # Folders larger than the memo are scanned every time.
    big = tmp_path / "big"
    big.mkdir()
    for i in range(12):
        (big / f"{i}.fits").write_bytes(b"")
    os.utime(big, ns=(past, past))
    assert scans.get(os.fspath(big)) is not scans.get(os.fspath(big))


def test_source_stamps(tmp_path: Path) -> None:
    key = b"k" * 32
    prefix = get_prefix(tmp_path / "image.fits", None, (256, 256))
    pickle = tmp_path / f"{prefix}.pkl"
    assert read_source_stamp(tmp_path, prefix, key) is None
    stamp = SourceStamp(1, 12345, 1_700_000_000_123_456_789)
    write_source_stamp(os.fspath(pickle), stamp, key)
    assert read_source_stamp(tmp_path, prefix, key) == stamp
    assert read_source_stamp(tmp_path, prefix, b"another key") is None
    assert [p.name for p in tmp_path.iterdir()] == [f"{prefix}.src"]  # no leftovers
    text = (tmp_path / f"{prefix}.src").read_bytes()
    forged = text.replace(b"12345", b"12346")
    for garbage in (
        b"",
        b"fitstiles-source 1 2",
        forged,
        b"fitstiles-source 1 x 3 " + text.split()[-1],  # not numbers
        b"x" * 500,
        b"\xff\xfe",
        text[:-9],
    ):
        (tmp_path / f"{prefix}.src").write_bytes(garbage)
        assert read_source_stamp(tmp_path, prefix, key) is None
    # The disk budget counts the stamp as one of the image's files.
    write_source_stamp(os.fspath(pickle), stamp, key)
    pickle.write_bytes(b"")
    files = budget.scan(tmp_path)[prefix]
    assert sorted(files.names) == sorted([f"{prefix}.pkl", f"{prefix}.src"])


def test_source_stamp_writes_whole_or_not_at_all(tmp_path: Path) -> None:
    pickle = tmp_path / "missing-folder" / "image-0123456789abcdef0123.pkl"
    with pytest.raises(OSError):
        write_source_stamp(os.fspath(pickle), SourceStamp(1, 2, 3), b"k")
    assert not pickle.parent.exists()
