"""The seed's API, FITS reading against astropy, the pyramid, tiles and pickles."""

from __future__ import annotations

import errno
import inspect
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image as PILImage

from flask_fitstiles import tiled
from flask_fitstiles.core import mapped
from flask_fitstiles.errors import BadFitsError, BadParameterError, RegionTooLargeError
from flask_fitstiles.tiled import Tiled, pickledTiled

from .conftest import MosaicSpec, write_mosaic

SEED = (Path(__file__).parents[2] / ".." / "shared" / "seed" / "tiled-api.txt").resolve()


def astropy_data(path: Path, ext: int | None = None) -> np.ndarray:
    """The file's pixels as astropy reads them (scaled), as (channels, y, x)."""
    with fits.open(path) as hdus:
        if ext is None:
            ext = next(i for i, h in enumerate(hdus) if h.data is not None)
        data = np.asarray(hdus[ext].data, dtype=np.float32)
    return data.reshape(-1, *data.shape[-2:])


def decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(jpeg)))


# -- the seed's API --------------------------------------------------------------------


SEED_METHODS = {
    "compute_nlevels": ["self"],
    "compute_grid_shape": ["self", "level"],
    "compute_tile_bordershape": ["self", "level"],
    "get_model": ["self"],
    "make_mosaic": ["self", "images"],
    "make_header": ["self"],
    "get_iipheaderstr": ["self"],
    "convert_tile": [
        "self",
        "tile",
        "channel",
        "minmax",
        "mix",
        "brightness",
        "contrast",
        "gamma",
        "colormap",
        "invert",
    ],
    "make_tiles": ["self"],
    "get_tile_raster": [
        "self",
        "tilelevel",
        "tileindex",
        "channel",
        "minmax",
        "mix",
        "brightness",
        "contrast",
        "gamma",
        "colormap",
        "invert",
        "_",
    ],
    "encode": ["self", "raster", "channel", "colormap", "quality", "_"],
    "get_encoded_region": ["self", "bounds", "binning", "channel", "colormap", "kwargs"],
    "get_pixel_values": ["self", "channels", "pos"],
    "get_profiles": ["self", "channels", "pos1", "pos2"],
    "get_data": ["self"],
    "get_tiles": ["self"],
}


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_seed_names_exist() -> None:
    text = SEED.read_text() if SEED.exists() else ""
    for name in (
        "PixelValueModel",
        "PixelModel",
        "ProfileModel",
        "TiledModel",
        "ImageModel",
        "Tiled",
        "pickledTiled",
        "get_object_filename",
        "get_data_filename",
        "get_tiles_filename",
        "get_image_filename",
    ):
        assert hasattr(tiled, name), name
        if text:
            assert name in text
    assert callable(Tiled.get_encoded_tile)


def test_seed_signatures() -> None:
    seed_init = [
        "self",
        "filename",
        "extnum",
        "tilesize",
        "minmax",
        "brightness",
        "contrast",
        "color_saturation",
        "gamma",
        "quality",
        "max_region_tile_count",
        "nthreads",
    ]
    assert params(Tiled.__init__)[: len(seed_init)] == seed_init
    assert inspect.signature(Tiled.__init__).parameters["tilesize"].default == (256, 256)
    for name, expected in SEED_METHODS.items():
        got = params(getattr(Tiled, name))
        # Keyword parameters may be added, never removed or reordered.
        assert [p for p in got if p in expected] == expected, name
    assert params(tiled.pickledTiled)[0] == "filename"
    assert "kwargs" in params(tiled.pickledTiled)
    for name in ("get_object_filename", "get_data_filename", "get_tiles_filename"):
        assert params(getattr(tiled, name))[0] == "image_filename"
        assert "cache_dir" in params(getattr(tiled, name))
    assert params(tiled.get_image_filename)[0] == "prefix"


def seed_schemas() -> dict[str, dict[str, object]]:
    """Parse the JSON schemas printed in the seed's documentation."""
    import json

    text = SEED.read_text()
    schemas = {}
    for match in re.finditer(r"Show JSON schema\n(\{.*?\n\})\n", text, re.S):
        schema = json.loads(match.group(1))
        schemas[schema["title"]] = schema
    return schemas


