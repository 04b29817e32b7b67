"""Every IIP command through the Flask test client, checked against astropy's reading."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from tests.core.conftest import write_mosaic
from tests.web.webtools import PREFIX, Library, make_app, small_image

TILE = 256
SAMPLES = ("starfield.fits", "cube.fits", "mosaic.fits")


def iip(client: FlaskClient, query: str) -> TestResponse:
    return client.get(f"{PREFIX}/iip?{query}")


def ok_json(client: FlaskClient, query: str) -> Any:
    response = iip(client, query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def jpeg(client: FlaskClient, query: str) -> Image.Image:
    response = iip(client, query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(response.data))
    assert image.format == "JPEG"
    image.load()
    return image


def fits_data(path: os.PathLike[str] | str, ext: int = 0) -> np.ndarray:
    """Physical pixel values (BSCALE/BZERO applied) as float64, FITS row order."""
    with fits.open(path) as hdus:
        return np.asarray(hdus[ext].data, dtype=np.float64)


def frame_shape(library: Library, name: str) -> tuple[int, int]:
    """(ny, nx) of the served frame of a sample, from astropy's headers."""
    with fits.open(library.data / name) as hdus:
        if name == "mosaic.fits":
            return _mosaic_size(hdus)
        naxis1, naxis2 = hdus[0].header["NAXIS1"], hdus[0].header["NAXIS2"]
        return naxis2, naxis1


def _section(text: str) -> tuple[int, int, int, int]:
    x1, x2, y1, y2 = map(int, re.findall(r"-?\d+", text))
    return x1, x2, y1, y2


def _mosaic_size(hdus: fits.HDUList) -> tuple[int, int]:
    xs, ys = [], []
    for hdu in hdus[1:]:
        x1, x2, y1, y2 = _section(hdu.header["DETSEC"])
        xs += [x1, x2]
        ys += [y1, y2]
    return max(ys) - min(ys) + 1, max(xs) - min(xs) + 1


