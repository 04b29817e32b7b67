"""Synthetic astronomical FITS images for the demo, the tests and the benchmarks.

Three kinds of images are made, all deterministic for a given ``seed``:

* :func:`star_field`: one 2-D image of a star field with galaxies, sky and noise;
* :func:`color_cube`: a 3-D cube, the same field seen in several bands;
* :func:`ccd_mosaic`: a raw multi-extension CCD mosaic (overscan strips, one CCD read
  out in reverse), each CCD with its own WCS.

Every image carries a clean TAN WCS (``CD`` matrix form) that astropy reads
without any warning.

Mosaic geometry
---------------
``ccd_mosaic`` places the CCDs in a frame whose pixel coordinates are those of
the ``DETSEC`` keywords (1-based, FITS order). The frame has a global TAN WCS
whose ``CRVAL``, ``CTYPE`` and ``CD`` are those of every non-reversed CCD and
whose reference pixel is stored in the primary header as ``MOSCRPX1`` and
``MOSCRPX2`` (frame pixel coordinates); ``DETSIZE`` gives the frame size. A
CCD pixel ``(i, j)`` of ``DATASEC`` sits at the frame pixel given by the
``DETSEC`` mapping, and its own WCS gives exactly the sky position of that
frame pixel in the global WCS.

Speed and memory
----------------
Stars are rendered in batches of small stamps (25 x 25 pixels, 41 x 41 for
bright ones) added with :func:`numpy.add.at`; galaxies and nebulae are
rendered in their own bounding boxes; the sky and the noise are made in
stripes of rows. Only the float32 image itself is ever held in full.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import DTypeLike, NDArray

__all__ = [
    "ccd_mosaic",
    "color_cube",
    "star_field",
    "write_atomic",
    "write_samples",
]

# Point spread function: Moffat profile.
MOFFAT_BETA = 3.0
PSF_FWHM = 3.0  # pixels

# Star field detector model.
SKY_LEVEL = 1000.0  # ADU, nominal sky at the image centre
GAIN = 1.5  # e-/ADU
READ_NOISE = 6.0  # e-
SATURATION = 60000.0  # ADU

# Half sizes of the star stamps (25 x 25 and 41 x 41 pixels).
_STAMP_HALF = 12
_BRIGHT_STAMP_HALF = 20
_BRIGHT_FLUX = 1.0e5  # ADU; stars above this get the large stamp
_STAR_BATCH = 2048  # stars rendered at once
_NOISE_ROWS = 256  # rows of sky + noise made at once

_TELESCOPE = "FITSTILES-SIM 1.0m"
_INSTRUMENT = "SYNTHCAM"
_BAND_NAMES = ("g", "r", "i", "z", "y")


# --------------------------------------------------------------------------------------
# Header helpers
# --------------------------------------------------------------------------------------


def _mjd(date_obs: str) -> float:
    """Return the modified Julian date of an ISO ``DATE-OBS`` string.

    Parameters
    ----------
    date_obs : str
        Date and time, ``YYYY-MM-DDThh:mm:ss[.sss]``.

    Returns
    -------
    float
        The modified Julian date (days since 1858-11-17T00:00:00).
    """
    delta = datetime.fromisoformat(date_obs) - datetime(1858, 11, 17)
    return delta.days + (delta.seconds + delta.microseconds * 1e-6) / 86400.0


def _cd_matrix(pixel_scale: float, rotation_deg: float) -> NDArray[np.float64]:
    """Return a CD matrix with north up, east left, rotated by ``rotation_deg``.

    Parameters
    ----------
    pixel_scale : float
        Pixel size in degrees.
    rotation_deg : float
        Position angle of the y axis east of north, in degrees.

    Returns
    -------
    numpy.ndarray
        The (2, 2) matrix ``[[CD1_1, CD1_2], [CD2_1, CD2_2]]`` in degrees/pixel.
    """
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    return pixel_scale * np.array([[-c, s], [s, c]])


def _wcs_cards(
    crpix: tuple[float, float],
    crval: tuple[float, float],
    cd: NDArray[np.float64],
) -> list[tuple[str, object, str]]:
    """Return the header cards of a 2-D TAN WCS in the CD matrix form.

    Parameters
    ----------
    crpix : tuple[float, float]
        Reference pixel (x, y), 1-based.
    crval : tuple[float, float]
        Right ascension and declination of the reference pixel, degrees.
    cd : numpy.ndarray
        The (2, 2) CD matrix, degrees/pixel.

    Returns
    -------
    list of tuple
        ``(keyword, value, comment)`` cards.
    """
    return [
        ("WCSAXES", 2, "Number of WCS axes"),
        ("CTYPE1", "RA---TAN", "Gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "Gnomonic projection"),
        ("CUNIT1", "deg", "Unit of CRVAL1 and CD1_j"),
        ("CUNIT2", "deg", "Unit of CRVAL2 and CD2_j"),
        ("CRVAL1", float(crval[0]), "[deg] RA of the reference pixel"),
        ("CRVAL2", float(crval[1]), "[deg] Dec of the reference pixel"),
        ("CRPIX1", float(crpix[0]), "Reference pixel, x"),
        ("CRPIX2", float(crpix[1]), "Reference pixel, y"),
        ("CD1_1", float(cd[0, 0]), "[deg/pixel] d(RA)/dx"),
        ("CD1_2", float(cd[0, 1]), "[deg/pixel] d(RA)/dy"),
        ("CD2_1", float(cd[1, 0]), "[deg/pixel] d(Dec)/dx"),
        ("CD2_2", float(cd[1, 1]), "[deg/pixel] d(Dec)/dy"),
        ("RADESYS", "ICRS", "Celestial reference frame"),
    ]


def _observation_cards(
    obj: str, band: str, exptime: float, date_obs: str, bunit: str = "adu"
) -> list[tuple[str, object, str]]:
    """Return the descriptive header cards of an observation.

    Parameters
    ----------
    obj : str
        Object name.
    band : str
        Filter name.
    exptime : float
        Exposure time in seconds.
    date_obs : str
        ISO date and time of the start of the exposure (UTC).
    bunit : str, optional
        Unit of the pixel values.

    Returns
    -------
    list of tuple
        ``(keyword, value, comment)`` cards.
    """
    return [
        ("OBJECT", obj, "Name of the observed object"),
        ("TELESCOP", _TELESCOPE, "Telescope"),
        ("INSTRUME", _INSTRUMENT, "Instrument"),
        ("FILTER", band, "Filter"),
        ("EXPTIME", float(exptime), "[s] Exposure time"),
        ("DATE-OBS", date_obs, "Start of the exposure (UTC)"),
        ("MJD-OBS", round(_mjd(date_obs), 8), "[d] Modified Julian date of DATE-OBS"),
        ("BUNIT", bunit, "Unit of the pixel values"),
        ("ORIGIN", "flask_fitstiles example_app.samples", "Synthetic data"),
    ]


# --------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------


def _moffat_alpha(fwhm: float, beta: float) -> float:
    """Return the Moffat core width ``alpha`` for a given FWHM and ``beta``."""
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _star_stamps(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    shape: tuple[int, int],
    half: int,
    fwhm: float = PSF_FWHM,
    beta: float = MOFFAT_BETA,
) -> Iterator[
    tuple[slice, NDArray[np.intp], NDArray[np.float32], NDArray[np.bool_] | None]
]:
    """Yield batches of unit-flux Moffat stamps and the flat indices they cover.

    Parameters
    ----------
    x, y : numpy.ndarray
        Star centres, 0-based pixel coordinates (pixel centres at integers).
    shape : tuple[int, int]
        Image shape (ny, nx).
    half : int
        Stamp half size: stamps are ``2 * half + 1`` pixels on a side.
    fwhm : float, optional
        PSF full width at half maximum, pixels.
    beta : float, optional
        Moffat ``beta``.

    Yields
    ------
    batch : slice
        The stars of this batch.
    index : numpy.ndarray
        (nbatch, side, side) flat indices into the image.
    profile : numpy.ndarray
        (nbatch, side, side) float32 unit-flux profiles.
    valid : numpy.ndarray or None
        Mask of the stamp pixels inside the image; None when all are.
    """
    ny, nx = shape
    alpha = _moffat_alpha(fwhm, beta)
    norm = (beta - 1.0) / (math.pi * alpha * alpha)
    inv_a2 = np.float32(1.0 / (alpha * alpha))
    offsets = np.arange(-half, half + 1, dtype=np.intp)
    for start in range(0, len(x), _STAR_BATCH):
        batch = slice(start, min(start + _STAR_BATCH, len(x)))
        xb, yb = x[batch], y[batch]
        ix = np.rint(xb).astype(np.intp)[:, None] + offsets  # (B, S)
        iy = np.rint(yb).astype(np.intp)[:, None] + offsets
        dx2 = ((ix - xb[:, None]) ** 2).astype(np.float32) * inv_a2
        dy2 = ((iy - yb[:, None]) ** 2).astype(np.float32) * inv_a2
        t = dy2[:, :, None] + dx2[:, None, :]
        t += np.float32(1.0)
        if beta == 3.0:
            profile = t * t
            profile *= t
            np.reciprocal(profile, out=profile)
        else:
            profile = np.power(t, np.float32(-beta))
        profile *= np.float32(norm)
        index = iy[:, :, None] * nx + ix[:, None, :]
        vx = (ix >= 0) & (ix < nx)
        vy = (iy >= 0) & (iy < ny)
        valid: NDArray[np.bool_] | None = None
        if not (vx.all() and vy.all()):
            valid = vy[:, :, None] & vx[:, None, :]
        yield batch, index, profile, valid


def _add_stars(
    images: Sequence[NDArray[np.float32]],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    fluxes: NDArray[np.float64],
    half: int,
) -> None:
    """Add stars to one or several images of the same shape, in place.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        C-contiguous float32 (ny, nx) images.
    x, y : numpy.ndarray
        Star centres, 0-based pixel coordinates.
    fluxes : numpy.ndarray
        (len(images), nstars) total fluxes of the stars in every image.
    half : int
        Stamp half size.
    """
    if len(x) == 0:
        return
    flats = [image.reshape(-1) for image in images]
    for batch, index, profile, valid in _star_stamps(x, y, images[0].shape, half):
        idx = index.ravel() if valid is None else index[valid]
        for flat, flux in zip(flats, fluxes, strict=True):
            values = profile * flux[batch].astype(np.float32)[:, None, None]
            np.add.at(flat, idx, values.ravel() if valid is None else values[valid])


def _sersic_b(n: float) -> float:
    """Return the Sersic ``b_n`` making ``r_e`` the half-light radius (approximation)."""
    return 2.0 * n - 1.0 / 3.0 + 0.009876 / n


def _add_galaxies(
    images: Sequence[NDArray[np.float32]],
    rng: np.random.Generator,
    count: int,
    flux_range: tuple[float, float],
    radius_range: tuple[float, float],
) -> None:
    """Add Sersic-like elliptical galaxies to images of the same shape, in place.

    With several images (bands), every galaxy gets a random colour: its flux
    changes by a random ratio (about 1.25) from one band to the next.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        Float32 (ny, nx) images.
    rng : numpy.random.Generator
        Random generator.
    count : int
        Number of galaxies.
    flux_range : tuple[float, float]
        Range of the total fluxes (log-uniform), in the middle band.
    radius_range : tuple[float, float]
        Range of the effective radii in pixels (log-uniform).
    """
    ny, nx = images[0].shape
    nimg = len(images)
    mid = (nimg - 1) / 2.0
    for _ in range(count):
        xc, yc = rng.uniform(0, nx), rng.uniform(0, ny)
        flux = math.exp(rng.uniform(math.log(flux_range[0]), math.log(flux_range[1])))
        re = math.exp(rng.uniform(math.log(radius_range[0]), math.log(radius_range[1])))
        n = rng.uniform(0.5, 4.0)
        q = rng.uniform(0.3, 1.0)
        theta = rng.uniform(0.0, math.pi)
        redness = rng.normal(1.25, 0.15)
        rmax = min(6.0 * re, 400.0)
        h = int(math.ceil(rmax))
        x0, x1 = max(int(xc) - h, 0), min(int(xc) + h + 1, nx)
        y0, y1 = max(int(yc) - h, 0), min(int(yc) + h + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        # Profile over the full (unclipped) stamp, so the flux normalisation does
        # not depend on where the image edge cuts it.
        sx = np.arange(int(xc) - h, int(xc) + h + 1, dtype=np.float32) - np.float32(xc)
        sy = np.arange(int(yc) - h, int(yc) + h + 1, dtype=np.float32) - np.float32(yc)
        c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        u = sx[None, :] * c + sy[:, None] * s
        v = (sy[:, None] * c - sx[None, :] * s) / np.float32(q)
        r = np.sqrt(u * u + v * v)
        bn = _sersic_b(n)
        profile = np.exp(
            np.float32(-bn) * ((r / np.float32(re)) ** np.float32(1.0 / n) - 1)
        )
        # Smooth taper to zero at rmax so the stamp edge never shows.
        taper = np.clip(1.0 - (r / np.float32(rmax)) ** 2, 0.0, None)
        profile *= taper * taper
        profile *= np.float32(flux / float(profile.sum()))
        cut = profile[
            y0 - (int(yc) - h) : y1 - (int(yc) - h), x0 - (int(xc) - h) : x1 - (int(xc) - h)
        ]
        for k, image in enumerate(images):
            image[y0:y1, x0:x1] += cut * np.float32(redness ** (k - mid))


def _star_catalogue(
    rng: np.random.Generator,
    shape: tuple[int, int],
    nstars: int,
    fmin: float,
    slope: float = 0.8,
    fmax: float = 3.0e7,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Draw star positions and power-law fluxes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    shape : tuple[int, int]
        Image shape (ny, nx); stars fall up to one stamp outside it too.
    nstars : int
        Number of stars.
    fmin : float
        Smallest flux.
    slope : float, optional
        Power-law index of the cumulative counts, ``N(> F) ~ F ** -slope``.
    fmax : float, optional
        Largest flux.

    Returns
    -------
    x, y, flux : numpy.ndarray
        Positions (0-based pixels) and total fluxes.
    """
    ny, nx = shape
    m = float(_STAMP_HALF)
    x = rng.uniform(-m, nx - 1 + m, nstars)
    y = rng.uniform(-m, ny - 1 + m, nstars)
    u = rng.uniform((fmin / fmax) ** slope, 1.0, nstars)
    flux = fmin * u ** (-1.0 / slope)
    return x, y, flux


