"""Bad requests: statuses, the JSON detail shape, path safety, and never a 500."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from filelock import FileLock
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from flask_fitstiles import tiled as tiled_module
from flask_fitstiles.core.registry import ImageRegistry
from flask_fitstiles.tiled import get_object_filename
from tests.web.webtools import PREFIX, Library, make_app


def iip(client: FlaskClient, query: str) -> TestResponse:
    return client.get(f"{PREFIX}/iip?{query}")


def assert_error(
    response: TestResponse, status: int, loc: list[str] | None, library: Library
) -> dict[str, Any]:
    """Check the status and the JSON detail shape; return the single detail."""
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    assert response.mimetype == "application/json"
    assert str(library.root) not in body and str(library.data) not in body
    assert "Traceback" not in body
    detail = response.get_json()["detail"]
    assert isinstance(detail, list) and len(detail) == 1
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert detail[0]["msg"]
    if loc is not None:
        assert detail[0]["loc"] == loc
    return dict(detail[0])


BAD_PARAMETERS = [
    ("JTL=abc", "JTL"),
    ("JTL=1", "JTL"),
    ("JTL=1,2,3", "JTL"),
    ("JTL=-1,0", "JTL"),
    ("JTL=0,-1", "JTL"),
    ("JTL=0,1", "JTL"),  # the coarsest level has one tile
    ("JTL=3,48", "JTL"),
    ("JTL=3,99999999999", "JTL"),
    ("RGN=1,1:10,10&BIN=0", "BIN"),
    ("RGN=1,1:10,10&BIN=-2", "BIN"),
    ("RGN=1,1:10,10&BIN=x", "BIN"),
    ("RGN=1,1:10,10&BIN=65537", "BIN"),
    ("RGN=1,1", "RGN"),
    ("RGN=a,b:c,d", "RGN"),
    ("RGN=5000,5000:6000,6000", "RGN"),  # nothing of the image
    ("JTL=0,0&MINMAX=garbage", "MINMAX"),
    ("JTL=0,0&MINMAX=1:a,b", "MINMAX"),
    ("JTL=0,0&MINMAX=1:nan,5", "MINMAX"),
    ("JTL=0,0&MINMAX=0:1,2", "MINMAX"),
    ("JTL=0,0&MIX=1:1,2", "MIX"),
    ("JTL=0,0&MIX=x", "MIX"),
    ("JTL=0,0&MIX=1:1,2,inf", "MIX"),
    ("JTL=0,0&CMP=rainbow", "CMP"),
    ("JTL=0,0&QLT=101", "QLT"),
    ("JTL=0,0&QLT=-1", "QLT"),
    ("JTL=0,0&QLT=high", "QLT"),
    ("JTL=0,0&GAM=0", "GAM"),
    ("JTL=0,0&GAM=10", "GAM"),
    ("JTL=0,0&BRT=1000", "BRT"),
    ("JTL=0,0&CNT=-1", "CNT"),
    ("JTL=0,0&CHAN=0", "CHAN"),
    ("JTL=0,0&CHAN=one", "CHAN"),
    ("VAL=1", "VAL"),
    ("VAL=a,b", "VAL"),
    ("VAL=1,2,3", "VAL"),
    ("VAL=1.5,2", "VAL"),
    ("PFL=1,2", "PFL"),
    ("PFL=1,2:3", "PFL"),
    ("PFL=1,1:x,2", "PFL"),
    ("PFL=1,1:300000,1", "PFL"),  # longer than any real frame
]


@pytest.mark.parametrize(("query", "name"), BAD_PARAMETERS)
def test_bad_parameters(
    client: FlaskClient, library: Library, query: str, name: str
) -> None:
    detail = assert_error(
        iip(client, f"FIF=starfield.fits&{query}"), 400, ["query", name], library
    )
    assert detail["type"] == "value_error"


def test_bad_fif_suffix(client: FlaskClient, library: Library) -> None:
    for fif in ("small.fits[x]", "small.fits[-1]", "[2]"):
        response = iip(client, f"FIF={quote(fif)}&INFO")
        assert_error(response, 400, ["query", "FIF"], library)


# -- unknown images and path safety -----------------------------------------------------


def _traversals(library: Library) -> list[str]:
    """Raw (already URL-encoded) FIF values that must all answer 404."""
    outside = library.outside / "outside.fits"
    return [
        "nope.fits",
        "sub/nope.fits",
        "notes.txt",
        "folder.fits",  # a folder
        "sub",
        ".hidden.fits",
        "../outside/outside.fits",
        "..%2Foutside%2Foutside.fits",
        "%2e%2e/outside/outside.fits",
        "%2E%2E%2Foutside%2Foutside.fits",
        "sub/../../outside/outside.fits",
        "sub/../small.fits",
        "./small.fits",
        "sub//deep.fits",
        "sub/deep.fits/",
        "sub%5Cdeep.fits",  # backslash
        "..%5Coutside%5Coutside.fits",
        quote(str(outside)),
        str(outside),
        "/etc/passwd",
        "%2Fetc%2Fhosts.fits",
        "link_out.fits",
        "linkdir/outside.fits",
        "small.fits%00",
        "small.fits%00.txt",
        "%00",
        quote(str(library.data / "small.fits")),  # absolute, even inside the folder
        "~/small.fits",
    ]


def test_unknown_images_and_traversals_are_404(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = tiled_module.fits.open

    def spy_open(name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(tiled_module.fits, "open", spy_open)
    client = make_app(fresh_library).test_client()
    for fif in _traversals(fresh_library):
        for command in ("INFO", "JTL=0,0", "VAL=1,1", "obj"):
            response = iip(client, f"FIF={fif}&{command}")
            detail = assert_error(response, 404, ["query", "FIF"], fresh_library)
            assert detail["type"] == "not_found"
            assert str(fresh_library.outside) not in response.get_data(as_text=True)
    # Nothing was opened at all, and nothing outside the folder was prepared.
    assert opened == []
    assert not [p for p in os.listdir(fresh_library.cache) if "outside" in p]
    # The folder's own images still work.
    assert iip(client, "FIF=small.fits&INFO").status_code == 200
    assert opened and all(Path(p).is_relative_to(fresh_library.data) for p in opened)


def test_not_fits_is_422(client: FlaskClient, library: Library) -> None:
    for name in ("notfits.fits", "table.fits"):
        for command in ("INFO", "JTL=0,0", "VAL=1,1"):
            detail = assert_error(
                iip(client, f"FIF={name}&{command}"), 422, ["query", "FIF"], library
            )
            assert detail["type"] == "unprocessable_entity"


def test_broken_file_is_not_read_again(
    fresh_library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = tiled_module.Tiled.__init__

    def counting_init(self: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(os.fspath(filename))
        real(self, filename, *args, **kwargs)

    monkeypatch.setattr(tiled_module.Tiled, "__init__", counting_init)
    client = make_app(fresh_library).test_client()
    for _ in range(3):
        assert iip(client, "FIF=notfits.fits&INFO").status_code == 422
    assert len(calls) == 1
    # A new version of the file is tried again.
    path = fresh_library.data / "notfits.fits"
    path.write_text("still not FITS, but longer\n" * 20)
    assert iip(client, "FIF=notfits.fits&INFO").status_code == 422
    assert len(calls) == 2


def test_busy_image_is_503_with_retry_after(fresh_library: Library) -> None:
    app = make_app(fresh_library, prepare_wait=0.2)
    source = os.path.realpath(fresh_library.data / "small.fits")
    lock = FileLock(get_object_filename(source, fresh_library.cache) + ".lock")
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:  # another "process" preparing the image
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        response = iip(app.test_client(), "FIF=small.fits&INFO")
        detail = assert_error(response, 503, ["query", "FIF"], fresh_library)
        assert detail["type"] == "service_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        release.set()
        holder.join(10)
    assert iip(app.test_client(), "FIF=small.fits&INFO").status_code == 200


# -- routing and unexpected errors ---------------------------------------------------------


def test_other_paths_and_methods(client: FlaskClient, library: Library) -> None:
    assert_error(client.get(f"{PREFIX}/nope"), 404, ["path"], library)
    assert_error(client.get(f"{PREFIX}/iip/extra"), 404, ["path"], library)
    for method in ("post", "put", "delete", "patch"):
        for path in ("/iip", "/images", "/"):
            response = getattr(client, method)(f"{PREFIX}{path}")
            assert_error(response, 405, ["method"], library)
            assert "GET" in response.headers["Allow"]
    for path in ("/iip", "/images", "/"):
        response = client.options(f"{PREFIX}{path}")
        assert response.status_code == 200
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert_error(client.options(f"{PREFIX}/nope"), 404, ["path"], library)


UNEXPECTED = [
    ("open", "FIF=small.fits&INFO"),
    ("tile", "FIF=small.fits&JTL=1,0&CMP=hot&_=12"),
    ("images", ""),
]


@pytest.mark.parametrize(("where", "query"), UNEXPECTED)
def test_unexpected_error_is_a_bare_logged_500(
    app: Flask,
    library: Library,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    where: str,
    query: str,
) -> None:
    secret = str(library.data / "secret-detail")

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"disk trouble at {secret}")

    if where == "open":
        monkeypatch.setattr(ImageRegistry, "open", explode)
    elif where == "tile":
        monkeypatch.setattr(tiled_module.Tiled, "get_encoded_tile", explode)
    else:
        monkeypatch.setattr(ImageRegistry, "list_images", explode)
    path = f"{PREFIX}/iip" if query else f"{PREFIX}/images"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        response = app.test_client().get(f"{path}?{query}" if query else path)
    detail = assert_error(response, 500, [], library)
    body = response.get_data(as_text=True)
    assert (
        "secret" not in body and "disk trouble" not in body and "RuntimeError" not in body
    )
    assert detail["type"] == "server_error"
    # Logged once, with the request line and the status, and the traceback for
    # the administrators.
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert message.startswith(f"unexpected error answering GET {path}?{query}")
    assert "status 500" in message
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


def test_client_errors_are_not_logged_as_errors(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for query in (
            "FIF=nope.fits&INFO",
            "FIF=small.fits&JTL=x",
            "FIF=notfits.fits&INFO",
        ):
            assert 400 <= iip(client, query).status_code < 500
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- never a 500 ---------------------------------------------------------------------------

_NAMES = ["FIF", "INFO", "obj", "JTL", "CHAN", "MINMAX", "MIX", "CMP", "INV", "BRT", "CNT"]
_NAMES += ["GAM", "QLT", "RGN", "BIN", "VAL", "PFL", "fif", "jtl", "x"]
_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "0,0",
            "3,47",
            "1,1:20,20",
            "1:0,1",
            "1:1,0,0",
            "grey",
            "jet",
            "1e308",
            "nan",
            "small.fits",
            "cube.fits",
            "mef.fits[2]",
            "notfits.fits",
            "../x.fits",
            "\x00",
            "٣",
            "%",
        ]
    ),
    st.text(max_size=12),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(_NAMES), _VALUES), max_size=6))
def test_no_500_whatever_the_query(
    client: FlaskClient, library: Library, items: list[tuple[str, str]]
) -> None:
    query = "&".join(f"{quote(name)}={quote(value)}" for name, value in items)
    response = client.get(f"{PREFIX}/iip?{query}")
    assert response.status_code in (200, 400, 404, 422), response.get_data(as_text=True)
    if response.status_code != 200:
        assert_error(response, response.status_code, None, library)
