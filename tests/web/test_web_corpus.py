"""Odd and broken FITS files, generated here: each is served correctly or refused with 422.

"Served correctly" means INFO answers 200 with the right size and channel count,
tiles and regions decode as JPEGs of the right size, and VAL gives astropy's
value of the pixel (as float32; blank and non-finite pixels are null). Refused
files answer 422 to every command, with no server path in the message. After
every file the server still serves a control image.

The files that must be served are read with warnings turned into errors (they
must read cleanly); the broken ones with astropy's warnings left as warnings, as
in production, where they must be refused all the same.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from astropy.io import fits
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage

from flask_fitstiles import FitsTiles
from tests.web.webtools import small_image

PREFIX = "/fits"
SHAPE = (60, 80)  # ny, nx
ASTROPY_WARNINGS = [
    "ignore::astropy.utils.exceptions.AstropyWarning",
    "ignore::astropy.io.fits.verify.VerifyWarning",
]


def _image(dtype: type = np.float32) -> np.ndarray:
    return small_image(SHAPE, seed=3).astype(dtype)


def _bytes(hdul: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    return buffer.getvalue()


def _good() -> bytes:
    return _bytes(fits.HDUList([fits.PrimaryHDU(_image())]))


def _with_card(blob: bytes, keyword: str, card: str) -> bytes:
    """Replace the header card of ``keyword`` in the first header."""
    data = bytearray(blob)
    start = next(
        i for i in range(0, 2880, 80) if data[i : i + 8].rstrip() == keyword.encode()
    )
    data[start : start + 80] = card.ljust(80).encode()
    return bytes(data)


def _blank_int16() -> bytes:
    raw = (np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE) % 2000 - 1000).astype(np.int16)
    raw[5, 7] = -32768
    hdu = fits.PrimaryHDU(raw)
    hdu.header.update(BSCALE=0.5, BZERO=100.0, BLANK=-32768)
    return _bytes(fits.HDUList([hdu]))


def _with_infinities() -> bytes:
    data = _image()
    data[1, 2], data[3, 4] = np.inf, -np.inf
    return _bytes(fits.HDUList([fits.PrimaryHDU(data)]))


def _huge_header() -> bytes:
    cards = [fits.Card(f"K{i:07d}", i * 0.5, "a card among many") for i in range(10_000)]
    return _bytes(fits.HDUList([fits.PrimaryHDU(_image(), header=fits.Header(cards))]))


def _rice() -> bytes:
    return _bytes(fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_image())]))


def _zero_length_axis() -> bytes:
    header = fits.Header()
    header.update(SIMPLE=True, BITPIX=-32, NAXIS=2, NAXIS1=0, NAXIS2=10)
    return header.tostring().encode()


def _tables_only() -> bytes:
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=[1.0, 2.0])])
    return _bytes(fits.HDUList([fits.PrimaryHDU(), table]))


def _header_without_end() -> bytes:
    return _good()[:2880].replace(b"END" + b" " * 77, b" " * 80)


Maker = Callable[[], bytes]

SERVED: dict[str, Maker] = {
    "uint8.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU((_image(np.int64) % 256).astype(np.uint8))])
    ),
    "int16_blank.fits": _blank_int16,
    "uint16.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU((_image(np.int64) * 13 % 65536).astype(np.uint16))])
    ),
    "int32.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU((_image(np.int64) * -1001).astype(np.int32))])
    ),
    "int64.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(_image(np.int64) * 10**12 + 7)])
    ),
    "float64.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(_image(np.float64) * (1 + 1e-9) + 1e-7)])
    ),
    "all_nan.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(np.full(SHAPE, np.nan, np.float32))])
    ),
    "constant.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(np.full(SHAPE, 7.25, np.float32))])
    ),
    "zeros.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(np.zeros(SHAPE, np.int16))])
    ),
    "infinities.fits": _with_infinities,
    "gzipped.fits.gz": lambda: gzip.compress(_good()),
    "rice.fits.fz": _rice,
    "huge_header.fits": _huge_header,
    "cube_4d.fits": lambda: _bytes(
        fits.HDUList(
            [
                fits.PrimaryHDU(
                    np.arange(2 * 3 * 60 * 80, dtype=np.float32).reshape(2, 3, 60, 80)
                )
            ]
        )
    ),
    "single_plane_cube.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(_image()[None])])
    ),
    "one_row.fits": lambda: _bytes(fits.HDUList([fits.PrimaryHDU(_image()[:1])])),
    "one_pixel.fits": lambda: _bytes(fits.HDUList([fits.PrimaryHDU(_image()[:1, :1])])),
    "tall.fits": lambda: _bytes(
        fits.HDUList([fits.PrimaryHDU(np.arange(3000, dtype=np.float32).reshape(1000, 3))])
    ),
}

REFUSED: dict[str, Maker] = {
    "truncated_header.fits": lambda: _good()[:1000],
    "truncated_data.fits": lambda: _good()[: 2880 + 5000],
    "bad_bitpix.fits": lambda: _with_card(
        _good(), "BITPIX", "BITPIX  =                   17"
    ),
    "naxis_0.fits": lambda: _bytes(fits.HDUList([fits.PrimaryHDU()])),
    "one_d.fits": lambda: _bytes(fits.HDUList([fits.PrimaryHDU(np.arange(500.0))])),
    "tables_only.fits": _tables_only,
    "zero_length_axis.fits": _zero_length_axis,
    "random_bytes.fits": lambda: np.random.default_rng(0).bytes(20_000),
    "empty.fits": lambda: b"",
    "text.fits": lambda: b"SIMPLE = maybe\n" * 400,
    "header_without_end.fits": _header_without_end,
    "gzipped_garbage.fits.gz": lambda: gzip.compress(np.random.default_rng(1).bytes(9000)),
    "truncated_gzip.fits.gz": lambda: gzip.compress(_good())[:3000],
}


def expected_channels(path: Path) -> np.ndarray:
    """Astropy's pixels of the served HDU, as (channels, y, x) float32."""
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None and h.data.ndim >= 2)
        data = np.asarray(hdu.data)
        return data.reshape(-1, *data.shape[-2:]).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus")
    data, cache = root / "data", root / "cache"
    data.mkdir()
    for name, make in {**SERVED, **REFUSED}.items():
        (data / name).write_bytes(make())
    fits.PrimaryHDU(_image()).writeto(data / "control.fits")
    return data, cache