def _render_stars(
    images: Sequence[NDArray[np.float32]],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    fluxes: NDArray[np.float64],
) -> None:
    """Add stars, with large stamps for the bright ones, to images in place.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        C-contiguous float32 (ny, nx) images.
    x, y : numpy.ndarray
        Star centres, 0-based pixel coordinates.
    fluxes : numpy.ndarray
        (len(images), nstars) fluxes.
    """
    bright = fluxes.max(axis=0) > _BRIGHT_FLUX
    faint = ~bright
    _add_stars(images, x[faint], y[faint], fluxes[:, faint], _STAMP_HALF)
    _add_stars(images, x[bright], y[bright], fluxes[:, bright], _BRIGHT_STAMP_HALF)


def _sky_terms(
    shape: tuple[int, int], level: float, gx: float, gy: float, vignetting: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return the separable row and column terms of a smooth sky.

    The sky is ``rows[:, None] + cols[None, :]``: a level, a linear gradient of
    relative amplitude ``gx``, ``gy`` from edge to edge, and a quadratic
    vignetting of relative depth ``vignetting`` at the corners.

    Parameters
    ----------
    shape : tuple[int, int]
        Image shape (ny, nx).
    level : float
        Sky level at the centre.
    gx, gy : float
        Relative gradient from the left to the right and the bottom to the top edge.
    vignetting : float
        Relative sky deficit at the corners.

    Returns
    -------
    rows, cols : numpy.ndarray
        Float32 terms of lengths ny and nx.
    """
    ny, nx = shape
    u = np.linspace(-1.0, 1.0, nx)
    v = np.linspace(-1.0, 1.0, ny)
    cols = level * (0.5 * gx * u - 0.5 * vignetting * u * u)
    rows = level * (1.0 + 0.5 * gy * v - 0.5 * vignetting * v * v)
    return rows.astype(np.float32), cols.astype(np.float32)


def _add_sky_and_noise(
    image: NDArray[np.float32],
    rng: np.random.Generator,
    sky: tuple[NDArray[np.float32], NDArray[np.float32]],
    gain: float,
    read_noise: float,
    saturation: float | None,
) -> None:
    """Add the sky, photon noise and read noise to an image, stripe by stripe.

    Parameters
    ----------
    image : numpy.ndarray
        Float32 (ny, nx) noise-free signal in ADU, modified in place.
    rng : numpy.random.Generator
        Random generator.
    sky : tuple of numpy.ndarray
        Row and column terms of the sky, see :func:`_sky_terms`.
    gain : float
        Gain in e-/ADU: the photon noise variance is ``signal / gain`` ADU^2.
    read_noise : float
        Read noise in e-.
    saturation : float or None
        Clip the result at this level.
    """
    rows, cols = sky
    inv_gain = np.float32(1.0 / gain)
    rn2 = np.float32((read_noise / gain) ** 2)
    for r0 in range(0, image.shape[0], _NOISE_ROWS):
        stripe = image[r0 : r0 + _NOISE_ROWS]
        stripe += rows[r0 : r0 + _NOISE_ROWS, None]
        stripe += cols[None, :]
        sigma = np.maximum(stripe, np.float32(0.0))
        sigma *= inv_gain
        sigma += rn2
        np.sqrt(sigma, out=sigma)
        noise = rng.standard_normal(stripe.shape, dtype=np.float32)
        sigma *= noise
        stripe += sigma
        if saturation is not None:
            np.minimum(stripe, np.float32(saturation), out=stripe)


def _to_dtype(image: NDArray[np.float32], dtype: DTypeLike) -> NDArray[np.generic]:
    """Convert an image to ``dtype``, rounding and clipping for integer types.

    The image is modified in place for integer types (to save memory).
    """
    target = np.dtype(dtype)
    if target == image.dtype:
        return image
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        np.rint(image, out=image)
        # Pixel values stay far below 2**24, so float32 bounds are exact enough.
        np.clip(image, info.min, info.max, out=image)
        return image.astype(target)
    return image.astype(target)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def star_field(
    shape: tuple[int, int] = (1536, 2048),
    nstars: int = 3000,
    ngalaxies: int = 40,
    seed: int = 1,
    dtype: DTypeLike = np.float32,
    center: tuple[float, float] = (150.1, 2.2),
    pixel_scale: float = 0.2 / 3600,
) -> fits.HDUList:
    """Return a synthetic star field image.

    The image has a sky of about ``SKY_LEVEL`` ADU with a smooth gradient and
    vignetting, Moffat stars (``beta = 3``, FWHM 3 pixels) with a power-law
    flux distribution (a few of them saturated at ``SATURATION``), Sersic-like
    galaxies, Gaussian read noise and Gaussian-approximated photon noise.

    Parameters
    ----------
    shape : tuple[int, int], optional
        Image shape (ny, nx).
    nstars : int, optional
        Number of stars (a few fall just outside the image).
    ngalaxies : int, optional
        Number of galaxies.
    seed : int, optional
        Seed of the random generator; equal seeds give equal images.
    dtype : data-type, optional
        Pixel type; integer types are rounded and clipped to their range.
    center : tuple[float, float], optional
        Right ascension and declination of the image centre, degrees.
    pixel_scale : float, optional
        Pixel size, degrees.

    Returns
    -------
    astropy.io.fits.HDUList
        One primary image HDU with a TAN WCS and the keywords OBJECT, TELESCOP,
        INSTRUME, FILTER, EXPTIME, DATE-OBS, MJD-OBS, BUNIT, GAIN, RDNOISE,
        SATURATE and SKYLEVEL.

    Raises
    ------
    ValueError
        If the shape or a count is not valid.
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    if ny < 1 or nx < 1 or nstars < 0 or ngalaxies < 0:
        raise ValueError(f"invalid star field: shape {shape}, {nstars} stars")
    rng = np.random.default_rng(seed)
    image = np.zeros((ny, nx), dtype=np.float32)

    x, y, flux = _star_catalogue(rng, (ny, nx), nstars, fmin=300.0)
    _render_stars([image], x, y, flux[None, :])
    _add_galaxies([image], rng, ngalaxies, (3.0e4, 2.0e6), (2.0, 25.0))
    sky = _sky_terms((ny, nx), SKY_LEVEL, gx=0.10, gy=-0.06, vignetting=0.04)
    _add_sky_and_noise(image, rng, sky, GAIN, READ_NOISE, SATURATION)
    data = _to_dtype(image, dtype)
    del image

    hdu = fits.PrimaryHDU(data)
    header = hdu.header
    for card in _observation_cards(
        "Synthetic star field", "r", 120.0, "2024-03-14T05:12:33.000"
    ):
        header.append(card)
    header.append(("GAIN", GAIN, "[e-/adu] Detector gain"))
    header.append(("RDNOISE", READ_NOISE, "[e-] Read noise"))
    header.append(("SATURATE", SATURATION, "[adu] Saturation level"))
    header.append(("SKYLEVEL", SKY_LEVEL, "[adu] Sky level at the image centre"))
    header.append(("SEEING", PSF_FWHM, "[pixel] PSF FWHM (Moffat, beta=3)"))
    cd = _cd_matrix(pixel_scale, 1.2)
    for card in _wcs_cards((nx / 2.0 + 0.5, ny / 2.0 + 0.5), center, cd):
        header.append(card)
    return fits.HDUList([hdu])


def color_cube(
    shape: tuple[int, int] = (1024, 1024),
    nchannels: int = 3,
    seed: int = 2,
) -> fits.HDUList:
    """Return a synthetic cube: the same field seen in several bands.

    Stars and galaxies sit at the same positions in every band, with random
    colours; every band has its own sky level; an extended nebula is much
    brighter in one band (the second, like an H-alpha nebula in r; the first
    when there is only one band).

    Parameters
    ----------
    shape : tuple[int, int], optional
        Image shape (ny, nx) of every band.
    nchannels : int, optional
        Number of bands, the FITS NAXIS3.
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    astropy.io.fits.HDUList
        One primary float32 (nchannels, ny, nx) image HDU with a TAN WCS on the
        first two axes and a linear third axis (``CTYPE3 = 'BAND'``, world value
        = 1-based band number), and per band ``k`` (1-based) the keywords
        ``FILTERk`` and ``SKYLEVk``.

    Raises
    ------
    ValueError
        If the shape or the number of channels is not valid.
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    if ny < 1 or nx < 1 or nchannels < 1:
        raise ValueError(f"invalid cube: shape {shape}, {nchannels} channels")
    rng = np.random.default_rng(seed)
    cube = np.zeros((nchannels, ny, nx), dtype=np.float32)
    planes = [cube[k] for k in range(nchannels)]
    mid = (nchannels - 1) / 2.0

    nstars = max(1, int(ny * nx * 6e-4))
    x, y, flux = _star_catalogue(rng, (ny, nx), nstars, fmin=300.0)
    # Colour index: the flux ratio from one band to the next is 10 ** (0.4 * color).
    color = rng.normal(0.5, 0.45, nstars)
    steps = np.arange(nchannels) - mid
    fluxes = flux[None, :] * 10.0 ** (0.4 * color[None, :] * steps[:, None])
    _render_stars(planes, x, y, fluxes)
    _add_galaxies(planes, rng, max(1, int(ny * nx * 1.2e-5)), (3.0e4, 1.5e6), (2.0, 20.0))

    # Nebula: a clump of elongated Gaussian blobs.
    bright = 1 if nchannels > 1 else 0
    neb_x = rng.uniform(0.3, 0.7) * nx
    neb_y = rng.uniform(0.3, 0.7) * ny
    size = 0.12 * min(nx, ny)
    for _ in range(24):
        bx = neb_x + rng.normal(0.0, size)
        by = neb_y + rng.normal(0.0, size)
        sa = size * rng.uniform(0.15, 0.6)
        sb = sa * rng.uniform(0.3, 1.0)
        angle = rng.uniform(0.0, math.pi)
        amplitude = rng.uniform(40.0, 220.0)
        h = int(math.ceil(4.0 * sa))
        x0, x1 = max(int(bx) - h, 0), min(int(bx) + h + 1, nx)
        y0, y1 = max(int(by) - h, 0), min(int(by) + h + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        sx = np.arange(x0, x1, dtype=np.float32) - np.float32(bx)
        sy = np.arange(y0, y1, dtype=np.float32) - np.float32(by)
        c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        u = (sx[None, :] * c + sy[:, None] * s) / np.float32(sa)
        v = (sy[:, None] * c - sx[None, :] * s) / np.float32(sb)
        blob = np.exp(np.float32(-0.5) * (u * u + v * v))
        for k, plane in enumerate(planes):
            scale = amplitude if k == bright else amplitude * 0.12 * (1.0 + 0.3 * k)
            plane[y0:y1, x0:x1] += blob * np.float32(scale)

    skies = [600.0 + 400.0 * k for k in range(nchannels)]
    for k, plane in enumerate(planes):
        sky = _sky_terms((ny, nx), skies[k], gx=0.05 * (k + 1), gy=0.04, vignetting=0.03)
        _add_sky_and_noise(plane, rng, sky, GAIN, READ_NOISE, SATURATION)

    bands = [
        _BAND_NAMES[k] if nchannels <= len(_BAND_NAMES) else f"B{k + 1}"
        for k in range(nchannels)
    ]
    hdu = fits.PrimaryHDU(cube)
    header = hdu.header
    obs = _observation_cards(
        "Synthetic colour field", ",".join(bands)[:68], 300.0, "2024-05-02T22:40:05.500"
    )
    for card in obs:
        header.append(card)
    header.append(("GAIN", GAIN, "[e-/adu] Detector gain"))
    header.append(("RDNOISE", READ_NOISE, "[e-] Read noise"))
    header.append(("SATURATE", SATURATION, "[adu] Saturation level"))
    for k in range(nchannels):
        header.append((f"FILTER{k + 1}", bands[k], f"Filter of plane {k + 1}"))
        header.append((f"SKYLEV{k + 1}", skies[k], f"[adu] Sky level of plane {k + 1}"))
    cd = _cd_matrix(0.25 / 3600, 0.8)
    cards = _wcs_cards((nx / 2.0 + 0.5, ny / 2.0 + 0.5), (83.82, -5.39), cd)
    # A third, linear WCS axis: the 1-based band number (astropy gives a cube
    # three WCS axes anyway, and would otherwise have to "fix" the header).
    cards[0] = ("WCSAXES", 3, "Number of WCS axes")
    cards[3:3] = [("CTYPE3", "BAND", "Linear axis: band number (see FILTERk)")]
    cards += [
        ("CRVAL3", 1.0, "Band number of the first plane"),
        ("CRPIX3", 1.0, "Reference plane"),
        ("CD3_3", 1.0, "Band number step from plane to plane"),
    ]
    for card in cards:
        header.append(card)
    return fits.HDUList([hdu])


def _section(x1: int, x2: int, y1: int, y2: int) -> str:
    """Return a FITS section string ``[x1:x2,y1:y2]``."""
    return f"[{x1}:{x2},{y1}:{y2}]"


def ccd_mosaic(
    ccd_shape: tuple[int, int] = (512, 256),
    grid: tuple[int, int] = (2, 4),
    overscan: int = 32,
    reversed_ccd: int | None = 5,
    seed: int = 3,
    gap: int = 8,
) -> fits.HDUList:
    """Return a synthetic raw CCD mosaic: one image extension per CCD.

    One sky (a star field) covers the whole mosaic frame, so stars sit at
    consistent positions across CCDs; each CCD then has its own gain and bias
    level, photon and read noise, and an overscan strip at the right (bias and
    read noise only). Pixels are raw uint16 counts (``BZERO = 32768``).

    CCD ``k`` (0-based) sits at row ``k // cols`` (from the bottom) and column
    ``k % cols`` of the grid. Its ``DETSEC`` places its ``DATASEC`` in the frame,
    with ``gap`` pixels between CCDs. CCD ``reversed_ccd`` is read out the other
    way in x: its pixels are stored flipped in x, its ``DETSEC`` (and ``CCDSEC``)
    run from high to low x, and its WCS has the first column of the CD matrix
    negated and CRPIX1 mirrored, so that every CCD pixel keeps the sky position of
    the frame pixel where ``DETSEC`` puts it. See the module documentation for
    the global frame WCS (``MOSCRPX1``, ``MOSCRPX2`` in the primary header).

    Parameters
    ----------
    ccd_shape : tuple[int, int], optional
        Shape (ny, nx) of the light-sensitive area of one CCD.
    grid : tuple[int, int], optional
        Number of CCD rows and columns.
    overscan : int, optional
        Width of the overscan strip in pixels (0 for none).
    reversed_ccd : int or None, optional
        0-based index of the CCD read out in reverse, or None.
    seed : int, optional
        Seed of the random generator.
    gap : int, optional
        Gap between adjacent CCDs in the frame, pixels.

    Returns
    -------
    astropy.io.fits.HDUList
        An empty primary HDU and one image HDU per CCD (``EXTNAME`` CCD01, ...).

    Raises
    ------
    ValueError
        If a size is not valid or ``reversed_ccd`` is not the index of a CCD.
    """
    ny, nx = (int(ccd_shape[0]), int(ccd_shape[1]))
    rows, cols = (int(grid[0]), int(grid[1]))
    nccd = rows * cols
    if ny < 1 or nx < 1 or rows < 1 or cols < 1 or overscan < 0 or gap < 0:
        raise ValueError(f"invalid mosaic: ccd_shape {ccd_shape}, grid {grid}")
    if reversed_ccd is not None and not 0 <= reversed_ccd < nccd:
        raise ValueError(f"reversed_ccd {reversed_ccd} is not in [0, {nccd})")
    rng = np.random.default_rng(seed)
    frame_ny = rows * ny + (rows - 1) * gap
    frame_nx = cols * nx + (cols - 1) * gap

    # Noise-free sky signal in electrons over the whole frame.
    frame = np.zeros((frame_ny, frame_nx), dtype=np.float32)
    nstars = max(1, int(frame_ny * frame_nx * 1e-3))
    x, y, flux = _star_catalogue(rng, (frame_ny, frame_nx), nstars, fmin=450.0)
    _render_stars([frame], x, y, flux[None, :])
    ngal = max(1, int(frame_ny * frame_nx * 1.2e-5))
    _add_galaxies([frame], rng, ngal, (4.0e4, 2.0e6), (2.0, 15.0))
    sky_rows, sky_cols = _sky_terms(
        (frame_ny, frame_nx), 1500.0, gx=0.12, gy=0.05, vignetting=0.05
    )

    crval = (53.16, -27.79)
    cd = _cd_matrix(0.26 / 3600, -0.6)
    mos_crpix = ((frame_nx + 1) / 2.0, (frame_ny + 1) / 2.0)
    date_obs = "2023-11-20T03:05:41.250"

    primary = fits.PrimaryHDU()
    header = primary.header
    for card in _observation_cards("Synthetic CCD mosaic", "i", 90.0, date_obs):
        header.append(card)
    header.append(("NEXTEND", nccd, "Number of extensions"))
    header.append(
        ("DETSIZE", _section(1, frame_nx, 1, frame_ny), "Size of the mosaic frame")
    )
    header.append(("MOSCRPX1", mos_crpix[0], "Frame CRPIX1 of the global mosaic WCS"))
    header.append(("MOSCRPX2", mos_crpix[1], "Frame CRPIX2 of the global mosaic WCS"))
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [primary]

    read_noise = 5.0  # e-
    for k in range(nccd):
        r, c = divmod(k, cols)
        fx1, fy1 = c * (nx + gap) + 1, r * (ny + gap) + 1  # 1-based frame origin
        fx2, fy2 = fx1 + nx - 1, fy1 + ny - 1
        flipped = k == reversed_ccd
        gain = 1.5 * (1.0 + rng.normal(0.0, 0.03))
        bias = 1000.0 + rng.uniform(-80.0, 80.0)

        # Electrons -> ADU, then photon noise, all in frame order (the noise does
        # not depend on the readout direction).
        signal = frame[fy1 - 1 : fy2, fx1 - 1 : fx2] / np.float32(gain)
        terms = (sky_rows[fy1 - 1 : fy2] / np.float32(gain), sky_cols[fx1 - 1 : fx2] / gain)
        _add_sky_and_noise(signal, rng, terms, gain, 0.0, None)
        read = rng.standard_normal((ny, nx + overscan), dtype=np.float32)
        if flipped:  # stored in readout order: reversed in x
            signal = signal[:, ::-1]
            read[:, :nx] = read[:, nx - 1 :: -1].copy()
        raw = np.zeros((ny, nx + overscan), dtype=np.float32)
        raw[:, :nx] = signal
        # Bias level and read noise everywhere, overscan included.
        raw += np.float32(bias)
        raw += read * np.float32(read_noise / gain)
        data = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)

        hdu = fits.ImageHDU(data, name=f"CCD{k + 1:02d}")
        h = hdu.header
        h.append(("CCDNAME", f"CCD{k + 1:02d}", "CCD name"))
        h.append(("AMPNAME", f"CCD{k + 1:02d}{'B' if flipped else 'A'}", "Amplifier"))
        h.append(
            ("DETSIZE", _section(1, frame_nx, 1, frame_ny), "Size of the mosaic frame")
        )
        if flipped:
            detsec = _section(fx2, fx1, fy1, fy2)
            ccdsec = _section(nx, 1, 1, ny)
        else:
            detsec = _section(fx1, fx2, fy1, fy2)
            ccdsec = _section(1, nx, 1, ny)
        h.append(("DATASEC", _section(1, nx, 1, ny), "Light-sensitive pixels"))
        h.append(("DETSEC", detsec, "Place of DATASEC in the mosaic frame"))
        h.append(("CCDSEC", ccdsec, "Place of DATASEC on the CCD"))
        if overscan > 0:
            h.append(("BIASSEC", _section(nx + 1, nx + overscan, 1, ny), "Overscan"))
            h.append(("TRIMSEC", _section(1, nx, 1, ny), "Section to keep"))
        h.append(("CCDSUM", "1 1", "On-chip binning"))
        h.append(("GAIN", round(gain, 4), "[e-/adu] Gain"))
        h.append(("RDNOISE", read_noise, "[e-] Read noise"))
        h.append(("SATURATE", 65535, "[adu] Saturation level"))
        h.append(("BUNIT", "adu", "Unit of the pixel values"))
        h.append(("EXPTIME", 90.0, "[s] Exposure time"))
        h.append(("DATE-OBS", date_obs, "Start of the exposure (UTC)"))
        h.append(("MJD-OBS", round(_mjd(date_obs), 8), "[d] Modified Julian date"))
        # Frame pixel X = fx1 + (i - 1) (or fx2 - (i - 1) when flipped) for CCD pixel i.
        if flipped:
            ccd_cd = cd * np.array([[-1.0, 1.0], [-1.0, 1.0]])
            crpix1 = fx2 + 1 - mos_crpix[0]
        else:
            ccd_cd = cd
            crpix1 = mos_crpix[0] - (fx1 - 1)
        crpix2 = mos_crpix[1] - (fy1 - 1)
        for card in _wcs_cards((crpix1, crpix2), crval, ccd_cd):
            h.append(card)
        hdus.append(hdu)
    return fits.HDUList(hdus)


def write_atomic(hdul: fits.HDUList, path: Path) -> None:
    """Write FITS HDUs to ``path`` atomically.

    The file is written to a temporary file in the same folder, flushed and
    synced to disk, then renamed onto ``path``: readers see either the old file
    or the complete new one, never a partial file.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The HDUs to write.
    path : pathlib.Path
        The destination file; replaced if it exists.
    """
    path = Path(path)
    folder = path.parent
    while True:
        tmp = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            # os.open honours the umask, unlike tempfile (always 0600).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            hdul.writeto(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


def write_samples(folder: Path) -> list[Path]:
    """Write the sample images into ``folder``, those that are missing.

    Parameters
    ----------
    folder : pathlib.Path
        Destination folder, created if needed.

    Returns
    -------
    list of pathlib.Path
        Paths of ``starfield.fits``, ``cube.fits`` and ``mosaic.fits``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers: list[tuple[str, Callable[[], fits.HDUList]]] = [
        ("starfield.fits", star_field),
        ("cube.fits", color_cube),
        ("mosaic.fits", ccd_mosaic),
    ]
    paths = []
    for name, make in makers:
        path = folder / name
        if not path.exists():
            write_atomic(make(), path)
        paths.append(path)
    return paths