def expected_nlevels(ny: int, nx: int) -> int:
    """Fewest levels whose coarsest one fits in a single tile."""
    levels = 1
    while -(-nx // 2 ** (levels - 1)) > TILE or -(-ny // 2 ** (levels - 1)) > TILE:
        levels += 1
    return levels


def edge_tile_sizes(
    ny: int, nx: int, level: int
) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """Return (tile count, (w, h) of tile 0, (w, h) of the last tile) at a level.

    The grid is the client's: ``ceil(floor(n / 2**level) / 256)`` tiles per
    axis (at least one); the level itself holds ``ceil(n / 2**level)`` pixels
    (2x2 averages, the last block partial), and edge tiles are cropped to it.
    """
    sizes = []
    counts = []
    for n in (nx, ny):
        count = max(1, ((n >> level) - 1) // TILE + 1)
        pixels = -(-n // 2**level)
        first = min(TILE, pixels)
        last = min(pixels, count * TILE) - (count - 1) * TILE
        counts.append(count)
        sizes.append((first, last))
    return (
        counts[0] * counts[1],
        (sizes[0][0], sizes[1][0]),
        (sizes[0][1], sizes[1][1]),
    )


# -- INFO and obj ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_info_fields(client: FlaskClient, library: Library, name: str) -> None:
    info = ok_json(client, f"FIF={name}&INFO")
    ny, nx = frame_shape(library, name)
    with fits.open(library.data / name) as hdus:
        nchannels = hdus[0].header.get("NAXIS3", 1) if hdus[0].data is not None else 1
        image_hdus = [hdu for hdu in hdus if hdu.data is not None]
        bitpix = abs(image_hdus[0].header["BITPIX"])
        object_name = hdus[0].header.get("OBJECT", "")
    assert info["type"] == "visiomatic"
    assert info["version"] == "3.0"
    assert info["full_size"] == [nx, ny]
    assert info["tile_size"] == [TILE, TILE]
    assert info["tile_levels"] == expected_nlevels(ny, nx)
    assert info["channels"] == nchannels
    assert info["bits_per_channel"] in (bitpix, 32)  # served data are float32
    if name != "mosaic.fits":  # a mosaic's OBJECT is in its primary header
        assert info["object_name"] == object_name
    assert (info["brightness"], info["contrast"]) == (0.0, 1.0)
    assert (info["color_saturation"], info["gamma"], info["quality"]) == (1.5, 2.2, 95)
    assert len(info["images"]) == len(image_hdus)
    for image in info["images"]:
        assert len(image["min_max"]) == nchannels
        assert all(low < high for low, high in image["min_max"])
        assert len(image["background_level"]) == nchannels
        assert len(image["dataslice"]) == len(image["detslice"]) == 2
    assert "CTYPE1" in info["header"]


def test_info_mosaic_slices(client: FlaskClient, library: Library) -> None:
    info = ok_json(client, "FIF=mosaic.fits&INFO")
    with fits.open(library.data / "mosaic.fits") as hdus:
        detsecs = [_section(hdu.header["DETSEC"]) for hdu in hdus[1:]]
    for image, (x1, x2, y1, y2) in zip(info["images"], detsecs, strict=True):
        (dx1, dx2, dxs), (dy1, dy2, dys) = image["detslice"]
        assert (dx1, dx2, dy1, dy2) == (x1, x2, y1, y2)
        assert dxs == (1 if x2 >= x1 else -1)
        assert dys == 1


def test_info_keeps_mosaic_ccd_headers(fresh_library: Library) -> None:
    # Overscan before the data on the first CCD (the one the frame's WCS comes
    # from) and on another: INFO must report each CCD's header as in the file,
    # however often it is asked, and the frame header must not drift.
    spec = write_mosaic(
        fresh_library.data / "overscan.fits", overscan=10, left_overscan=(0, 3)
    )
    with fits.open(spec.path) as hdus:
        in_file = [hdus[k + 1].header for k in range(8)]
        crpix = [(h["CRPIX1"], h["CRPIX2"]) for h in in_file]
    with make_app(fresh_library).test_client() as client:
        answers = []
        for _ in range(3):
            answers.append(ok_json(client, "FIF=overscan.fits&INFO"))
            assert iip(client, "FIF=overscan.fits&JTL=0,0").status_code == 200
    for info in answers:
        assert info["header"] == answers[0]["header"]
        for k, image in enumerate(info["images"]):
            assert (image["header"]["CRPIX1"], image["header"]["CRPIX2"]) == crpix[k], k
    assert answers[0]["images"][0]["dataslice"][0] == [11, 70, 1]


def test_service_type_is_configurable(library: Library) -> None:
    app = make_app(library, service_type="my-tiles")
    info = ok_json(app.test_client(), "FIF=small.fits&INFO")
    assert info["type"] == "my-tiles"


@pytest.mark.parametrize("name", SAMPLES)
def test_obj_header(client: FlaskClient, library: Library, name: str) -> None:
    response = iip(client, f"FIF={name}&obj")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    ny, nx = frame_shape(library, name)
    lines = text.split("\n")
    assert lines[0] == "IIP:1.0"
    assert lines[1] == f"Max-size:{nx} {ny}"
    assert lines[2] == f"Tile-size:{TILE} {TILE}"
    assert lines[3] == f"Resolution-number:{expected_nlevels(ny, nx)}"
    assert lines[4].startswith("Bits-per-channel:")
    values = lines[5].removeprefix("Min-Max-sample-values:").split()
    assert len(values) % 2 == 0 and values
    match = re.match(r"subject/(\d+):", lines[6])
    assert match is not None
    subject = "\n".join(lines[6:])[match.end() :]
    assert len(subject) == int(match.group(1))
    assert len(subject) % 80 == 0
    assert f"NAXIS1  = {nx:>20}" in subject
    assert f"NAXIS2  = {ny:>20}" in subject


def test_obj_iip_style(client: FlaskClient) -> None:
    response = iip(client, "FIF=small.fits&OBJ=IIP,1.0&OBJ=Max-size")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("IIP:1.0\nMax-size:300 200\n")


# -- JTL -------------------------------------------------------------------------------


def _jtl_cases() -> list[tuple[str, int]]:
    levels = {"starfield.fits": 4, "cube.fits": 3, "mosaic.fits": 4, "odd.fits": 3}
    return [(name, z) for name, n in levels.items() for z in range(n + 2)]


@pytest.mark.parametrize(("name", "z"), _jtl_cases())
def test_tile_sizes_at_edges(
    client: FlaskClient, library: Library, name: str, z: int
) -> None:
    if name == "odd.fits":
        ny, nx = fits.getdata(library.data / name).shape
    else:
        ny, nx = frame_shape(library, name)
    nlevels = expected_nlevels(ny, nx)
    level = max(0, nlevels - 1 - z)  # z beyond the finest level means full resolution
    count, first, last = edge_tile_sizes(ny, nx, level)
    assert jpeg(client, f"FIF={name}&JTL={z},0").size == first
    assert jpeg(client, f"FIF={name}&JTL={z},{count - 1}").size == last
    response = iip(client, f"FIF={name}&JTL={z},{count}")
    assert response.status_code == 400
    assert response.get_json()["detail"][0]["loc"] == ["query", "JTL"]


def test_tile_pixels_follow_the_rendering_formula(
    client: FlaskClient, library: Library
) -> None:
    data = fits_data(library.data / "starfield.fits")
    # Tile 0 at full resolution is the top-left corner of the displayed image:
    # the last FITS rows, top row first.
    expected_region = data[::-1][:TILE, :TILE]
    low, high = np.percentile(expected_region, [1.0, 99.0])
    image = jpeg(
        client,
        f"FIF=starfield.fits&JTL=9,0&CHAN=1&MINMAX=1:{low},{high}&GAM=1&BRT=0&CNT=1&QLT=100",
    )
    assert image.mode == "L"
    got = np.asarray(image, dtype=np.float64)
    expected = np.floor(255.49 * np.clip((expected_region - low) / (high - low), 0.0, 1.0))
    assert np.abs(got - expected).mean() < 1.5


def test_tile_modes_and_colormaps(client: FlaskClient) -> None:
    assert jpeg(client, "FIF=cube.fits&JTL=0,0").mode == "RGB"  # colour mode
    assert jpeg(client, "FIF=cube.fits&JTL=0,0&CHAN=2").mode == "L"
    assert jpeg(client, "FIF=cube.fits&JTL=0,0&CHAN=2&CMP=jet").mode == "RGB"
    assert jpeg(client, "FIF=starfield.fits&JTL=0,0&CHAN=1&CMP=hot").mode == "RGB"
    mixed = jpeg(client, "FIF=cube.fits&JTL=0,0&MIX=1:0,0,1&MIX=2:0,1,0&MIX=3:1,0,0")
    assert mixed.mode == "RGB"
    plain = np.asarray(jpeg(client, "FIF=starfield.fits&JTL=0,0&CHAN=1"), dtype=float)
    inverted = np.asarray(
        jpeg(client, "FIF=starfield.fits&JTL=0,0&CHAN=1&INV"), dtype=float
    )
    assert abs(plain.mean() + inverted.mean() - 255.0) < 2.0


def test_mix_gives_each_channel_its_colour(client: FlaskClient) -> None:
    # Pure R, G and B rows: each band of the colour tile is one channel, scaled
    # by its default cuts exactly as that channel's grey tile (weights times
    # 3 / nchannels = 1). Permuted rows permute the bands.
    mono = [
        np.asarray(jpeg(client, f"FIF=cube.fits&JTL=1,0&CHAN={c}&QLT=100"), dtype=float)
        for c in (1, 2, 3)
    ]
    assert min(abs(mono[a] - mono[b]).mean() for a, b in ((0, 1), (0, 2), (1, 2))) > 5
    for order in ((0, 1, 2), (2, 0, 1)):
        rows = [[0, 0, 0] for _ in range(3)]
        for band, channel in enumerate(order):
            rows[channel][band] = 1
        mix = "".join(f"&MIX={c + 1}:{r},{g},{b}" for c, (r, g, b) in enumerate(rows))
        tile = np.asarray(jpeg(client, f"FIF=cube.fits&JTL=1,0&QLT=100{mix}"), dtype=float)
        for band, channel in enumerate(order):
            assert abs(tile[:, :, band] - mono[channel]).mean() < 1.0, (order, band)
    # A channel mixed out leaves its band black.
    tile = np.asarray(
        jpeg(client, "FIF=cube.fits&JTL=1,0&QLT=100&MIX=1:1,0,0&MIX=2:0,0,0&MIX=3:0,0,0"),
        dtype=float,
    )
    # (YCbCr rounding leaves a few levels in the other bands.)
    assert tile[:, :, 1:].mean() < 1 and tile[:, :, 1:].max() <= 8
    assert tile[:, :, 0].mean() > 20


def test_tile_rendering_parameters_change_the_tile(client: FlaskClient) -> None:
    base = "FIF=starfield.fits&JTL=1,3&CHAN=1"
    reference = iip(client, base).data
    for extra in ("&BRT=20", "&CNT=3", "&GAM=1", "&QLT=50", "&MINMAX=1:900,1500", "&INV"):
        assert iip(client, base + extra).data != reference, extra


def test_tile_headers_and_memo(client: FlaskClient, app: Any) -> None:
    query = "FIF=starfield.fits&JTL=3,5&CHAN=1&BRT=7"
    first = iip(client, query)
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    assert "ETag" not in first.headers
    cache = app.extensions["fitstiles"]["fitstiles"].registry.tile_cache
    hits = cache.hits
    second = iip(client, query)
    assert second.data == first.data
    assert cache.hits == hits + 1
    head = client.head(f"{PREFIX}/iip?{query}")
    assert head.status_code == 200 and head.data == b""


def test_parameter_names_are_case_insensitive_and_unknown_ones_ignored(
    client: FlaskClient,
) -> None:
    upper = iip(client, "FIF=small.fits&JTL=1,0&CHAN=1").data
    lower = iip(client, "fif=small.fits&jtl=1,0&chan=1&_=12345&foo=bar").data
    assert upper == lower
    assert ok_json(client, "fif=small.fits&info=whatever")["full_size"] == [300, 200]


# -- RGN -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "binning"),
    [
        ("1,1:256,256", 1),
        ("1,1:2048,1536", 8),
        ("1,1:2048,1536", 16),
        ("101,201:1124,712", 2),
        ("100,200:1000,900", 3),
        ("-50,-50:100,100", 1),
        ("2000,1500:3000,3000", 1),
        ("256,256:1,1", 4),
        ("1,1:2048,1536", 65536),
    ],
)
def test_region_size(client: FlaskClient, region: str, binning: int) -> None:
    (x1, y1), (x2, y2) = (map(int, corner.split(",")) for corner in region.split(":"))
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    width = min(x2, 2048) - max(x1, 1) + 1
    height = min(y2, 1536) - max(y1, 1) + 1
    image = jpeg(client, f"FIF=starfield.fits&RGN={region}&BIN={binning}&CHAN=1")
    assert image.size == (-(-width // binning), -(-height // binning))


def test_region_matches_the_tile(client: FlaskClient) -> None:
    # Displayed orientation: RGN 1,1:256,256 is the top-left tile.
    region = jpeg(client, "FIF=starfield.fits&RGN=1,1:256,256&CHAN=1&QLT=100")
    tile = jpeg(client, "FIF=starfield.fits&JTL=3,0&CHAN=1&QLT=100")
    assert np.array_equal(np.asarray(region), np.asarray(tile))
    colour = jpeg(client, "FIF=cube.fits&RGN=1,1:600,300&BIN=2")
    assert colour.mode == "RGB" and colour.size == (300, 150)


@pytest.mark.parametrize("binning", [2, 4, 8])
def test_region_pixels_come_from_the_level_of_the_binning(
    client: FlaskClient, binning: int
) -> None:
    # starfield.fits is 2048 x 1536: at BIN=b, the region of full-resolution
    # pixels 1..256b (displayed orientation) is tile 0 of the level log2(b).
    info = ok_json(client, "FIF=starfield.fits&INFO")
    z = info["tile_levels"] - 1 - (binning.bit_length() - 1)
    side = 256 * binning
    region = jpeg(
        client, f"FIF=starfield.fits&RGN=1,1:{side},{side}&BIN={binning}&CHAN=1&QLT=100"
    )
    tile = jpeg(client, f"FIF=starfield.fits&JTL={z},0&CHAN=1&QLT=100")
    assert region.size == tile.size
    assert np.array_equal(np.asarray(region), np.asarray(tile))
    # Any other level has other pixels (the star field is not uniform).
    other = jpeg(client, f"FIF=starfield.fits&JTL={z + 1},0&CHAN=1&QLT=100")
    assert not np.array_equal(np.asarray(other), np.asarray(region))


def test_region_too_large(library: Library) -> None:
    client = make_app(library, max_region_tiles=4).test_client()
    response = iip(client, "FIF=starfield.fits&RGN=1,1:2048,1536&BIN=1")
    assert response.status_code == 400
    detail = response.get_json()["detail"][0]
    assert detail["loc"] == ["query", "RGN"]
    assert "BIN" in detail["msg"]
    assert iip(client, "FIF=starfield.fits&RGN=1,1:2048,1536&BIN=8").status_code == 200


# -- VAL and PFL -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["starfield.fits", "small.fits", "scaled.fits"])
def test_pixel_values_match_astropy(
    client: FlaskClient, library: Library, name: str
) -> None:
    data = fits_data(library.data / name)
    ny, nx = data.shape
    for x, y in [(1, 1), (nx, ny), (nx, 1), (1, ny), (nx // 3, ny // 2), (17, 5)]:
        values = ok_json(client, f"FIF={name}&VAL={x},{y}")["values"]
        assert values == [pytest.approx(data[y - 1, x - 1], rel=1e-6)], (x, y)
    for x, y in [(0, 1), (1, 0), (nx + 1, 1), (1, ny + 1), (-5, -5)]:
        assert ok_json(client, f"FIF={name}&VAL={x},{y}")["values"] == [None]


def test_blank_pixel_is_null(client: FlaskClient) -> None:
    assert ok_json(client, "FIF=small.fits&VAL=21,11")["values"] == [None]
    assert ok_json(client, "FIF=small.fits&VAL=22,11")["values"][0] is not None


def test_cube_pixel_values(client: FlaskClient, library: Library) -> None:
    cube = fits_data(library.data / "cube.fits")
    x, y = 345, 678
    values = ok_json(client, f"FIF=cube.fits&VAL={x},{y}&CHAN=1&CHAN=3")["values"]
    assert values == [pytest.approx(cube[c, y - 1, x - 1], rel=1e-6) for c in (0, 2)]
    assert ok_json(client, f"FIF=cube.fits&VAL={x},{y}")["values"] == [
        pytest.approx(cube[0, y - 1, x - 1], rel=1e-6)
    ]


def test_mosaic_pixel_values_follow_detsec(client: FlaskClient, library: Library) -> None:
    with fits.open(library.data / "mosaic.fits") as hdus:
        for ext in (1, 6):  # CCD01, and CCD06 read out in reverse (DETSEC x decreasing)
            header = hdus[ext].header
            data = np.asarray(hdus[ext].data, dtype=np.float64)
            fx1, fx2, fy1, fy2 = _section(header["DETSEC"])
            dx1, _, dy1, _ = _section(header["DATASEC"])
            step = 1 if fx2 >= fx1 else -1
            for i, j in [(dx1, dy1), (dx1 + 10, dy1 + 20), (dx1 + 200, dy1 + 400)]:
                x, y = fx1 + step * (i - dx1), fy1 + (j - dy1)
                values = ok_json(client, f"FIF=mosaic.fits&VAL={x},{y}")["values"]
                assert values == [pytest.approx(data[j - 1, i - 1])], (ext, i, j)
        # The gap between CCD01 and CCD02 holds no pixel.
        gap_x = _section(hdus[1].header["DETSEC"])[1] + 3
    assert ok_json(client, f"FIF=mosaic.fits&VAL={gap_x},10")["values"] == [None]


def test_profile_matches_astropy(client: FlaskClient, library: Library) -> None:
    data = fits_data(library.data / "starfield.fits")
    profile = ok_json(client, "FIF=starfield.fits&PFL=10,20:30,20")["profile"]
    assert [(p["x"], p["y"]) for p in profile] == [(x, 20) for x in range(10, 31)]
    for point in profile:
        assert point["values"] == [pytest.approx(data[point["y"] - 1, point["x"] - 1])]

    profile = ok_json(client, "FIF=starfield.fits&PFL=1,1:50,30")["profile"]
    assert len(profile) == 50
    assert (profile[0]["x"], profile[0]["y"]) == (1, 1)
    assert (profile[-1]["x"], profile[-1]["y"]) == (50, 30)
    steps = {(b["x"] - a["x"], b["y"] - a["y"]) for a, b in itertools.pairwise(profile)}
    assert steps <= {(1, 0), (1, 1)}
    for point in profile:
        assert point["values"] == [pytest.approx(data[point["y"] - 1, point["x"] - 1])]


def test_profile_channels_and_outside(client: FlaskClient, library: Library) -> None:
    cube = fits_data(library.data / "cube.fits")
    profile = ok_json(client, "FIF=cube.fits&PFL=5,7:5,9")["profile"]
    assert [p["values"] for p in profile] == [
        [pytest.approx(cube[c, y - 1, 4]) for c in range(3)] for y in (7, 8, 9)
    ]
    profile = ok_json(client, "FIF=cube.fits&PFL=5,7:5,9&CHAN=2")["profile"]
    assert [p["values"] for p in profile] == [
        [pytest.approx(cube[1, y - 1, 4])] for y in (7, 8, 9)
    ]
    profile = ok_json(client, "FIF=small.fits&PFL=-1,1:1,1")["profile"]
    assert [p["values"][0] is None for p in profile] == [True, True, False]


# -- names -----------------------------------------------------------------------------


def test_hdu_suffix(client: FlaskClient) -> None:
    assert ok_json(client, "FIF=mef.fits&INFO")["full_size"] == [96, 64]
    assert ok_json(client, "FIF=mef.fits[1]&INFO")["full_size"] == [96, 64]
    assert ok_json(client, "FIF=mef.fits[2]&INFO")["full_size"] == [50, 40]
    for query in ("FIF=mef.fits[9]&INFO", "FIF=mef.fits[0]&INFO"):
        response = iip(client, query)
        assert response.status_code == 422, query
        assert response.get_json()["detail"][0]["loc"] == ["query", "FIF"]


def test_hdu_suffix_values(client: FlaskClient, library: Library) -> None:
    second = fits_data(library.data / "mef.fits", 2)
    assert ok_json(client, "FIF=mef.fits[2]&VAL=3,4")["values"] == [
        pytest.approx(second[3, 2])
    ]


@pytest.mark.parametrize("name", ["sub/deep.fits", "Upper.FITS", "link_in.fits"])
def test_other_names(client: FlaskClient, name: str) -> None:
    assert ok_json(client, f"FIF={name}&INFO")["channels"] == 1


def test_service_page_and_command_hint(client: FlaskClient) -> None:
    page = client.get(f"{PREFIX}/iip")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "FIF" in page.get_data(as_text=True)
    response = iip(client, "FIF=small.fits")
    assert response.status_code == 400
    assert "INFO" in response.get_json()["detail"][0]["msg"]
    response = iip(client, "INFO")
    assert response.status_code == 400
    assert response.get_json()["detail"][0]["loc"] == ["query", "FIF"]


# -- images and index --------------------------------------------------------------------

LISTED = {
    "Upper.FITS",
    "cube.fits",
    "link_in.fits",
    "mef.fits",
    "mosaic.fits",
    "notfits.fits",
    "odd.fits",
    "scaled.fits",
    "small.fits",
    "starfield.fits",
    "sub/deep.fits",
    "table.fits",
}


def test_images_list(client: FlaskClient, library: Library) -> None:
    response = client.get(f"{PREFIX}/images")
    assert response.status_code == 200 and response.mimetype == "application/json"
    images = response.get_json()
    assert [image["name"] for image in images] == sorted(LISTED)
    for image in images:
        assert image["size"] == os.path.getsize(library.data / image["name"])
        assert isinstance(image["prepared"], bool)


def test_images_prepared_flag_and_freshness(fresh_library: Library) -> None:
    client = make_app(fresh_library).test_client()

    def prepared() -> dict[str, bool]:
        return {i["name"]: i["prepared"] for i in client.get(f"{PREFIX}/images").get_json()}

    assert not any(prepared().values())
    before = ok_json(client, "FIF=small.fits&VAL=1,1")["values"][0]
    flags = prepared()
    assert flags["small.fits"] and flags["link_in.fits"]  # the same file
    assert not flags["starfield.fits"]

    # A new source file (new size and mtime) is prepared again, and served.
    path = fresh_library.data / "small.fits"
    fits.PrimaryHDU(small_image((210, 300)) + 5000.0).writeto(path, overwrite=True)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not prepared()["small.fits"]
    after = ok_json(client, "FIF=small.fits&VAL=1,1")["values"][0]
    assert after == pytest.approx(before + 5000.0, abs=1.0)
    assert ok_json(client, "FIF=small.fits&INFO")["full_size"] == [300, 210]
    assert prepared()["small.fits"]


def test_index_page(client: FlaskClient) -> None:
    page = client.get(f"{PREFIX}/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    for name in LISTED - {"sub/deep.fits"}:
        assert f'href="{PREFIX}/viewer?FIF={name}"' in text
        assert f"FIF={name}&amp;INFO" in text
    assert f'href="{PREFIX}/?dir=sub"' in text
    assert "outside" not in text and ".hidden" not in text


def test_json_bodies_are_plain_json(client: FlaskClient) -> None:
    body = iip(client, "FIF=small.fits&PFL=20,11:22,11").get_data(as_text=True)
    assert json.loads(body)["profile"][1]["values"] == [None]
    assert "NaN" not in body
