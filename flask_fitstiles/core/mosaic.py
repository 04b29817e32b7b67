"""Placing images into one frame and the frame's global WCS.

The frame is written row stripe after row stripe, straight into the mapped
file, so that preparing a mosaic never holds more than a few stripes of it in
memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy.io import fits

from ..errors import BadFitsError
from .image import STRUCTURAL_KEYWORDS, Image
from .mapped import FileMap
from .pyramid import FrameStripeSink, frame_stripes

__all__ = ["frame_geometry", "mosaic_header", "write_frame"]

# Keywords that describe the file layout of one HDU, not the assembled frame.
_LAYOUT_KEYWORDS = ("BSCALE", "BZERO", "BLANK", "DATASEC", "DETSEC", "BIASSEC", "TRIMSEC")


def frame_geometry(images: Sequence[Image]) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """Return the frame origin and shape, and set every image's geometry.

    Parameters
    ----------
    images : sequence of Image
        Images with their DETSEC; all must have the same number of channels.

    Returns
    -------
    start : tuple[int, int]
        Frame origin (y, x): the smallest DETSEC corner, 0-based.
    shape : tuple[int, int, int]
        Frame shape (channels, y, x).

    Raises
    ------
    BadFitsError
        If the images do not have the same number of channels.
    """
    nchannels = images[0].nchannels
    if any(image.nchannels != nchannels for image in images):
        raise BadFitsError(
            "the mosaic's images do not all have the same number of channels",
            ("query", "FIF"),
        )
    xs = [v for image in images for v in image.detsec[0:2]]
    ys = [v for image in images for v in image.detsec[2:4]]
    start = (min(ys) - 1, min(xs) - 1)
    shape = (nchannels, max(ys) - start[0], max(xs) - start[1])
    if shape[1] * shape[2] > 1 << 34:
        raise BadFitsError("the mosaic frame is larger than 2^34 pixels", ("query", "FIF"))
    for image in images:
        image.compute_geometry(start, shape)
    return start, shape


def _place(image: Image, stripe: np.ndarray, r0: int, r1: int) -> None:
    """Copy the part of ``image`` that falls in frame rows ``r0:r1`` into ``stripe``."""
    (fx1, fx2, xstep), (fy1, fy2, ystep) = image.detsliceinfo
    (dx1, dx2, _), (dy1, dy2, _) = image.datasliceinfo
    lo, hi = image.frame_rows()
    f0, f1 = max(r0, lo), min(r1, hi)
    if f0 >= f1:
        return
    c0 = min(fx1, fx2) - 1
    dest = stripe[:, f0 - r0 : f1 - r0, c0 : c0 + (dx2 - dx1 + 1)]
    if ystep > 0:
        d0 = dy1 - 1 + (f0 - (fy1 - 1))
    else:
        # Frame row f holds data row dy1 - 1 + (fy1 - 1 - f): the span, flipped.
        d0 = dy1 - 1 + (fy1 - 1 - (f1 - 1))
        dest = dest[:, ::-1, :]
    if xstep < 0:
        dest = dest[:, :, ::-1]
    image.read_rows(d0, d0 + (f1 - f0), dx1 - 1, dx2, out=dest)


def write_frame(
    images: Sequence[Image],
    shape: tuple[int, int, int],
    fd: int,
    stripe_rows: int = 256,
    nthreads: int = 1,
    on_stripe: FrameStripeSink | None = None,
) -> None:
    """Write the frame, channel-major float32, FITS row order, into an open file.

    Pixels that no image covers are NaN (blank).

    Parameters
    ----------
    images : sequence of Image
        Images whose geometry was set by :func:`frame_geometry`.
    shape : tuple[int, int, int]
        Frame shape (channels, y, x).
    fd : int
        File descriptor open for reading and writing: the file is sized, its
        blocks reserved and written through a shared map.
    stripe_rows : int, optional
        Number of frame rows assembled at once (cut by
        :func:`~flask_fitstiles.core.pyramid.frame_stripes`, so that each stripe
        makes whole rows of the pyramid's level 1).
    nthreads : int, optional
        Threads of work: twice as many stripes are assembled at once, in
        threads (numpy's conversions release the GIL); compressed HDUs are
        always read by one thread.
    on_stripe : callable, optional
        Called as ``on_stripe(r0, r1, stripe)`` with every stripe of frame rows
        ``r0:r1`` once written, from the thread that assembled it (the pyramid's
        level 1 is computed there).
    """
    nchan, ny, nx = shape
    # When the DETSEC areas tile the frame exactly, every pixel gets written and
    # pre-filling stripes with blanks is wasted work; otherwise (gaps, or overlaps
    # in a damaged file) unwritten pixels must be blank, never stale memory.
    boxes = [
        (min(im.detsec[0:2]), max(im.detsec[0:2]), min(im.detsec[2:4]), max(im.detsec[2:4]))
        for im in images
    ]
    covered = sum((b[1] - b[0] + 1) * (b[3] - b[2] + 1) for b in boxes)
    overlap = any(
        a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )
    blank_first = covered != ny * nx or overlap

    with FileMap(fd, nchan * ny * nx) as frame_map:

        def write_stripe(r0: int, r1: int) -> None:
            # Assembled in place, in the mapped file: no copy of the stripe.
            stripe = frame_map.array(shape)[:, r0:r1, :]
            if blank_first:
                stripe[...] = np.nan
            for image in images:
                _place(image, stripe, r0, r1)
            if on_stripe is not None:
                on_stripe(r0, r1, stripe)
            for c in range(nchan):
                frame_map.release(stripe[c])

        # Twice as many stripes as threads of work at once: much of a stripe's
        # time is spent waiting for the new pages of the file (a hypervisor fault
        # each, on small cloud machines), when the CPU can serve another stripe.
        workers = 2 * max(1, nthreads)
        # astropy's decompression of tile-compressed HDUs is not known to be
        # thread-safe: those are read by one thread.
        if any(image.is_compressed for image in images):
            workers = 1
        stripes = frame_stripes(ny, stripe_rows)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for batch in range(0, len(stripes), workers):
                jobs = [
                    pool.submit(write_stripe, r0, r1)
                    for r0, r1 in stripes[batch : batch + workers]
                ]
                for job in jobs:
                    job.result()
                # Between batches no thread reads: let the mapped source pages go.
                for image in images:
                    image.drop_cached_pages()


def _cd_matrix(header: fits.Header) -> tuple[float, float, float, float]:
    """Recover the CD matrix from the CD, PC + CDELT, PC00i00j or CROTA2 forms."""
    if "CD1_1" in header or "CD2_2" in header:
        return (
            float(header.get("CD1_1", 0.0)),
            float(header.get("CD1_2", 0.0)),
            float(header.get("CD2_1", 0.0)),
            float(header.get("CD2_2", 0.0)),
        )
    cdelt1 = float(header.get("CDELT1", 1.0))
    cdelt2 = float(header.get("CDELT2", 1.0))
    if "PC1_1" in header or "PC2_2" in header:
        pc = (
            header.get("PC1_1", 1.0),
            header.get("PC1_2", 0.0),
            header.get("PC2_1", 0.0),
            header.get("PC2_2", 1.0),
        )
    elif "PC001001" in header or "PC002002" in header:
        pc = (
            header.get("PC001001", 1.0),
            header.get("PC001002", 0.0),
            header.get("PC002001", 0.0),
            header.get("PC002002", 1.0),
        )
    elif "CROTA2" in header:
        angle = math.radians(float(header["CROTA2"]))
        cos, sin = math.cos(angle), math.sin(angle)
        # The AIPS convention: rotate then scale.
        return (cdelt1 * cos, -cdelt2 * sin, cdelt1 * sin, cdelt2 * cos)
    else:
        pc = (1.0, 0.0, 0.0, 1.0)
    return (
        cdelt1 * float(pc[0]),
        cdelt1 * float(pc[1]),
        cdelt2 * float(pc[2]),
        cdelt2 * float(pc[3]),
    )


def _as_primary(header: fits.Header) -> fits.Header:
    """Return a copy of an image header rewritten as the frame's primary header."""
    out = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2)])
    # Cards of a copy: appending the image's own Card objects would share them,
    # and setting CRPIX of the frame would move the image's CRPIX too.
    for card in header.copy().cards:
        if not STRUCTURAL_KEYWORDS.match(card.keyword):
            out.append(card, end=True)
    return out