@pytest.fixture(scope="module")
def client(corpus: tuple[Path, Path]) -> Iterator[FlaskClient]:
    data, cache = corpus
    app = Flask("corpus")
    FitsTiles(app, url_prefix=PREFIX, data_dir=data, cache_dir=cache)
    with app.test_client() as client:
        yield client


def get(client: FlaskClient, name: str, command: str) -> tuple[int, bytes, str]:
    response = client.get(f"{PREFIX}/iip?FIF={quote(name)}&{command}")
    return response.status_code, response.get_data(), response.mimetype


def decode(jpeg: bytes) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(jpeg))
    image.load()
    assert image.format == "JPEG"
    return image


def check_control(client: FlaskClient) -> None:
    status, body, _ = get(client, "control.fits", "VAL=3,4")
    assert status == 200
    assert json.loads(body) == {"values": [float(_image()[3, 2])]}
    assert get(client, "control.fits", "JTL=0,0")[0] == 200


@pytest.mark.parametrize("name", list(SERVED))
def test_odd_file_is_served(
    client: FlaskClient, corpus: tuple[Path, Path], name: str
) -> None:
    pixels = expected_channels(corpus[0] / name)
    nchan, ny, nx = pixels.shape
    status, body, mimetype = get(client, name, "INFO")
    assert status == 200, body
    info = json.loads(body)
    assert info["full_size"] == [nx, ny] and info["channels"] == nchan
    assert all(
        np.isfinite(v) for image in info["images"] for v in sum(image["min_max"], [])
    )
    levels = info["tile_levels"]
    for command, size in (
        ("JTL=0,0", (-(-nx // 2 ** (levels - 1)), -(-ny // 2 ** (levels - 1)))),
        (f"JTL={levels - 1},0&CHAN={nchan}&CMP=jet", (min(nx, 256), min(ny, 256))),
        (f"RGN=1,1:{nx},{ny}&BIN=2", (-(-nx // 2), -(-ny // 2))),
    ):
        status, body, mimetype = get(client, name, command)
        assert (status, mimetype) == (200, "image/jpeg"), body
        assert decode(body).size == size
    rng = np.random.default_rng(len(name))
    points = {(1, 1), (nx, ny), (nx, 1)}
    points |= {
        (int(x), int(y))
        for x, y in zip(rng.integers(1, nx + 1, 8), rng.integers(1, ny + 1, 8), strict=True)
    }
    channels = "&".join(f"CHAN={c}" for c in range(1, nchan + 1))
    for x, y in sorted(points):
        status, body, _ = get(client, name, f"VAL={x},{y}&{channels}")
        assert status == 200
        expected = [float(v) if np.isfinite(v) else None for v in pixels[:, y - 1, x - 1]]
        assert json.loads(body) == {"values": expected}, (x, y)
    status, body, _ = get(client, name, f"PFL=1,1:{nx},{ny}")
    assert status == 200 and len(json.loads(body)["profile"]) == max(nx, ny)
    check_control(client)


@pytest.mark.filterwarnings(*ASTROPY_WARNINGS)
@pytest.mark.parametrize("name", list(REFUSED))
def test_broken_file_is_refused(
    client: FlaskClient, corpus: tuple[Path, Path], name: str
) -> None:
    for command in ("INFO", "JTL=0,0", "VAL=1,1", "obj", "RGN=1,1:10,10"):
        status, body, mimetype = get(client, name, command)
        assert (status, mimetype) == (422, "application/json"), body
        detail = json.loads(body)["detail"]
        assert detail[0]["type"] == "unprocessable_entity"
        assert detail[0]["loc"] == ["query", "FIF"]
        assert str(corpus[0]) not in body.decode() and "Traceback" not in body.decode()
    check_control(client)


def test_listing_shows_every_file(client: FlaskClient) -> None:
    listing = client.get(f"{PREFIX}/images").get_json()
    assert {entry["name"] for entry in listing} == {*SERVED, *REFUSED, "control.fits"}