def schema_types(schema: dict, defs: dict) -> dict[str, object]:  # type: ignore[type-arg]
    out = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        out[name] = prop
    return out


@pytest.mark.skipif(
    not SEED.exists(), reason="the seed documentation is not beside the repo"
)
@pytest.mark.parametrize(
    "title", ["PixelValueModel", "PixelModel", "ProfileModel", "TiledModel"]
)
def test_model_schemas_match_seed(title: str) -> None:
    seed = seed_schemas()[title]
    ours = getattr(tiled, title).model_json_schema()
    assert ours["required"] == seed["required"]
    assert schema_types(ours, {}) == schema_types(seed, {})  # type: ignore[arg-type]
    for name, definition in seed.get("$defs", {}).items():  # type: ignore[attr-defined]
        mine = ours["$defs"][name]
        assert mine["required"] == definition["required"]
        assert schema_types(mine, {}) == schema_types(definition, {})


# -- reading FITS against astropy ------------------------------------------------------


def check_random_pixels(t: Tiled, expected: np.ndarray, n: int = 300) -> None:
    rng = np.random.default_rng(0)
    nchan, ny, nx = expected.shape
    assert t.shape == expected.shape
    assert t.get_model().full_size == (nx, ny)
    for _ in range(n):
        x, y = int(rng.integers(1, nx + 1)), int(rng.integers(1, ny + 1))
        values = t.get_pixel_values(tuple(range(1, nchan + 1)), (x, y)).values
        for c in range(nchan):
            want = expected[c, y - 1, x - 1]
            if np.isfinite(want):
                assert values[c] == float(want), (c, x, y)
            else:
                assert values[c] is None, (c, x, y)