def mosaic_header(
    images: Sequence[Image],
    shape: tuple[int, int, int],
) -> fits.Header:
    """Return a header with a global WCS for the frame, from the first image's WCS.

    The images and their headers are left as they are: the result is built from
    copies, and every call gives the same header.

    Parameters
    ----------
    images : sequence of Image
        Images whose geometry was set by :func:`frame_geometry`.
    shape : tuple[int, int, int]
        Frame shape (channels, y, x).

    Returns
    -------
    header : astropy.io.fits.Header
        The first image's header with CRPIX moved into the frame, the CD matrix
        recovered and flipped with the axes, and obsolete WCS keywords removed.
    """
    image = images[0]
    header = _as_primary(image.header)
    for key in _LAYOUT_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)
    header["NAXIS"] = 3 if shape[0] > 1 else 2
    header.insert("NAXIS", ("NAXIS1", shape[2]), after=True)
    header.insert("NAXIS1", ("NAXIS2", shape[1]), after=True)
    if shape[0] > 1:
        header.insert("NAXIS2", ("NAXIS3", shape[0]), after=True)
    has_wcs = any(k in header for k in ("CTYPE1", "CRPIX1", "CD1_1", "CDELT1", "PC1_1"))
    if not has_wcs:
        return header
    (fx1, _, xstep), (fy1, _, ystep) = image.detsliceinfo
    (dx1, _, _), (dy1, _, _) = image.datasliceinfo
    crpix1 = float(header.get("CRPIX1", 1.0))
    crpix2 = float(header.get("CRPIX2", 1.0))
    header["CRPIX1"] = fx1 + xstep * (crpix1 - dx1)
    header["CRPIX2"] = fy1 + ystep * (crpix2 - dy1)
    cd11, cd12, cd21, cd22 = _cd_matrix(header)
    for key in list(header.keys()):
        if key.startswith(("CDELT", "CROTA")) or (
            key.startswith("PC") and key[2:].replace("_", "").isdigit()
        ):
            header.remove(key, ignore_missing=True, remove_all=True)
    # A flipped axis reverses the sign of the matrix column of that axis.
    header["CD1_1"] = xstep * cd11
    header["CD1_2"] = ystep * cd12
    header["CD2_1"] = xstep * cd21
    header["CD2_2"] = ystep * cd22
    return header
