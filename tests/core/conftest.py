"""Small FITS files for the core tests, written once per session."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits


def tan_header(crpix: tuple[float, float], cd: np.ndarray) -> fits.Header:
    header = fits.Header()
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CRVAL1"] = 150.1
    header["CRVAL2"] = 2.2
    header["CRPIX1"] = crpix[0]
    header["CRPIX2"] = crpix[1]
    header["CD1_1"] = cd[0, 0]
    header["CD1_2"] = cd[0, 1]
    header["CD2_1"] = cd[1, 0]
    header["CD2_2"] = cd[1, 1]
    return header


def rotated_cd(scale_deg: float = 0.2 / 3600, angle_deg: float = 7.0) -> np.ndarray:
    a = math.radians(angle_deg)
    return scale_deg * np.array([[-math.cos(a), math.sin(a)], [math.sin(a), math.cos(a)]])


@dataclass
class MosaicSpec:
    path: Path
    # Per CCD (HDU index 1..n): DETSEC (x1, x2, y1, y2) and active size (ny, nx).
    detsecs: list[tuple[int, int, int, int]]
    frame_shape: tuple[int, int]
    start: tuple[int, int]
    # Per CCD: columns of overscan before the data in the file (DATASEC x start - 1).
    data_x0: list[int]


def write_mosaic(
    path: Path,
    ccd_ny: int = 100,
    ccd_nx: int = 60,
    overscan: int = 7,
    grid: tuple[int, int] = (2, 4),
    gap: int = 5,
    origin: tuple[int, int] = (1, 1),
    reversed_ccd: int = 5,
    reversed_y_ccd: int | None = None,
    wcs_form: str = "cd",
    left_overscan: tuple[int, ...] = (),
) -> MosaicSpec:
    rng = np.random.default_rng(42)
    cd = rotated_cd()
    # Global frame WCS (1-based frame pixels, frame origin at DETSEC minimum).
    global_crpix = (130.5, 101.25)
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [fits.PrimaryHDU()]
    hdus[0].header["OBJECT"] = "test mosaic"
    detsecs = []
    data_x0 = []
    for k in range(grid[0] * grid[1]):
        row, col = divmod(k, grid[1])
        x1 = origin[0] + col * (ccd_nx + gap)
        y1 = origin[1] + row * (ccd_ny + gap)
        x2, y2 = x1 + ccd_nx - 1, y1 + ccd_ny - 1
        xstep = -1 if k == reversed_ccd else 1
        ystep = -1 if k == reversed_y_ccd else 1
        if xstep < 0:
            x1, x2 = x2, x1
        if ystep < 0:
            y1, y2 = y2, y1
        raw = rng.normal(1000.0 + 10 * k, 5.0, (ccd_ny, ccd_nx + overscan)).astype(
            np.float32
        )
        # The CCDs of left_overscan have their overscan columns before the data.
        x0 = overscan if k in left_overscan else 0
        raw[:, :x0] = 300.0  # overscan: must never reach the frame
        raw[:, x0 + ccd_nx :] = 300.0
        raw[rng.integers(0, ccd_ny), x0 + rng.integers(0, ccd_nx)] = 50000.0
        # Frame pixel X (1-based, relative to the frame origin) of CCD pixel i is
        # x1 - ox + (i - 1) * xstep, so the CCD's own CRPIX follows.
        ox, oy = origin[0] - 1, origin[1] - 1
        crpix1 = x0 + 1 + (global_crpix[0] - (x1 - ox)) * xstep
        crpix2 = 1 + (global_crpix[1] - (y1 - oy)) * ystep
        ccd_cd = cd.copy()
        ccd_cd[:, 0] *= xstep
        ccd_cd[:, 1] *= ystep
        header = tan_header((crpix1, crpix2), ccd_cd)
        if wcs_form == "pc":
            cdelt = np.array([abs(ccd_cd[0, 0]) * 1.5, abs(ccd_cd[1, 1]) * 0.5])
            for i in range(2):
                for j in range(2):
                    del header[f"CD{i + 1}_{j + 1}"]
                    header[f"PC{i + 1}_{j + 1}"] = ccd_cd[i, j] / cdelt[i]
            header["CDELT1"], header["CDELT2"] = cdelt
        elif wcs_form == "crota":
            # The same matrix as CDELTi + CROTA2 (rho = -7 deg, see rotated_cd).
            scale = 0.2 / 3600
            for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
                del header[key]
            header["CDELT1"] = -scale * xstep
            header["CDELT2"] = scale * ystep
            header["CROTA2"] = -7.0
        header["EXTNAME"] = f"CCD{k + 1:02d}"
        header["DATASEC"] = f"[{x0 + 1}:{x0 + ccd_nx},1:{ccd_ny}]"
        header["DETSEC"] = f"[{x1}:{x2},{y1}:{y2}]"
        hdus.append(fits.ImageHDU(raw, header=header))
        detsecs.append((x1, x2, y1, y2))
        data_x0.append(x0)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    width = grid[1] * ccd_nx + (grid[1] - 1) * gap
    height = grid[0] * ccd_ny + (grid[0] - 1) * gap
    return MosaicSpec(
        path, detsecs, (height, width), (origin[1] - 1, origin[0] - 1), data_x0
    )


@pytest.fixture(scope="session")
def fits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fits")


@pytest.fixture(scope="session")
def prime_image(fits_dir: Path) -> Path:
    """983 x 1061 (x, y) float32 star-ish field with a TAN WCS."""
    rng = np.random.default_rng(1)
    data = rng.normal(200.0, 10.0, (1061, 983)).astype(np.float32)
    yy, xx = np.mgrid[0:1061, 0:983]
    for x0, y0 in rng.uniform(0, 1000, (30, 2)):
        data += (5000 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 8.0)).astype(np.float32)
    header = tan_header((491.0, 530.0), rotated_cd())
    header["OBJECT"] = "prime field"
    path = fits_dir / "prime.fits"
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.fixture(scope="session")
def cube_image(fits_dir: Path) -> Path:
    rng = np.random.default_rng(2)
    data = np.stack(
        [rng.normal(100.0 * (c + 1), 3.0 * (c + 1), (300, 400)) for c in range(3)]
    ).astype(np.float32)
    data[1, 100:110, 50:60] = 9000.0
    path = fits_dir / "cube.fits"
    fits.PrimaryHDU(data).writeto(path)
    return path


@pytest.fixture(scope="session")
def scaled_int16_image(fits_dir: Path) -> Path:
    rng = np.random.default_rng(3)
    raw = rng.integers(-30000, 30000, (257, 301)).astype(np.int16)
    raw[0, 0] = -32768  # BLANK
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.25
    hdu.header["BZERO"] = 1000.0
    hdu.header["BLANK"] = -32768
    path = fits_dir / "scaled.fits"
    # Write the raw integers untouched: the header carries the scaling.
    hdu.writeto(path)
    return path


@pytest.fixture(scope="session")
def compressed_image(fits_dir: Path) -> Path:
    rng = np.random.default_rng(4)
    data = rng.normal(500.0, 20.0, (333, 517)).astype(np.float32)
    path = fits_dir / "compressed.fits.fz"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")]
    ).writeto(path)
    return path


@pytest.fixture(scope="session")
def nan_image(fits_dir: Path) -> Path:
    rng = np.random.default_rng(5)
    data = rng.normal(10.0, 1.0, (400, 300)).astype(np.float32)
    data[50:120, 30:90] = np.nan
    data[300:302, :] = np.nan
    data[5, 5] = np.inf
    data[6, 6] = -np.inf
    path = fits_dir / "holes.fits"
    fits.PrimaryHDU(data).writeto(path)
    return path


@pytest.fixture(scope="session")
def mosaic_image(fits_dir: Path) -> MosaicSpec:
    return write_mosaic(fits_dir / "mosaic.fits")


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path