def test_prime_dimensions(prime_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(prime_image, cache_dir=cache_dir)
    assert t.get_model().full_size == (983, 1061)
    check_random_pixels(t, astropy_data(prime_image))
    assert t.object_name == "prime field"


def test_cube_channels(cube_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(cube_image, cache_dir=cache_dir)
    assert t.nchannels == 3
    check_random_pixels(t, astropy_data(cube_image))
    assert t.get_pixel_values((2,), (55, 105)).values == [9000.0]
    # Unknown channels give None, known ones their value.
    assert t.get_pixel_values((4, 1), (1, 1)).values[0] is None


def test_scaled_int16(scaled_int16_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(scaled_int16_image, cache_dir=cache_dir)
    expected = astropy_data(scaled_int16_image)
    assert np.isnan(expected[0, 0, 0])
    check_random_pixels(t, expected)
    assert t.get_pixel_values((1,), (1, 1)).values == [None]


def test_tile_compressed(compressed_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(compressed_image, cache_dir=cache_dir)
    check_random_pixels(t, astropy_data(compressed_image, ext=1))


def test_nan_holes(nan_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(nan_image, cache_dir=cache_dir)
    expected = astropy_data(nan_image)
    expected[~np.isfinite(expected)] = np.nan
    check_random_pixels(t, expected, n=1000)
    assert t.get_pixel_values((1,), (40, 60)).values == [None]
    assert t.get_pixel_values((1,), (6, 6)).values == [None]  # +inf is blank
    assert t.get_pixel_values((1,), (7, 7)).values == [None]  # -inf is blank
    assert t.get_pixel_values((1,), (0, 5)).values == [None]  # outside
    # Blank pixels do not poison statistics.
    assert np.all(np.isfinite(t.minmax))
    assert 9.0 < t.images[0].background_level[0] < 11.0


def test_extnum_picks_one_hdu(mosaic_image: MosaicSpec, cache_dir: Path) -> None:
    t = pickledTiled(mosaic_image.path, cache_dir=cache_dir, extnum=3)
    assert t.shape == (1, 100, 60)
    raw = astropy_data(mosaic_image.path, ext=3)
    check_random_pixels(t, raw[:, :, :60])
    assert t.image_name == "mosaic.fits[3]"
    with pytest.raises(BadFitsError):
        pickledTiled(mosaic_image.path, cache_dir=cache_dir, extnum=0)
    with pytest.raises(BadFitsError):
        pickledTiled(mosaic_image.path, cache_dir=cache_dir, extnum=99)


def ccd_pixels_to_frame(spec: MosaicSpec, k: int, i: np.ndarray, j: np.ndarray):  # type: ignore[no-untyped-def]
    x1, x2, y1, y2 = spec.detsecs[k]
    xstep = 1 if x2 >= x1 else -1
    ystep = 1 if y2 >= y1 else -1
    sy, sx = spec.start
    return x1 - sx + (i - 1) * xstep, y1 - sy + (j - 1) * ystep


def check_mosaic(spec: MosaicSpec, cache_dir: Path) -> Tiled:
    t = pickledTiled(spec.path, cache_dir=cache_dir)
    assert t.shape == (1, *spec.frame_shape)
    assert len(t.images) == 8
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy notes about missing MJD-OBS etc.
        frame_wcs = WCS(t.header)
    seen_reversed = False
    with fits.open(spec.path) as hdus:
        for k in range(8):
            hdu = hdus[k + 1]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ccd_wcs = WCS(hdu.header)
            ny, nx = 100, 60
            i = rng.integers(1, nx + 1, 50)
            j = rng.integers(1, ny + 1, 50)
            # Include the corners: they show flips and off-by-ones.
            i = np.concatenate([i, [1, nx, 1, nx]])
            j = np.concatenate([j, [1, 1, ny, ny]])
            fx, fy = ccd_pixels_to_frame(spec, k, i, j)
            # CCD data pixel i is column i + x0 of the file (x0 columns of overscan).
            x0 = spec.data_x0[k]
            for a, b, x, y in zip(i, j, fx, fy, strict=True):
                got = t.get_pixel_values((1,), (int(x), int(y))).values[0]
                assert got == float(hdu.data[b - 1, x0 + a - 1]), (k, a, b)
            ra1, dec1 = ccd_wcs.all_pix2world(i + x0, j, 1)
            ra2, dec2 = frame_wcs.all_pix2world(fx, fy, 1)
            assert_allclose(ra1, ra2, rtol=0, atol=1e-9)
            assert_allclose(dec1, dec2, rtol=0, atol=1e-9)
            model = t.images[k].get_model()
            assert model.dataslice == [[x0 + 1, x0 + 60, 1], [1, 100, 1]]
            x1, x2, y1, y2 = spec.detsecs[k]
            sy, sx = spec.start
            if x2 < x1:
                seen_reversed = True
                assert model.detslice[0] == [x1 - sx, x2 - sx, -1]
            else:
                assert model.detslice[0] == [x1 - sx, x2 - sx, 1]
            assert model.detslice[1] == [y1 - sy, y2 - sy, 1 if y2 >= y1 else -1]
    assert seen_reversed
    # Overscan (value 300) never reaches the frame; gaps are blank.
    data = t.get_data()
    assert not np.any(data == 300.0)
    assert t.get_pixel_values((1,), (61, 1)).values == [None]
    return t


def test_mosaic_pixels_and_wcs(mosaic_image: MosaicSpec, cache_dir: Path) -> None:
    t = check_mosaic(mosaic_image, cache_dir)
    # OBJECT is in the primary HDU only: the frame inherits it.
    assert t.object_name == "test mosaic"
    assert t.header.cards[0].keyword == "SIMPLE" and "XTENSION" not in t.header
    assert list(t.header.keys())[:4] == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1"]
    # Each CCD's header inherits it too (the client labels channels from there).
    assert all(im.get_model().header["OBJECT"] == "test mosaic" for im in t.images)
    # Default cuts are the median of the images' cuts.
    assert_allclose(t.minmax, np.median([im.minmax for im in t.images], axis=0))
    assert "CDELT1" not in t.header and "DETSEC" not in t.header


def test_mosaic_offset_origin_and_pc_form(tmp_path: Path, cache_dir: Path) -> None:
    spec = write_mosaic(
        tmp_path / "pc.fits", origin=(101, 51), wcs_form="pc", reversed_ccd=2
    )
    t = check_mosaic(spec, cache_dir)
    assert "PC1_1" not in t.header and "CD1_1" in t.header


def test_mosaic_crota_form(tmp_path: Path, cache_dir: Path) -> None:
    spec = write_mosaic(tmp_path / "crota.fits", wcs_form="crota", reversed_ccd=0)
    t = check_mosaic(spec, cache_dir)
    assert "CROTA2" not in t.header and "CDELT2" not in t.header


def test_mosaic_first_ccd_flipped_in_y(tmp_path: Path, cache_dir: Path) -> None:
    # The global WCS derives from the first CCD: flip that one in both axes.
    spec = write_mosaic(tmp_path / "flip.fits", reversed_ccd=0, reversed_y_ccd=0)
    check_mosaic(spec, cache_dir)


@pytest.mark.parametrize(
    ("reversed_ccd", "reversed_y_ccd"), [(5, None), (0, None), (0, 0), (3, 0)]
)
def test_mosaic_overscan_left_and_right_keeps_ccd_headers(
    tmp_path: Path, cache_dir: Path, reversed_ccd: int, reversed_y_ccd: int | None
) -> None:
    # Overscan before the data (DATASEC starting at column 11) on the first CCD,
    # whose WCS gives the frame's, and on others; after the data on the rest.
    spec = write_mosaic(
        tmp_path / "overscan.fits",
        overscan=10,
        left_overscan=(0, 2, 5, 7),
        reversed_ccd=reversed_ccd,
        reversed_y_ccd=reversed_y_ccd,
    )
    with fits.open(spec.path) as hdus:
        in_file = [hdus[k + 1].header.copy() for k in range(8)]
    assert in_file[0]["DATASEC"] == "[11:70,1:100]"

    def unchanged(images: list[Any]) -> None:
        for k, image in enumerate(images):
            for key in ("CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "DATASEC"):
                assert image.header[key] == in_file[k][key], (k, key)
            model_header = image.get_model().header
            assert model_header["CRPIX1"] == in_file[k]["CRPIX1"], k
            assert model_header["CRPIX2"] == in_file[k]["CRPIX2"], k

    t = check_mosaic(spec, cache_dir)
    unchanged(t.images)
    first = t.make_header().tostring()
    for _ in range(3):
        assert t.make_header().tostring() == first
        t.get_model()
    unchanged(t.images)
    assert first == t.header.tostring()
    # A second process loads the pickle: the headers it holds are the file's too.
    unchanged(pickledTiled(spec.path, cache_dir=cache_dir).images)


def test_not_fits_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "text.fits"
    path.write_text("hello, I am not a FITS file\n" * 100)
    with pytest.raises(BadFitsError) as info:
        pickledTiled(path, cache_dir=cache_dir)
    assert str(tmp_path) not in str(info.value)
    table = tmp_path / "table.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])]),
        ]
    ).writeto(table)
    with pytest.raises(BadFitsError, match="no image data"):
        pickledTiled(table, cache_dir=cache_dir)
    assert not any(p.suffix == ".pkl" for p in cache_dir.iterdir())


# -- pyramid ---------------------------------------------------------------------------


def seed_grid(ny: int, nx: int, t: int, level: int) -> tuple[int, int]:
    return ((ny >> level) - 1) // t + 1, ((nx >> level) - 1) // t + 1


def seed_border(ny: int, nx: int, t: int, level: int) -> tuple[int, int]:
    return ((ny - 1) >> level) % t + 1, ((nx - 1) >> level) % t + 1


@pytest.mark.parametrize(
    ("ny", "nx", "tile"),
    [
        (1061, 983, 256),
        (256, 256, 256),
        (257, 1, 256),
        (4000, 3000, 256),
        (1000, 999, 100),
        (3, 20000, 256),
        (20000, 3, 256),
        (1, 1, 256),
        (7, 5, 2),
    ],
)
def test_grid_formulas(
    ny: int, nx: int, tile: int, tmp_path: Path, cache_dir: Path
) -> None:
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(np.zeros((ny, nx), dtype=np.float32)).writeto(path)
    t = Tiled(path, tilesize=(tile, tile), cache_dir=cache_dir)
    n = t.compute_nlevels()
    assert n == max(((ny - 1) // tile).bit_length(), ((nx - 1) // tile).bit_length()) + 1
    assert max(t.level_shapes[n - 1]) <= tile  # the top level fits in one tile
    for level in range(n):
        rows, cols = seed_grid(ny, nx, tile, level)
        grid = t.compute_grid_shape(level)
        assert grid == (1, max(rows, 1), max(cols, 1))
        assert min(grid[1:]) >= 1
        assert t.compute_tile_bordershape(level) == (1, *seed_border(ny, nx, tile, level))
        # The last tile is cropped to the level, never empty and never padded.
        last = t.get_tile(level, grid[1] * grid[2] - 1)
        assert last.shape[1] >= 1 and last.shape[2] >= 1
        h, w = t.level_shapes[level]
        assert last.shape[1] == min(tile, h - (grid[1] - 1) * tile)
        assert last.shape[2] == min(tile, w - (grid[2] - 1) * tile)


def nan_mean_2x2(level: np.ndarray) -> np.ndarray:
    c, h, w = level.shape
    padded = np.full((c, h + h % 2, w + w % 2), np.nan, dtype=np.float64)
    padded[:, :h, :w] = level
    blocks = padded.reshape(c, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(2, 4))


@pytest.mark.parametrize("fixture", ["prime_image", "nan_image", "cube_image"])
def test_levels_are_nan_aware_means(
    fixture: str, request: pytest.FixtureRequest, cache_dir: Path
) -> None:
    path = request.getfixturevalue(fixture)
    t = pickledTiled(path, cache_dir=cache_dir, tilesize=(64, 64))
    assert t.nlevels >= 3
    expected = astropy_data(path)
    expected[~np.isfinite(expected)] = np.nan
    assert_array_equal(t.get_level(0), expected[:, ::-1, :])
    for level in range(1, t.nlevels):
        below = np.asarray(t.get_level(level - 1), dtype=np.float64)
        assert_allclose(t.get_level(level), nan_mean_2x2(below), rtol=2e-6, equal_nan=True)
        assert t.get_level(level).shape[1:] == t.level_shapes[level]


def test_mosaic_gaps_do_not_darken(mosaic_image: MosaicSpec, cache_dir: Path) -> None:
    t = pickledTiled(mosaic_image.path, cache_dir=cache_dir, tilesize=(64, 64))
    # The level-1 pixel over the gap edge averages only the CCD's pixels.
    level1 = t.get_level(1)
    assert np.nanmin(level1) > 900.0


# -- tiles -----------------------------------------------------------------------------


@pytest.fixture()
def gradient(tmp_path: Path, cache_dir: Path) -> Tiled:
    """600 x 700 (x, y) image whose value is its FITS y, cuts [0, 700]."""
    data = np.repeat(np.arange(1, 701, dtype=np.float32)[:, None], 600, axis=1)
    path = tmp_path / "gradient.fits"
    fits.PrimaryHDU(data).writeto(path)
    return pickledTiled(path, cache_dir=cache_dir, minmax=(0.0, 700.0))


def test_tile_sizes_and_orientation(gradient: Tiled) -> None:
    t = gradient
    assert t.nlevels == 3
    assert t.compute_grid_shape(0) == (1, 3, 3)
    sizes = {
        0: (256, 256),
        2: (256, 600 - 512),
        6: (700 - 512, 256),
        8: (700 - 512, 600 - 512),
    }
    for index, size in sizes.items():
        tile = decode(t.get_encoded_tile(0, index, channel=1, quality=100))
        assert tile.shape == size
    assert decode(t.get_encoded_tile(2, 0, channel=1)).shape == (175, 150)
    top = decode(t.get_encoded_tile(0, 0, channel=1, gamma=1.0, quality=100))
    bottom = decode(t.get_encoded_tile(0, 6, channel=1, gamma=1.0, quality=100))
    # The top-left tile is the top of the displayed image: the largest FITS y.
    assert top[0].mean() == pytest.approx(255.49 * 700 / 700, abs=2)
    assert bottom[-1].mean() == pytest.approx(255.49 * 1 / 700, abs=2)
    assert top[0].mean() > top[-1].mean() > bottom[0].mean()


@pytest.mark.parametrize(
    ("brightness", "contrast", "gamma"),
    [(0.0, 1.0, 2.2), (0.0, 1.0, 1.0), (10.0, 2.0, 1.5), (-20.0, 0.5, 3.0)],
)
def test_mono_pixels_follow_formula(
    gradient: Tiled, brightness: float, contrast: float, gamma: float
) -> None:
    t = gradient
    tile = decode(
        t.get_encoded_tile(
            0,
            3,
            channel=1,
            brightness=brightness,
            contrast=contrast,
            gamma=gamma,
            quality=100,
        )
    ).astype(float)
    raw = np.asarray(t.get_tile(0, 3)[0], dtype=np.float64)
    v = np.clip((raw - 0.0) * contrast / 700.0 + 0.01 * contrast * brightness, 0, 1)
    expected = np.floor(255.49 * v ** (1 / gamma))
    assert np.abs(tile - expected).max() <= 3
    assert np.abs(tile - expected).mean() < 1.0


def test_minmax_override_and_invert(gradient: Tiled) -> None:
    t = gradient
    narrow = decode(
        t.get_encoded_tile(
            0, 3, channel=1, minmax=((1, 400.0, 500.0),), gamma=1.0, quality=100
        )
    ).astype(float)
    raw = np.asarray(t.get_tile(0, 3)[0], dtype=np.float64)
    expected = np.floor(255.49 * np.clip((raw - 400) / 100, 0, 1))
    assert np.abs(narrow - expected).max() <= 3
    plain = decode(t.get_encoded_tile(0, 3, channel=1, quality=100)).astype(int)
    inverted = decode(t.get_encoded_tile(0, 3, channel=1, invert=True, quality=100)).astype(
        int
    )
    assert np.abs(plain + inverted - 255).max() <= 3
    # Requests never change the image's defaults.
    assert_array_equal(t.minmax, [[0.0, 700.0]])


@pytest.mark.parametrize("colormap", ["jet", "cold", "cool", "hot"])
def test_colormaps_give_three_bands(gradient: Tiled, colormap: str) -> None:
    tile = decode(gradient.get_encoded_tile(0, 0, channel=1, colormap=colormap))
    assert tile.shape == (256, 256, 3)
    grey = decode(gradient.get_encoded_tile(0, 0, channel=1))
    assert grey.ndim == 2


def test_colour_mode(cube_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(cube_image, cache_dir=cache_dir)
    tile = decode(t.get_encoded_tile(0, 0))
    assert tile.shape == (256, 256, 3)
    # Channel 2 alone in green: the bright square (FITS x 51-60, y 101-110) is green.
    mix = ((1, 0.0, 0.0, 0.0), (2, 0.0, 1.0, 0.0), (3, 0.0, 0.0, 0.0))
    ny = t.shape[1]
    index = (ny - 105) // 256 * t.compute_grid_shape(0)[2]
    row = (ny - 105) % 256
    green = decode(t.get_encoded_tile(0, index, mix=mix, quality=100)).astype(int)
    r, g, b = green[row, 55]
    assert g > 200 and r < 30 and b < 30
    # Only JPEG chroma ringing around the square puts anything in red or blue.
    assert np.percentile(green[:, :, 0], 99) < 20 and np.percentile(green[:, :, 2], 99) < 20


def test_tile_index_out_of_range(gradient: Tiled) -> None:
    with pytest.raises(BadParameterError, match="out of range 0-8") as info:
        gradient.get_encoded_tile(0, 9)
    assert info.value.loc == ("query", "JTL")
    with pytest.raises(BadParameterError):
        gradient.get_encoded_tile(3, 0)
    with pytest.raises(BadParameterError, match="CMP"):
        gradient.get_encoded_tile(0, 0, channel=1, colormap="rainbow")


def test_encoded_tiles_are_memoized(gradient: Tiled) -> None:
    first = gradient.get_encoded_tile(0, 4, channel=1)
    assert gradient.tile_cache is not None
    misses = gradient.tile_cache.misses
    # Explicit defaults normalise to the same key.
    again = gradient.get_encoded_tile(0, 4, channel=1, gamma=2.2, brightness=0.0)
    assert again == first
    assert gradient.tile_cache.misses == misses
    assert gradient.get_encoded_tile(0, 4, channel=1, gamma=1.0) != first


# -- regions, values, profiles ---------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "binning", "size"),
    [
        (((1, 1), (600, 700)), 1, (700, 600)),
        (((1, 1), (600, 700)), 2, (350, 300)),
        (((1, 1), (600, 700)), 4, (175, 150)),
        (((101, 51), (300, 250)), 1, (200, 200)),
        (((101, 51), (300, 250)), 3, (67, 67)),
        (((-50, -50), (10000, 20)), 1, (20, 600)),
    ],
)
def test_region_sizes(
    gradient: Tiled,
    bounds: tuple[tuple[int, int], tuple[int, int]],
    binning: int,
    size: tuple[int, int],
) -> None:
    image = decode(gradient.get_encoded_region(bounds, binning, channel=1, quality=100))
    assert image.shape == size


def test_region_matches_tiles(gradient: Tiled) -> None:
    region = decode(
        gradient.get_encoded_region(((1, 1), (256, 256)), 1, channel=1, quality=100)
    ).astype(int)
    tile = decode(gradient.get_encoded_tile(0, 0, channel=1, quality=100)).astype(int)
    assert np.abs(region - tile).max() <= 1


def test_region_limits(gradient: Tiled) -> None:
    gradient.max_region_tile_count = 4
    with pytest.raises(IndexError, match="zoom in or increase the binning"):
        gradient.get_encoded_region(((1, 1), (600, 700)), 1)
    assert decode(gradient.get_encoded_region(((1, 1), (600, 700)), 4)).shape[:2] == (
        175,
        150,
    )
    with pytest.raises(RegionTooLargeError):
        gradient.get_encoded_region(((1000, 1000), (2000, 2000)), 1)


def test_profiles_follow_bresenham(prime_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(prime_image, cache_dir=cache_dir)
    expected = astropy_data(prime_image)[0]
    profile = t.get_profiles(None, (10, 20), (17, 23)).profile
    xs = [p.x for p in profile]
    ys = [p.y for p in profile]
    assert xs == list(range(10, 18))
    assert ys == [20, 20, 21, 21, 22, 22, 23, 23]
    for p in profile:
        assert p.values == [float(expected[p.y - 1, p.x - 1])]
    steep = t.get_profiles((1,), (5, 5), (3, 12)).profile
    assert [p.y for p in steep] == list(range(5, 13))
    assert steep[0].x == 5 and steep[-1].x == 3
    outside = t.get_profiles((1, 2), (-1, 1), (1, 1)).profile
    assert [p.values for p in outside] == [
        [None, None],
        [None, None],
        [float(expected[0, 0]), None],
    ]


def test_profiles_every_channel(cube_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(cube_image, cache_dir=cache_dir)
    expected = astropy_data(cube_image)
    profile = t.get_profiles(None, (50, 100), (60, 100)).profile
    assert len(profile) == 11
    for p in profile:
        assert p.values == [float(expected[c, p.y - 1, p.x - 1]) for c in range(3)]
    only = t.get_profiles((3, 1), (50, 100), (50, 101)).profile
    assert only[1].values == [float(expected[2, 100, 49]), float(expected[0, 100, 49])]


def test_iip_header_and_model(prime_image: Path, cache_dir: Path) -> None:
    t = pickledTiled(prime_image, cache_dir=cache_dir)
    text = t.get_iipheaderstr()
    lines = text.split("\n")
    assert lines[:5] == [
        "IIP:1.0",
        "Max-size:983 1061",
        "Tile-size:256 256",
        "Resolution-number:4",
        "Bits-per-channel:32",
    ]
    assert lines[5].startswith("Min-Max-sample-values:")
    subject = text.split("subject/", 1)[1]
    length, header = subject.split(":", 1)
    assert int(length) == len(header) and header.startswith("SIMPLE")
    model = t.get_model()
    assert model.type == "visiomatic" and model.version == "3.0"
    assert model.tile_levels == 4 and model.channels == 1 and model.bits_per_channel == 32
    assert model.header["CTYPE1"] == "RA---TAN"
    assert model.images[0].size == [983, 1061, 1]
    model.model_dump_json()  # every header value is JSON-safe


# -- pickles ---------------------------------------------------------------------------


def test_second_load_does_not_prepare(
    prime_image: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pickledTiled(prime_image, cache_dir=cache_dir)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image was prepared again")

    monkeypatch.setattr(Tiled, "make_tiles", fail)
    monkeypatch.setattr(Tiled, "make_mosaic", fail)
    second = pickledTiled(prime_image, cache_dir=cache_dir, gamma=1.5)
    assert second is not first
    assert second.gamma == 1.5 and first.gamma == 2.2
    assert second.get_pixel_values((1,), (3, 4)) == first.get_pixel_values((1,), (3, 4))
    # The pickle holds no pixel array.
    size = os.path.getsize(tiled.get_object_filename(prime_image, cache_dir))
    assert size < 100_000


@pytest.mark.parametrize("which", [1, 2])
def test_full_disk_leaves_nothing_behind(
    which: int, prime_image: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No space for the frame (1st file) or the tiles (2nd): an error, no files."""
    calls: list[int] = []
    reserve = os.posix_fallocate

    def full(fd: int, offset: int, length: int) -> None:
        calls.append(length)
        if len(calls) == which:
            raise OSError(errno.ENOSPC, "No space left on device")
        reserve(fd, offset, length)

    monkeypatch.setattr(mapped.os, "posix_fallocate", full)
    with pytest.raises(OSError) as caught:
        pickledTiled(prime_image, cache_dir=cache_dir, secret_key="k")
    assert caught.value.errno == errno.ENOSPC
    left = sorted(p.name for p in cache_dir.iterdir())
    assert all(name.endswith(".lock") or name == "secret.key" for name in left), left
    monkeypatch.undo()
    # With space again, the image is prepared and whole.
    t = pickledTiled(prime_image, cache_dir=cache_dir, secret_key="k")
    assert_array_equal(t.get_level(0), astropy_data(prime_image)[:, ::-1, :])


def test_changed_source_is_prepared_again(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "changing.fits"
    fits.PrimaryHDU(np.full((50, 40), 1.0, dtype=np.float32)).writeto(path)
    first = pickledTiled(path, cache_dir=cache_dir)
    assert first.get_pixel_values((1,), (1, 1)).values == [1.0]
    fits.PrimaryHDU(np.full((50, 40), 2.0, dtype=np.float32)).writeto(path, overwrite=True)
    os.utime(path, ns=(first.source_mtime_ns + 10**9, first.source_mtime_ns + 10**9))
    assert not first.is_fresh()
    second = pickledTiled(path, cache_dir=cache_dir)
    assert second.get_pixel_values((1,), (1, 1)).values == [2.0]
    assert second.is_fresh()


def test_broken_pickle_is_prepared_again(prime_image: Path, cache_dir: Path) -> None:
    pickledTiled(prime_image, cache_dir=cache_dir)
    name = tiled.get_object_filename(prime_image, cache_dir)
    Path(name).write_bytes(b"garbage")
    again = pickledTiled(prime_image, cache_dir=cache_dir)
    assert again.get_pixel_values((1,), (1, 1)).values[0] is not None
    leftovers = [p for p in os.listdir(cache_dir) if ".tmp-" in p]
    assert leftovers == []
