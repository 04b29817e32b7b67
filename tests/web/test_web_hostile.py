"""Hostile input, property-based: FIF strings and raw query strings.

- Any FIF string either resolves to a regular file inside the data folder (its
  real path, reached without leaving the folder) or is refused with
  ImageNotFoundError / BadParameterError; never another exception, never a
  path outside the folder, never a server path in the message.
- Any query string on ``/iip`` (raw bytes, broken percent-escapes, repeated and
  misspelt parameters) answers 2xx or 4xx, and every 4xx is the JSON detail
  shape; never a 5xx.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_fitstiles.core.registry import ImageRegistry
from flask_fitstiles.errors import BadParameterError, ImageNotFoundError
from flask_fitstiles.iip import split_fif
from tests.web.webtools import PREFIX, Library

# Path pieces that matter, "{data}" and "{outside}" standing for those folders.
PIECES = [
    "",
    ".",
    "..",
    "...",
    "~",
    "{data}",
    "{outside}",
    "small.fits",
    "sub",
    "deep.fits",
    "Upper.FITS",
    "upper.fits",
    "mef.fits",
    "link_in.fits",
    "link_out.fits",
    "linkdir",
    "outside.fits",
    "outside",
    "folder.fits",
    ".hidden.fits",
    "notes.txt",
    "notfits.fits",
    "small.fits\0",
    "small.fits\\",
    "..\\outside",
    "%2e%2e",
    "%2F",
    "small.fits[0]",
    "mef.fits[2]",
    "[1]",
    "[",
    "]",
    " small.fits",
    "small.fits ",
    "small.fits\n",
    "ſmall.fits",
    "small.fitsﬀ",
    "ｓｍａｌｌ.fits",
    "data",
    "cache",
]

HOSTILE_FIF = st.one_of(
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=1, max_size=6
    ).map("/".join),
    st.builds(
        lambda head, rest: head + rest,
        st.sampled_from(["/", "//", "{data}/", "{outside}/", "../", "./", "sub/../"]),
        st.sampled_from(PIECES),
    ),
    st.text(max_size=40),
)


def _real_inside(path: Path, data: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(data))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(HOSTILE_FIF)
@example("small.fits")
@example("sub/deep.fits")
@example("link_in.fits")
@example("mef.fits[2]")
@example("../outside/outside.fits")
@example("{outside}/outside.fits")
@example("{data}/small.fits")
@example("linkdir/outside.fits")
@example("sub/../small.fits")
def test_any_fif_resolves_inside_or_is_refused(library: Library, template: str) -> None:
    registry = ImageRegistry(library.data, library.cache)
    fif = template.replace("{data}", str(library.data)).replace(
        "{outside}", str(library.outside)
    )
    try:
        name, _ = split_fif(fif)
        path = registry.resolve(name)
    except (ImageNotFoundError, BadParameterError) as error:
        if str(library.root) not in fif:  # a client's own text may be echoed
            assert str(library.root) not in error.msg
        assert error.loc == ("query", "FIF")
        return
    # Accepted: a regular FITS file inside the folder, exactly the one named.
    assert path.is_absolute() and _real_inside(path, library.data)
    assert str(path) == os.path.realpath(path) and path.is_file()
    assert str(path) == os.path.realpath(os.path.join(library.data, name))
    assert not name.startswith("/") and ".." not in name.split("/")
    assert path.name.lower().endswith((".fits", ".fit", ".fts", ".fz", ".fits.gz"))


def test_the_property_accepts_what_it_should(library: Library) -> None:
    """The property above is not vacuous: good names do resolve."""
    registry = ImageRegistry(library.data, library.cache)
    data = Path(os.path.realpath(library.data))
    assert registry.resolve("small.fits") == data / "small.fits"
    assert registry.resolve("link_in.fits") == data / "small.fits"
    assert registry.resolve("sub/deep.fits") == data / "sub" / "deep.fits"
    for name in ("link_out.fits", "linkdir/outside.fits", "upper.fits", "ſmall.fits"):
        with pytest.raises(ImageNotFoundError):
            registry.resolve(name)


# -- raw query strings -------------------------------------------------------------------

_NAMES = ["FIF", "fif", "Fif", "INFO", "obj", "OBJ", "JTL", "jtl", "CHAN", "MINMAX", "MIX"]
_NAMES += ["CMP", "INV", "BRT", "CNT", "GAM", "QLT", "RGN", "BIN", "VAL", "PFL", "_", "x"]
_TOKENS = [
    *_NAMES,
    "=",
    "&",
    ";",
    ",",
    ":",
    "%",
    "%00",
    "%zz",
    "%e2%82",
    "%ff%fe",
    "%C0%AE%C0%AE/",
    "%2e%2e%2f",
    "+",
    "-",
    ".",
    "[",
    "]",
    "0",
    "1",
    "3",
    "99999999999999999999",
    "1e308",
    "nan",
    "-inf",
    "small.fits",
    "cube.fits",
    "mosaic.fits",
    "mef.fits[2]",
    "notfits.fits",
    "../outside/outside.fits",
    "0,0",
    "3,47",
    "1,1:50,50",
    "1:0,1",
    "2:1,0,0",
    "hot",
    "\x00",
    "٣",
    " ",
]
RAW_QUERY = st.lists(
    st.one_of(st.sampled_from(_TOKENS), st.text(max_size=4)), max_size=14
).map(lambda tokens: quote("".join(tokens), safe="&=;%+,:[]/.-_"))
ANSWERS = {"image/jpeg", "application/json", "text/plain", "text/html"}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(RAW_QUERY)
@example("FIF=small.fits&JTL=0,0&%zz=%ff")
@example("FIF=small.fits%00&INFO")
@example("FIF=cube.fits&JTL=3,1&CHAN=2&CHAN=9&MINMAX=2:1e308,-1e308&MIX=1:0,0,0")
@example("FIF=small.fits&RGN=1,1:99999999,99999999&BIN=1")
@example("FIF=mosaic.fits&PFL=1,1:131072,1")
def test_no_5xx_whatever_the_raw_query(
    client: FlaskClient, library: Library, query: str
) -> None:
    response = client.get(f"{PREFIX}/iip", query_string=query)
    body = response.get_data()
    assert 200 <= response.status_code < 500, body[:500]
    assert b"Traceback" not in body and str(library.root).encode() not in body
    if response.status_code < 300:
        assert response.mimetype in ANSWERS
        return
    assert response.mimetype == "application/json"
    detail = response.get_json()["detail"]
    assert isinstance(detail, list) and len(detail) == 1
    assert set(detail[0]) == {"loc", "msg", "type"}
