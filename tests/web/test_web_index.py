"""The index page and /images by folders and pages.

Browsing, paging, confinement, thumbnails, and no preparation while listing.

The paging tests use a purpose-made tree of small files with FITS names (listings
never open images); the others use the test library of FITS files.
"""

from __future__ import annotations

import html
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from astropy.io import fits
from flask import Flask
from flask.testing import FlaskClient

from flask_fitstiles import FitsTiles
from flask_fitstiles import tiled as tiled_module
from flask_fitstiles.browse import encode_cursor
from flask_fitstiles.core import listing as listing_module
from flask_fitstiles.core import registry as registry_module
from flask_fitstiles.viewer import CONTENT_SECURITY_POLICY
from tests.web.webtools import PREFIX, Library, make_app, small_image

TREE_FOLDERS = ["Gamma", "a b&c#d", "alpha", "beta"]


def make_tree(root: Path, files: int = 57) -> tuple[Path, Path]:
    """Write a data folder of small files with FITS names, and return it and a cache."""
    data, cache = root / "data", root / "cache"
    data.mkdir(parents=True)
    for i in range(files):
        (data / f"img{i:03d}.fits").write_bytes(b"x" * (i + 1))
    for name in TREE_FOLDERS:
        (data / name).mkdir()
    for i in range(5):
        (data / "alpha" / f"a{i}.fit").write_bytes(b"a")
    (data / "alpha" / "inner").mkdir()
    (data / "a b&c#d" / "x y&z.fits").write_bytes(b"odd")
    (data / ".hidden").mkdir()
    (data / ".hidden.fits").write_bytes(b"h")
    (data / "notes.txt").write_text("not listed")
    return data, cache


def tree_app(data: Path, cache: Path, **options: Any) -> Flask:
    app = Flask("fitstiles_index_test")
    app.config["TESTING"] = True
    FitsTiles(app, url_prefix=PREFIX, data_dir=data, cache_dir=cache, **options)
    return app


def expected_listing(folder: Path) -> tuple[list[str], list[str]]:
    """Sub-folders and image names of a folder, sorted, computed independently."""
    names = [n for n in os.listdir(folder) if not n.startswith(".")]
    folders = sorted(n for n in names if (folder / n).is_dir())
    suffixes = (".fits", ".fit", ".fts", ".fz", ".fits.gz")
    images = sorted(
        n for n in names if not (folder / n).is_dir() and n.lower().endswith(suffixes)
    )
    return folders, images


def page(client: FlaskClient, query: str) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/images?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return dict(response.get_json())


def all_pages(client: FlaskClient, folder: str, limit: int) -> list[dict[str, Any]]:
    pages = [page(client, f"dir={folder}&limit={limit}")]
    while pages[-1]["next_cursor"] is not None:
        cursor = pages[-1]["next_cursor"]
        pages.append(page(client, f"dir={folder}&limit={limit}&cursor={cursor}"))
        assert len(pages) < 500
    return pages


def error_detail(response: Any, status: int, *forbidden: Path) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_data(as_text=True)
    for path in forbidden:
        assert str(path) not in body
    detail = response.get_json()["detail"]
    assert len(detail) == 1 and detail[0]["msg"]
    return dict(detail[0])


# -- browsing folder by folder -----------------------------------------------------------


