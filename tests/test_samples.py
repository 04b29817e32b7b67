"""Tests of the synthetic FITS images of example_app.samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from example_app import samples
from example_app.samples import (
    ccd_mosaic,
    color_cube,
    star_field,
    write_atomic,
    write_samples,
)

SMALL = (200, 300)


def parse_section(text: str) -> tuple[int, int, int, int]:
    """Return x1, x2, y1, y2 of a FITS section '[x1:x2,y1:y2]'."""
    match = re.fullmatch(r"\[(\d+):(\d+),(\d+):(\d+)\]", text.strip())
    assert match, text
    x1, x2, y1, y2 = (int(v) for v in match.groups())
    return x1, x2, y1, y2


def robust_std(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64).ravel()
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def pixel_noise(image: np.ndarray) -> float:
    """Robust per-pixel noise from differences of adjacent pixels (gradient-free)."""
    image = image.astype(np.float64)
    return float(robust_std(image[:, 1:] - image[:, :-1]) / np.sqrt(2.0))


# --------------------------------------------------------------------------------------
# star_field
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_field() -> fits.HDUList:
    return star_field()


def test_star_field_shape_dtype_and_header(default_field: fits.HDUList) -> None:
    assert len(default_field) == 1
    hdu = default_field[0]
    assert isinstance(hdu, fits.PrimaryHDU)
    assert hdu.data.shape == (1536, 2048)
    assert hdu.data.dtype == np.float32
    header = hdu.header
    for key in ("OBJECT", "TELESCOP", "FILTER", "EXPTIME", "BUNIT", "DATE-OBS", "MJD-OBS"):
        assert key in header, key
    assert header["CTYPE1"] == "RA---TAN"
    assert header["CTYPE2"] == "DEC--TAN"
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        assert key in header
    assert "CDELT1" not in header and "PC1_1" not in header
    assert abs(header["CRPIX1"] - 1024.5) <= 1 and abs(header["CRPIX2"] - 768.5) <= 1
    # A small but non-zero rotation.
    assert header["CD1_2"] != 0.0 and abs(header["CD1_2"]) < 0.1 * abs(header["CD1_1"])


def test_star_field_wcs(default_field: fits.HDUList) -> None:
    header = default_field[0].header
    wcs = WCS(header)  # filterwarnings=error: must not warn
    assert wcs.naxis == 2
    assert wcs.wcs.ctype[0] == "RA---TAN" and wcs.wcs.ctype[1] == "DEC--TAN"
    ra, dec = wcs.all_pix2world([[header["CRPIX1"], header["CRPIX2"]]], 1)[0]
    assert ra == pytest.approx(150.1) and dec == pytest.approx(2.2)
    scales = wcs.proj_plane_pixel_scales()
    for scale in scales:
        assert scale.to_value("arcsec") == pytest.approx(0.2)
    # East left, north up: RA decreases with x, Dec increases with y.
    (ra0, dec0), (ra1, _), (_, dec2) = wcs.all_pix2world(
        [[100, 100], [200, 100], [100, 200]], 1
    )
    assert ra1 < ra0 and dec2 > dec0


def test_star_field_custom_wcs_parameters() -> None:
    hdul = star_field(SMALL, nstars=10, ngalaxies=1, center=(10.0, -45.0), pixel_scale=1e-4)
    wcs = WCS(hdul[0].header)
    assert tuple(wcs.wcs.crval) == (10.0, -45.0)
    assert wcs.proj_plane_pixel_scales()[0].to_value("deg") == pytest.approx(1e-4)
    assert hdul[0].data.shape == SMALL


def test_star_field_noise_and_sky() -> None:
    data = star_field((512, 512), nstars=50, ngalaxies=0, seed=7)[0].data
    header = star_field((8, 8), nstars=0, ngalaxies=0)[0].header
    sky, gain, rdnoise = header["SKYLEVEL"], header["GAIN"], header["RDNOISE"]
    assert sky == pytest.approx(1000.0)
    assert np.median(data) == pytest.approx(sky, rel=0.03)
    expected = np.sqrt(sky / gain + (rdnoise / gain) ** 2)
    assert pixel_noise(data) == pytest.approx(expected, rel=0.08)
    assert np.isfinite(data).all()


def test_star_field_saturation(default_field: fits.HDUList) -> None:
    data = default_field[0].data
    saturate = default_field[0].header["SATURATE"]
    assert data.max() == pytest.approx(saturate)
    assert 0 < np.count_nonzero(data >= saturate) < 0.001 * data.size
    # Stars make a heavy bright tail above the sky.
    assert np.percentile(data, 99.9) > 2000


def test_star_field_deterministic() -> None:
    a = star_field(SMALL, nstars=300, ngalaxies=3, seed=11)[0].data
    b = star_field(SMALL, nstars=300, ngalaxies=3, seed=11)[0].data
    c = star_field(SMALL, nstars=300, ngalaxies=3, seed=12)[0].data
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint16, np.int16])
def test_star_field_dtypes(dtype: type) -> None:
    data = star_field(SMALL, nstars=300, ngalaxies=3, seed=5, dtype=dtype)[0].data
    assert data.dtype == np.dtype(dtype)
    reference = star_field(SMALL, nstars=300, ngalaxies=3, seed=5)[0].data
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        expected = np.clip(np.rint(reference), info.min, info.max)
        assert np.array_equal(data, expected)
    else:
        assert np.array_equal(data, reference)


def test_star_field_edge_cases() -> None:
    empty = star_field((16, 16), nstars=0, ngalaxies=0)[0].data
    assert empty.shape == (16, 16)
    with pytest.raises(ValueError):
        star_field((0, 10))
    with pytest.raises(ValueError):
        star_field(SMALL, nstars=-1)


def test_star_field_roundtrip(tmp_path: Path) -> None:
    hdul = star_field(SMALL, nstars=100, ngalaxies=2)
    path = tmp_path / "field.fits"
    write_atomic(hdul, path)
    with fits.open(path) as read:
        read.verify("exception")
        assert np.array_equal(read[0].data, hdul[0].data)
        WCS(read[0].header)


# --------------------------------------------------------------------------------------
# color_cube
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_cube() -> fits.HDUList:
    return color_cube()


def block_residuals(plane: np.ndarray, block: int = 64) -> np.ndarray:
    """Block medians minus a fitted smooth quadratic surface."""
    ny, nx = plane.shape[0] // block, plane.shape[1] // block
    cut = plane[: ny * block, : nx * block].astype(np.float64)
    medians = np.median(
        cut.reshape(ny, block, nx, block).transpose(0, 2, 1, 3), axis=(2, 3)
    )
    v, u = np.mgrid[0:ny, 0:nx]
    u, v = u.ravel() / max(nx - 1, 1), v.ravel() / max(ny - 1, 1)
    design = np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=1)
    coef, *_ = np.linalg.lstsq(design, medians.ravel(), rcond=None)
    return np.asarray(medians.ravel() - design @ coef)


def test_color_cube_shape_and_header(default_cube: fits.HDUList) -> None:
    hdu = default_cube[0]
    assert hdu.data.shape == (3, 1024, 1024)
    assert hdu.data.dtype == np.float32
    header = hdu.header
    assert header["NAXIS"] == 3 and header["NAXIS3"] == 3
    for key in ("OBJECT", "TELESCOP", "FILTER", "EXPTIME", "BUNIT", "DATE-OBS"):
        assert key in header, key
    for k in (1, 2, 3):
        assert f"FILTER{k}" in header and f"SKYLEV{k}" in header
    wcs = WCS(header)  # no warnings
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN", "BAND"]
    celestial = wcs.celestial
    assert celestial.naxis == 2
    ra, dec = celestial.all_pix2world([[header["CRPIX1"], header["CRPIX2"]]], 1)[0]
    assert (ra, dec) == pytest.approx((header["CRVAL1"], header["CRVAL2"]))
    # The third axis gives the 1-based band number.
    assert wcs.all_pix2world([[1, 1, 3]], 1)[0][2] == pytest.approx(3.0)


def test_color_cube_bands(default_cube: fits.HDUList) -> None:
    data = default_cube[0].data
    header = default_cube[0].header
    skies = [header[f"SKYLEV{k + 1}"] for k in range(3)]
    assert len(set(skies)) == 3
    for plane, sky in zip(data, skies, strict=True):
        assert np.median(plane) == pytest.approx(sky, rel=0.05)
    # Same stars everywhere: the brightest pixels of the bands coincide mostly.
    masks = [plane - np.median(plane) > 20 * pixel_noise(plane) for plane in data]
    overlap = np.count_nonzero(masks[0] & masks[2]) / np.count_nonzero(masks[0] | masks[2])
    assert overlap > 0.3
    # Different colours: the band-to-band flux ratio of the stars varies.
    assert not np.allclose(data[0] - skies[0], data[2] - skies[2], atol=100)
    # The nebula stands out of the smooth sky mostly in the second band.
    peaks = [block_residuals(plane).max() for plane in data]
    assert peaks[1] > 3 * peaks[0] and peaks[1] > 3 * peaks[2]


def test_color_cube_channels_and_determinism() -> None:
    one = color_cube((64, 96), nchannels=1, seed=4)[0]
    assert one.data.shape == (1, 64, 96)
    WCS(one.header)
    six = color_cube((64, 96), nchannels=6, seed=4)[0]
    assert six.data.shape == (6, 64, 96)
    assert six.header["FILTER6"] == "B6"
    a = color_cube((128, 128), seed=9)[0].data
    b = color_cube((128, 128), seed=9)[0].data
    assert np.array_equal(a, b)
    assert not np.array_equal(a, color_cube((128, 128), seed=10)[0].data)
    with pytest.raises(ValueError):
        color_cube((64, 64), nchannels=0)


# --------------------------------------------------------------------------------------
# ccd_mosaic
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mosaic() -> fits.HDUList:
    return ccd_mosaic()


def global_wcs(hdul: fits.HDUList) -> WCS:
    """The frame WCS: MOSCRPX1/2 of the primary, CRVAL/CD of a non-reversed CCD."""
    normal = next(h for h in hdul[1:] if not is_reversed(h.header))
    header = fits.Header()
    header["NAXIS"] = 2
    for key in ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "RADESYS"):
        header[key] = normal.header[key]
    for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        header[key] = normal.header[key]
    header["CRPIX1"] = hdul[0].header["MOSCRPX1"]
    header["CRPIX2"] = hdul[0].header["MOSCRPX2"]
    return WCS(header)


def is_reversed(header: fits.Header) -> bool:
    x1, x2, _, _ = parse_section(header["DETSEC"])
    return x1 > x2


def test_mosaic_structure(mosaic: fits.HDUList) -> None:
    assert len(mosaic) == 9
    primary = mosaic[0]
    assert isinstance(primary, fits.PrimaryHDU) and primary.data is None
    for key in ("OBJECT", "TELESCOP", "FILTER", "EXPTIME", "DATE-OBS", "DETSIZE"):
        assert key in primary.header
    assert primary.header["NEXTEND"] == 8
    names = [hdu.name for hdu in mosaic[1:]]
    assert names == [f"CCD{k:02d}" for k in range(1, 9)]
    for hdu in mosaic[1:]:
        assert isinstance(hdu, fits.ImageHDU)
        assert hdu.data.shape == (512, 256 + 32)
        header = hdu.header
        assert header["DATASEC"] == "[1:256,1:512]"
        assert header["BIASSEC"] == "[257:288,1:512]"
        for key in ("GAIN", "RDNOISE", "CCDSEC", "DETSEC"):
            assert key in header
        WCS(header)  # no warnings


def test_mosaic_sections(mosaic: fits.HDUList) -> None:
    frame_x1, frame_x2, frame_y1, frame_y2 = parse_section(mosaic[0].header["DETSIZE"])
    assert (frame_x1, frame_y1) == (1, 1)
    assert (frame_x2, frame_y2) == (4 * 256 + 3 * 8, 2 * 512 + 8)
    covered = np.zeros((frame_y2, frame_x2), dtype=np.int32)
    reversed_ = []
    for k, hdu in enumerate(mosaic[1:]):
        dx1, dx2, dy1, dy2 = parse_section(hdu.header["DATASEC"])
        x1, x2, y1, y2 = parse_section(hdu.header["DETSEC"])
        assert abs(x2 - x1) == dx2 - dx1 and abs(y2 - y1) == dy2 - dy1
        assert y2 > y1
        if x1 > x2:
            reversed_.append(k)
            assert parse_section(hdu.header["CCDSEC"])[:2] == (256, 1)
        xa, xb = sorted((x1, x2))
        assert 1 <= xa and xb <= frame_x2 and 1 <= y1 and y2 <= frame_y2
        covered[y1 - 1 : y2, xa - 1 : xb] += 1
    assert covered.max() == 1  # no overlap
    assert reversed_ == [5]
    # Gaps of 8 pixels between the CCDs.
    assert np.count_nonzero(covered) == 8 * 512 * 256
    assert not covered[:, 256:264].any() and not covered[512:520, :].any()


def test_mosaic_ccd_wcs_matches_global_wcs(mosaic: fits.HDUList) -> None:
    frame = global_wcs(mosaic)
    rng = np.random.default_rng(0)
    for hdu in mosaic[1:]:
        header = hdu.header
        ccd = WCS(header)
        dx1, dx2, dy1, dy2 = parse_section(header["DATASEC"])
        x1, x2, y1, y2 = parse_section(header["DETSEC"])
        i = rng.integers(dx1, dx2 + 1, 200).astype(float)  # 1-based CCD pixels
        j = rng.integers(dy1, dy2 + 1, 200).astype(float)
        i = np.concatenate([i, [dx1, dx2, dx1, dx2]])
        j = np.concatenate([j, [dy1, dy1, dy2, dy2]])
        step = 1 if x2 >= x1 else -1
        fx = x1 + step * (i - dx1)
        fy = y1 + (j - dy1)
        ccd_sky = ccd.all_pix2world(np.column_stack([i, j]), 1)
        frame_sky = frame.all_pix2world(np.column_stack([fx, fy]), 1)
        assert np.abs(ccd_sky - frame_sky).max() < 1e-9, hdu.name
        # And back: the frame position of a sky point lands on the same CCD pixel.
        back = ccd.all_world2pix(frame_sky, 1)
        assert np.abs(back - np.column_stack([i, j])).max() < 1e-6


def test_mosaic_reversed_ccd_is_flipped_copy() -> None:
    normal = ccd_mosaic(reversed_ccd=None)
    flipped = ccd_mosaic(reversed_ccd=5)
    assert not any(is_reversed(h.header) for h in normal[1:])
    for k in range(8):
        a, b = normal[k + 1].data, flipped[k + 1].data
        if k == 5:
            assert np.array_equal(b[:, :256], a[:, :256][:, ::-1])
            assert np.array_equal(b[:, 256:], a[:, 256:])
            assert not np.array_equal(a, b)
        else:
            assert np.array_equal(a, b)


def test_mosaic_levels(mosaic: fits.HDUList) -> None:
    biases, gains = [], []
    for hdu in mosaic[1:]:
        data = hdu.data.astype(np.float64)
        header = hdu.header
        overscan, active = data[:, 256:], data[:, :256]
        bias = np.median(overscan)
        biases.append(bias)
        gains.append(header["GAIN"])
        # Overscan: bias and read noise only.
        assert np.std(overscan) == pytest.approx(
            header["RDNOISE"] / header["GAIN"], rel=0.1
        )
        # The sky (~1500 e-) is well above the bias.
        sky_e = (np.median(active) - bias) * header["GAIN"]
        assert 1200 < sky_e < 1800
    assert len(set(np.round(biases))) == 8
    assert len(set(gains)) == 8


def test_mosaic_other_layouts() -> None:
    hdul = ccd_mosaic(ccd_shape=(64, 48), grid=(3, 2), overscan=0, reversed_ccd=0, gap=0)
    assert len(hdul) == 7
    assert "BIASSEC" not in hdul[1].header
    assert hdul[1].data.shape == (64, 48)
    assert hdul[1].header["DETSEC"] == "[48:1,1:64]"
    assert hdul[6].header["DETSEC"] == "[49:96,129:192]"
    frame = global_wcs(hdul)
    for hdu in hdul[1:]:
        x1, x2, y1, _ = parse_section(hdu.header["DETSEC"])
        step = 1 if x2 >= x1 else -1
        ccd_sky = WCS(hdu.header).all_pix2world([[1.0, 1.0], [48.0, 64.0]], 1)
        frame_sky = frame.all_pix2world([[x1, y1], [x1 + step * 47, y1 + 63]], 1)
        assert np.abs(ccd_sky - frame_sky).max() < 1e-9
    with pytest.raises(ValueError):
        ccd_mosaic(reversed_ccd=8)
    with pytest.raises(ValueError):
        ccd_mosaic(reversed_ccd=-1)


def test_mosaic_deterministic() -> None:
    a = ccd_mosaic(ccd_shape=(64, 32), seed=21)
    b = ccd_mosaic(ccd_shape=(64, 32), seed=21)
    c = ccd_mosaic(ccd_shape=(64, 32), seed=22)
    assert all(np.array_equal(x.data, y.data) for x, y in zip(a[1:], b[1:], strict=True))
    assert not all(
        np.array_equal(x.data, y.data) for x, y in zip(a[1:], c[1:], strict=True)
    )


def test_mosaic_roundtrip(tmp_path: Path) -> None:
    hdul = ccd_mosaic(ccd_shape=(64, 32))
    path = tmp_path / "mosaic.fits"
    write_atomic(hdul, path)
    with fits.open(path) as read:
        read.verify("exception")
        assert len(read) == 9
        for a, b in zip(hdul[1:], read[1:], strict=True):
            assert b.data.dtype == np.uint16
            assert np.array_equal(a.data, b.data)
            assert b.header["DETSEC"] == a.header["DETSEC"]


# --------------------------------------------------------------------------------------
# write_atomic / write_samples
# --------------------------------------------------------------------------------------


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.fits"
    write_atomic(star_field((16, 16), nstars=0, ngalaxies=0, seed=1), path)
    write_atomic(star_field((24, 16), nstars=0, ngalaxies=0, seed=2), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits"]
    with fits.open(path) as read:
        assert read[0].data.shape == (24, 16)


def test_write_atomic_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.fits"
    write_atomic(star_field((16, 16), nstars=0, ngalaxies=0), path)
    before = path.read_bytes()
    hdul = star_field((32, 32), nstars=0, ngalaxies=0)

    def broken_writeto(fileobj: object, *args: object, **kwargs: object) -> None:
        fileobj.write(b"SIMPLE  =  partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(hdul, "writeto", broken_writeto)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(hdul, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits"]


def test_write_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "nested" / "samples"
    paths = write_samples(folder)
    assert [p.name for p in paths] == ["starfield.fits", "cube.fits", "mosaic.fits"]
    assert all(p.parent == folder and p.is_file() for p in paths)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)
    with fits.open(paths[0]) as hdul:
        assert hdul[0].data.shape == (1536, 2048)
        assert np.array_equal(hdul[0].data, star_field()[0].data)
    with fits.open(paths[1]) as hdul:
        assert hdul[0].data.shape == (3, 1024, 1024)
    with fits.open(paths[2]) as hdul:
        assert len(hdul) == 9

    # Existing files are kept, only the missing ones are written.
    def fail(*args: object, **kwargs: object) -> fits.HDUList:
        raise AssertionError("must not regenerate an existing sample")

    mtimes = [p.stat().st_mtime_ns for p in paths]
    paths[1].unlink()
    monkeypatch.setattr(samples, "star_field", fail)
    monkeypatch.setattr(samples, "ccd_mosaic", fail)
    assert write_samples(folder) == paths
    assert paths[1].is_file()
    assert [paths[0].stat().st_mtime_ns, paths[2].stat().st_mtime_ns] == [
        mtimes[0],
        mtimes[2],
    ]
    with fits.open(paths[1]) as hdul:
        assert hdul[0].data.shape == (3, 1024, 1024)