def test_folders_and_their_images(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    client = tree_app(data, cache).test_client()
    root = page(client, "dir=")
    assert root["dir"] == "" and root["parent"] is None
    assert [f["name"] for f in root["folders"]] == TREE_FOLDERS
    assert root["images"][0] == {"name": "img000.fits", "size": 1, "prepared": False}
    alpha = page(client, "dir=alpha")
    assert alpha["dir"] == "alpha" and alpha["parent"] == ""
    assert [f["name"] for f in alpha["folders"]] == ["alpha/inner"]
    assert [i["name"] for i in alpha["images"]] == [f"alpha/a{i}.fit" for i in range(5)]
    assert alpha["next_cursor"] is None
    inner = page(client, "dir=alpha/inner")
    assert inner == {
        "dir": "alpha/inner",
        "parent": "alpha",
        "folders": [],
        "images": [],
        "next_cursor": None,
    }
    odd = page(client, "dir=a+b%26c%23d")
    assert [i["name"] for i in odd["images"]] == ["a b&c#d/x y&z.fits"]


@pytest.mark.parametrize("settled", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 7, 30, 61, 62, 100, 1000])
def test_pages_concatenate_to_the_sorted_listing(
    tmp_path: Path, limit: int, settled: bool
) -> None:
    data, cache = make_tree(tmp_path)
    if settled:  # the folder's names are kept (and sorted) after the first page
        past = time.time_ns() - 10 * 10**9
        os.utime(data, ns=(past, past))
    client = tree_app(data, cache).test_client()
    pages = all_pages(client, "", limit)
    folders = [f["name"] for p in pages for f in p["folders"]]
    images = [i["name"] for p in pages for i in p["images"]]
    want_folders, want_images = expected_listing(data)
    assert folders == want_folders and images == want_images  # no gap, no repeat
    assert all(len(p["folders"]) + len(p["images"]) == limit for p in pages[:-1])
    assert 1 <= len(pages[-1]["folders"]) + len(pages[-1]["images"]) <= limit
    assert len(pages) == -(-(len(want_folders) + len(want_images)) // limit)
    sizes = {i["name"]: i["size"] for p in pages for i in p["images"]}
    assert sizes == {n: os.path.getsize(data / n) for n in want_images}


def test_pages_stay_consistent_while_the_folder_changes(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    client = tree_app(data, cache).test_client()
    first = page(client, "dir=&limit=20")
    listed = [i["name"] for i in first["images"]]
    # Entries appear before and after the cursor, and one listed entry goes.
    (data / "img000a.fits").write_bytes(b"new, before")
    (data / "img999.fits").write_bytes(b"new, after")
    os.unlink(data / listed[0])
    rest = all_pages(client, "", 20)  # a fresh walk sees the change at once...
    assert "img999.fits" in [i["name"] for p in rest for i in p["images"]]
    query = f"dir=&limit=20&cursor={first['next_cursor']}"
    second = page(client, query)  # ...and the old cursor goes on where it was
    names = [i["name"] for i in second["images"]]
    assert names[0] == f"img{int(listed[-1][3:6]) + 1:03d}.fits"
    assert not set(names) & set(listed)


def test_limit_bounds(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path, files=1200)
    client = tree_app(data, cache).test_client()
    assert len(page(client, "limit=1")["folders"]) == 1
    assert len(page(client, "limit=1000")["images"]) == 1000 - len(TREE_FOLDERS)
    assert len(page(client, "dir=")["images"]) == 100 - len(TREE_FOLDERS)  # default
    for value in ("0", "1001", "-1", "+5", "1.5", "1e2", "", "abc", " 5", "١٢", "9" * 30):
        response = client.get(f"{PREFIX}/images", query_string={"limit": value})
        detail = error_detail(response, 400)
        assert detail["loc"] == ["query", "limit"] and "between 1 and 1000" in detail["msg"]


def test_bad_cursors_are_400(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    client = tree_app(data, cache).test_client()
    good = page(client, "limit=3")["next_cursor"]
    assert good is not None
    bad = [
        "abc",
        "!!!!",
        good + "x",
        good[:-3],
        "W10",  # valid base64 of an empty JSON array
        encode_cursor("", (7, "img001.fits")),  # no such kind
        encode_cursor("", (1, "")),
        encode_cursor("", (1, "sub/img001.fits")),
        "A" * 5000,
    ]
    for cursor in bad:
        response = client.get(f"{PREFIX}/images", query_string={"cursor": cursor})
        assert error_detail(response, 400)["loc"] == ["query", "cursor"], cursor
    # A cursor is for the folder it was made for.
    response = client.get(f"{PREFIX}/images?dir=alpha&cursor={good}")
    assert "another folder" in error_detail(response, 400)["msg"]
    # The index page refuses them the same way.
    response = client.get(f"{PREFIX}/?cursor=abc")
    assert error_detail(response, 400)["loc"] == ["query", "cursor"]


# -- confinement -------------------------------------------------------------------------


def test_dir_is_confined_to_the_data_folder(fresh_library: Library) -> None:
    data = fresh_library.data
    private = data.parent / (data.name + "-private")  # <data>-private, next to it
    private.mkdir()
    fits.PrimaryHDU(small_image((16, 16))).writeto(private / "secret.fits")
    (private / "inner").mkdir()
    (data / "priv").symlink_to(f"../{private.name}", target_is_directory=True)
    (data / "privabs").symlink_to(private, target_is_directory=True)
    (data / "sub" / "up").symlink_to("..", target_is_directory=True)  # inside: allowed
    client = make_app(fresh_library).test_client()
    malformed = [
        "..",
        "../",
        f"../{private.name}",
        f"sub/../../{private.name}",
        "sub/..",
        "./sub",
        "sub/",
        "sub//up",
        "/etc",
        "/",
        str(data),
        str(private),
        "sub\\up",
        "sub\0",
        ".hidden",
    ]
    missing = ["priv", "privabs", "priv/inner", "linkdir", "nope", "small.fits", "~"]
    for path in ("/images", "/"):
        for value in malformed + missing:
            response = client.get(f"{PREFIX}{path}", query_string={"dir": value})
            status = 400 if value in malformed else 404
            detail = error_detail(response, status, data, private, fresh_library.root)
            assert detail["loc"] == ["query", "dir"], value
            assert "secret" not in response.get_data(as_text=True)
    root = page(client, "dir=")
    names = [f["name"] for f in root["folders"]]
    assert "priv" not in names and "privabs" not in names and "linkdir" not in names
    # A symlink that stays inside the data folder is a folder like another.
    assert "sub/up" in [f["name"] for f in page(client, "dir=sub")["folders"]]
    again = page(client, "dir=sub/up")["folders"]
    assert [f["name"] for f in again] == [f"sub/up/{name}" for name in names]


def test_symlinked_files_are_listed_only_inside(fresh_library: Library) -> None:
    client = make_app(fresh_library).test_client()
    images = [i["name"] for p in all_pages(client, "", 5) for i in p["images"]]
    assert "link_in.fits" in images and "link_out.fits" not in images
    assert ".hidden.fits" not in images and "notes.txt" not in images
    assert "table.fits" in images  # listed by name; not opened to be judged


# -- prepared images, thumbnails, and no preparation ---------------------------------------


def cache_files(library: Library) -> set[str]:
    return set(os.listdir(library.cache))


def browse_everything(client: FlaskClient) -> list[str]:
    """Every JSON and HTML page of every folder; return the HTML texts."""
    texts = []
    folders = [""]
    while folders:
        folder = folders.pop()
        cursor = None
        for p in all_pages(client, folder, 3):
            folders += [f["name"] for f in p["folders"]]
            query = {"dir": folder, "limit": "3", **({"cursor": cursor} if cursor else {})}
            response = client.get(f"{PREFIX}/", query_string=query)
            assert response.status_code == 200
            texts.append(response.get_data(as_text=True))
            cursor = p["next_cursor"]
    return texts


IMG_RE = re.compile(r"<img [^>]*>")


def test_listing_never_prepares_and_thumbnails_only_prepared(
    fresh_library: Library,
) -> None:
    client = make_app(fresh_library).test_client()
    before = cache_files(fresh_library)
    texts = browse_everything(client)
    assert cache_files(fresh_library) == before  # nothing written, nothing prepared
    assert not any("<img" in text for text in texts)

    assert client.get(f"{PREFIX}/iip?FIF=small.fits&INFO").status_code == 200
    prepared = cache_files(fresh_library)
    text = client.get(f"{PREFIX}/?limit=1000").get_data(as_text=True)
    images = IMG_RE.findall(text)
    # small.fits and link_in.fits (the same file) are prepared; nothing else.
    assert len(images) == 2
    for name in ("small.fits", "link_in.fits"):
        thumb = f"{PREFIX}/iip?FIF={name}&amp;JTL=0,0"
        assert any(f'src="{thumb}"' in tag and 'loading="lazy"' in tag for tag in images)
        tile = client.get(html.unescape(thumb))
        assert tile.status_code == 200 and tile.mimetype == "image/jpeg"
    flags = {i["name"]: i["prepared"] for i in page(client, "dir=&limit=1000")["images"]}
    assert [n for n, f in flags.items() if f] == ["link_in.fits", "small.fits"]
    browse_everything(client)
    assert cache_files(fresh_library) == prepared


def test_prepared_follows_the_source_and_old_caches_heal(fresh_library: Library) -> None:
    client = make_app(fresh_library).test_client()

    def prepared() -> bool:
        images = page(client, "dir=&limit=1000")["images"]
        return next(i["prepared"] for i in images if i["name"] == "small.fits")

    assert client.get(f"{PREFIX}/iip?FIF=small.fits&INFO").status_code == 200
    assert prepared()
    # A pickle made before source stamps existed: listed as not prepared until
    # the image is next opened, which writes the stamp without preparing again.
    (stamp,) = [n for n in cache_files(fresh_library) if n.endswith(".src")]
    (pickle,) = [n for n in cache_files(fresh_library) if n.endswith(".pkl")]
    mtime = os.stat(fresh_library.cache / pickle).st_mtime_ns
    os.unlink(fresh_library.cache / stamp)
    assert not prepared()
    fresh = make_app(fresh_library).test_client()  # another process: nothing open
    assert fresh.get(f"{PREFIX}/iip?FIF=small.fits&INFO").status_code == 200
    assert os.stat(fresh_library.cache / pickle).st_mtime_ns == mtime
    assert prepared()
    # A changed source is no longer prepared.
    path = fresh_library.data / "small.fits"
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert not prepared()
    text = client.get(f"{PREFIX}/").get_data(as_text=True)
    assert "FIF=small.fits&amp;JTL" not in text and "FIF=link_in.fits&amp;JTL" not in text


def test_pickles_of_another_key_are_not_listed_as_prepared(fresh_library: Library) -> None:
    client = make_app(fresh_library).test_client()
    assert client.get(f"{PREFIX}/iip?FIF=small.fits&INFO").status_code == 200
    assert "JTL=0,0" in client.get(f"{PREFIX}/").get_data(as_text=True)
    # With another key the pickle would not verify: a thumbnail would prepare it.
    other = make_app(fresh_library, secret_key="another key").test_client()
    before = cache_files(fresh_library)
    assert "JTL=0,0" not in other.get(f"{PREFIX}/").get_data(as_text=True)
    assert not any(i["prepared"] for i in page(other, "limit=1000")["images"])
    assert cache_files(fresh_library) == before


def test_stamps_are_only_a_hint(
    fresh_library: Library,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stamp that cannot be written costs the listing its hint, nothing else."""

    def refuse(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tiled_module, "write_source_stamp", refuse)
    monkeypatch.setattr(registry_module, "write_source_stamp", refuse)
    client = make_app(fresh_library).test_client()
    with caplog.at_level(logging.WARNING):
        assert client.get(f"{PREFIX}/iip?FIF=small.fits&INFO").status_code == 200
    assert [r.getMessage() for r in caplog.records] == [
        "no source stamp for small.fits: disk full",
        "no source stamp for small.fits: disk full",
    ]
    assert not any(i["prepared"] for i in page(client, "limit=1000")["images"])
    assert client.get(f"{PREFIX}/iip?FIF=small.fits&JTL=0,0").status_code == 200


def test_a_folder_gone_while_listed_is_404(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(self: Any, path: str) -> Any:
        raise FileNotFoundError(path)

    monkeypatch.setattr(listing_module.FolderScans, "get", gone)
    response = make_app(fresh_library).test_client().get(f"{PREFIX}/images?dir=sub")
    assert error_detail(response, 404, fresh_library.root)["loc"] == ["query", "dir"]


# -- the old call ------------------------------------------------------------------------


def test_old_images_call_keeps_its_shape(fresh_library: Library) -> None:
    client = make_app(fresh_library).test_client()
    client.get(f"{PREFIX}/iip?FIF=small.fits&INFO")
    old = client.get(f"{PREFIX}/images").get_json()
    assert isinstance(old, list)
    assert all(set(entry) == {"name", "size", "prepared"} for entry in old)
    assert [entry["name"] for entry in old] == sorted(entry["name"] for entry in old)
    # The paged walk of every folder finds the same images, sizes and states.
    walked = []
    folders = [""]
    while folders:
        for p in all_pages(client, folders.pop(), 4):
            folders += [f["name"] for f in p["folders"]]
            walked += p["images"]
    assert sorted(walked, key=lambda entry: entry["name"]) == old
    assert any(entry["prepared"] for entry in old)


def test_paged_answer_matches_the_document(client: FlaskClient) -> None:
    document = client.get(f"{PREFIX}/openapi.json").get_json()
    images = document["paths"]["/images"]["get"]
    assert {p["name"] for p in images["parameters"]} == {"dir", "limit", "cursor"}
    assert {"400", "404"} <= set(images["responses"])
    schema = {
        "$ref": "#/components/schemas/FolderPageModel",
        "components": document["components"],
    }
    validator = jsonschema_rs.validator_for(schema)
    for query in (
        "dir=",
        "dir=sub",
        "limit=2",
        f"limit=2&cursor={encode_cursor('', (1, 'a'))}",
    ):
        validator.validate(page(client, query))
    assert not validator.is_valid(client.get(f"{PREFIX}/images").get_json())


# -- the page itself -----------------------------------------------------------------------


HREF_RE = re.compile(r'href="([^"]*)"')


def test_index_page_links_and_pages(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    client = tree_app(data, cache).test_client()
    response = client.get(f"{PREFIX}/?limit=25")
    assert response.status_code == 200 and response.mimetype == "text/html"
    # The viewer's policy: nothing but the mount's own origin.
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'self'")
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    text = response.get_data(as_text=True)
    # No inline script or style: the page works under its own policy.
    assert "<script" not in text and "<style" not in text and "style=" not in text
    links = [html.unescape(h) for h in HREF_RE.findall(text)]
    css = next(link for link in links if link.endswith(".css"))
    assert static_status(client, css) == 200
    icon = next(link for link in links if link.endswith(".svg"))
    assert static_status(client, icon, "image/svg+xml") == 200
    assert f"{PREFIX}/?dir=a+b%26c%23d&limit=25" in links
    assert f"{PREFIX}/viewer?FIF=img000.fits" in links
    # Follow the "next page" links: together the pages show every image once.
    seen: list[str] = []
    url: str | None = f"{PREFIX}/?limit=25"
    while url is not None:
        text = client.get(url).get_data(as_text=True)
        seen += re.findall(r'href="[^"]*/viewer\?FIF=([^"]*)">', text)
        nexts = re.findall(r'href="([^"]*)" rel="next"', text)
        url = html.unescape(nexts[0]) if nexts else None
    assert seen == expected_listing(data)[1]
    # A sub-folder's page links to its parent and to its images by their full names.
    sub = client.get(f"{PREFIX}/?dir=a+b%26c%23d").get_data(as_text=True)
    sub_links = [html.unescape(h) for h in HREF_RE.findall(sub)]
    assert f"{PREFIX}/" in sub_links  # the parent: the data folder
    assert f"{PREFIX}/viewer?FIF=a%20b%26c%23d/x%20y%26z.fits" in sub_links
    assert "x y&amp;z.fits" in sub
    deeper = client.get(f"{PREFIX}/?dir=alpha/inner").get_data(as_text=True)
    assert f'href="{PREFIX}/?dir=alpha" rel="up"' in deeper


def test_index_links_to_information_when_the_viewer_is_off(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    client = tree_app(data, cache, viewer=False).test_client()
    text = client.get(f"{PREFIX}/").get_data(as_text=True)
    links = [html.unescape(h) for h in HREF_RE.findall(text)]
    assert "/viewer" not in text
    assert f"{PREFIX}/iip?FIF=img000.fits&INFO" in links


def test_index_under_two_mounts(tmp_path: Path, library: Library) -> None:
    data, cache = make_tree(tmp_path)
    app = Flask("two_mounts")
    FitsTiles(app, name="one", url_prefix="/one", data_dir=data, cache_dir=cache)
    FitsTiles(
        app, name="two", url_prefix="/two/deep", data_dir=library.data, cache_dir=cache
    )
    # Mounted at the site root too, next to the app's own /static route.
    FitsTiles(app, name="root", url_prefix="", data_dir=data, cache_dir=cache)
    assert app.has_static_folder
    client = app.test_client()
    one = client.get("/one/").get_data(as_text=True)
    two = client.get("/two/deep/").get_data(as_text=True)
    assert 'href="/one/viewer?FIF=img000.fits"' in one and "small.fits" not in one
    assert 'href="/two/deep/viewer?FIF=small.fits"' in two and "img000" not in two
    assert 'href="/one/?dir=alpha"' in one and 'href="/two/deep/?dir=sub"' in two
    root = client.get("/").get_data(as_text=True)
    for prefix, text in (("/one", one), ("/two/deep", two), ("", root)):
        css = f"{prefix}/fitstiles-static/index.css"
        assert f'href="{css}"' in text
        assert static_status(client, css) == 200
        assert client.get(f"{prefix}/").headers["Content-Security-Policy"]
    assert page_of(client, "/one/images?dir=alpha")["folders"] == [{"name": "alpha/inner"}]


def static_status(client: FlaskClient, url: str, mimetype: str = "text/css") -> int:
    """GET a static file and close its answer (it is a file being streamed)."""
    with client.get(url) as response:
        assert response.mimetype == mimetype
        return response.status_code


def page_of(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200
    return dict(response.get_json())


def test_index_setting(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    off = make_app(library, index=False).test_client()
    error_detail(off.get(f"{PREFIX}/"), 404)
    error_detail(off.get(f"{PREFIX}/?dir=sub"), 404)
    assert off.get(f"{PREFIX}/images?dir=sub").status_code == 200  # the JSON stays
    assert "/" not in off.get(f"{PREFIX}/openapi.json").get_json()["paths"]
    assert ">list</a>" not in off.get(f"{PREFIX}/iip").get_data(as_text=True)
    monkeypatch.setenv("FITSTILES_INDEX", "off")
    assert make_app(library).test_client().get(f"{PREFIX}/").status_code == 404
    monkeypatch.setenv("FITSTILES_INDEX", "yes")
    assert make_app(library).test_client().get(f"{PREFIX}/").status_code == 200
    for value in ("maybe", 2, None):
        with pytest.raises(ValueError, match="FITSTILES_INDEX must be true or false"):
            make_app(library, index=value)


def test_folder_listings_are_kept_until_the_folder_changes(tmp_path: Path) -> None:
    data, cache = make_tree(tmp_path)
    app = tree_app(data, cache)
    client = app.test_client()
    # Settled folders (changed more than a second ago) are scanned once.
    past = time.time_ns() - 10 * 10**9
    os.utime(data, ns=(past, past))
    registry = app.extensions["fitstiles"]["fitstiles"].registry
    scans = registry._process_state().folders
    assert page(client, "limit=1")["folders"] == [{"name": "Gamma"}]
    kept = scans.get(os.fspath(registry.data_dir))
    assert scans.get(os.fspath(registry.data_dir)) is kept
    (data / "Aardvark").mkdir()
    assert page(client, "limit=1")["folders"] == [{"name": "Aardvark"}]
    assert scans.get(os.fspath(registry.data_dir)) is not kept
