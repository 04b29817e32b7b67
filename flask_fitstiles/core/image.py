"""One FITS image HDU: reading float32 stripes, DATASEC/DETSEC, background, cuts.

An :class:`Image` never holds its whole pixel array: it keeps a reference to the
HDU while the file is open and reads rows on demand (``read_rows``), already
scaled (BSCALE/BZERO), with BLANK values and infinities turned into NaN. Axes
beyond the second fold into channels, so every image is (channels, y, x).
"""

from __future__ import annotations

import copy
import math
import mmap
import re
import warnings
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import BadFitsError
from ..models import ImageModel

__all__ = [
    "Image",
    "clean_header",
    "compute_background",
    "find_image_hdus",
    "header_to_dict",
    "inherit_cards",
    "parse_2dslice",
]

# Keep the subsample used for background statistics near this many pixels:
# enough for a robust median, cheap even on 16k x 16k frames.
BACKGROUND_SAMPLE_PIXELS = 1 << 20

#: Cards that describe an HDU's structure: never inherited, rewritten for the frame.
STRUCTURAL_KEYWORDS = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|END)$"
)

_SLICE_RE = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


def parse_2dslice(text: Any) -> list[int] | None:
    """Parse a FITS section such as ``[1:2048,1:4096]``.

    Parameters
    ----------
    text : Any
        Header value; anything that is not a well-formed section gives None.

    Returns
    -------
    section : list[int] or None
        ``[x1, x2, y1, y2]`` (FITS style, 1-based, inclusive, possibly decreasing).
    """
    if not isinstance(text, str):
        return None
    match = _SLICE_RE.match(text)
    if match is None:
        return None
    values = [int(v) for v in match.groups()]
    return values if min(values) >= 1 else None


def header_to_dict(header: fits.Header) -> dict[str, Any]:
    """Return header keyword/value pairs that JSON can carry.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Input header.

    Returns
    -------
    pairs : dict
        Keyword to value; undefined and non-finite values become None, and
        commentary keywords (COMMENT, HISTORY, blank) are left out.
    """
    pairs: dict[str, Any] = {}
    for card in header.cards:
        key = card.keyword
        if not key or key in ("COMMENT", "HISTORY"):
            continue
        value = card.value
        if isinstance(value, bool | int | str):
            pairs[key] = value
        elif isinstance(value, float):
            pairs[key] = value if math.isfinite(value) else None
        elif isinstance(value, complex):
            pairs[key] = str(value)
        else:
            pairs[key] = None
    return pairs


def clean_header(header: fits.Header) -> fits.Header:
    """Return a plain image header copy (compressed-HDU keywords translated away).

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header of an image HDU, possibly a tile-compressed one.

    Returns
    -------
    header : astropy.io.fits.Header
        Independent copy that is safe to pickle and to edit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.Header.fromstring(header.tostring())


def inherit_cards(header: fits.Header, primary: fits.Header) -> None:
    """Append the primary header's cards that an extension header lacks.

    Multi-extension files keep OBJECT, FILTER, TELESCOP, DATE-OBS... in the
    primary header only; the FITS INHERIT convention says extensions share them.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Extension header, completed in place.
    primary : astropy.io.fits.Header
        The file's primary header.
    """
    for card in primary.cards:
        key = card.keyword
        if (
            key
            and key not in header
            and key not in ("COMMENT", "HISTORY", "INHERIT")
            and not STRUCTURAL_KEYWORDS.match(key)
        ):
            # A copy: a Card appended as it is would be shared by the primary
            # header and every extension, and an edit of one would show in all.
            header.append(copy.copy(card), end=True)


def _image_axes(hdu: Any) -> tuple[int, ...] | None:
    """Return the data shape (numpy order) of an image HDU, or None if not an image."""
    if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
        return None
    try:
        shape = tuple(int(n) for n in hdu.shape)
    except (KeyError, ValueError, TypeError):
        return None
    if len(shape) < 2 or min(shape) <= 0:
        return None
    return shape


def find_image_hdus(hdus: fits.HDUList, extnum: int | None = None) -> list[Any]:
    """Return the HDUs of a file that hold 2D+ image data.

    Parameters
    ----------
    hdus : astropy.io.fits.HDUList
        Opened FITS file.
    extnum : int, optional
        Only consider HDU number ``extnum``.

    Returns
    -------
    hdus : list
        Image HDUs, in file order.

    Raises
    ------
    BadFitsError
        If there is no such HDU or it holds no image data.
    """
    if extnum is not None:
        try:
            candidates = [hdus[extnum]]
        except (IndexError, KeyError):
            raise BadFitsError(
                f"the file has no HDU number {extnum} (it has {len(hdus)})",
                ("query", "FIF"),
            ) from None
    else:
        candidates = list(hdus)
    images = [hdu for hdu in candidates if _image_axes(hdu) is not None]
    if not images:
        raise BadFitsError(
            "the file holds no image data with 2 or more axes"
            + (f" in HDU {extnum}" if extnum is not None else ""),
            ("query", "FIF"),
        )
    return images


def compute_background(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the robust background level and MAD of every channel.

    Values are clipped at 3 MAD around the median; the level is then the mode
    estimate 3.5 x median - 2.5 x mean of what is left.

    Parameters
    ----------
    samples : ndarray
        (channels, n) float array of sample pixels; NaN values are ignored.

    Returns
    -------
    level : ndarray
        Background level of every channel (float64).
    mad : ndarray
        Background median absolute deviation of every channel (float64).
    """
    nchan = samples.shape[0]
    level = np.zeros(nchan)
    mad = np.zeros(nchan)
    for c in range(nchan):
        x = samples[c]
        x = x[np.isfinite(x)].astype(np.float64)
        if x.size == 0:
            continue
        med = np.median(x)
        std = x.std()
        dev = np.abs(x - med)
        cmad = np.median(dev)
        kept = x[dev <= 3.0 * cmad] if cmad > 0 else x[dev == 0]
        if kept.size == 0:
            kept = x
        med = np.median(kept)
        cmad = np.median(np.abs(kept - med))
        # Quantised or mostly constant data can give a vanishing MAD; fall back
        # on a fraction of the standard deviation so the cuts keep a width.
        if 1e5 * cmad < std:
            cmad = 0.1 * std
        level[c] = 3.5 * med - 2.5 * kept.mean()
        mad[c] = cmad
    return level, mad


class Image:
    """One image HDU, placed in a mosaic frame by its DETSEC.

    Parameters
    ----------
    hdu : astropy.io.fits.ImageHDU or CompImageHDU or PrimaryHDU
        The HDU, from a file opened with ``do_not_scale_image_data=True``.
    minmax : tuple[float, float], optional
        Intensity cuts for every channel, instead of the automatic ones.
    primary : astropy.io.fits.Header, optional
        The file's primary header, whose cards an extension inherits.
    """

    def __init__(
        self,
        hdu: Any,
        minmax: tuple[float, float] | None = None,
        primary: fits.Header | None = None,
    ) -> None:
        self.header = clean_header(hdu.header)
        if primary is not None and "XTENSION" in self.header:
            inherit_cards(self.header, primary)
        shape = _image_axes(hdu)
        if shape is None:
            raise BadFitsError("HDU holds no image data", ("query", "FIF"))
        nchannels = math.prod(shape[:-2])
        self.shape: tuple[int, int, int] = (nchannels, shape[-2], shape[-1])
        self.nchannels = nchannels
        self.bitpix = int(self.header.get("BITPIX", -32))
        self.bitdepth = 32
        self._hdu: Any = hdu
        self._bscale = float(hdu.header.get("BSCALE", 1.0) or 1.0)
        self._bzero = float(hdu.header.get("BZERO", 0.0) or 0.0)
        blank = hdu.header.get("BLANK")
        self._blank = int(blank) if isinstance(blank, int) and self.bitpix > 0 else None
        ny, nx = self.shape[1:]
        datasec = parse_2dslice(self.header.get("DATASEC"))
        if datasec is None or max(datasec[0:2]) > nx or max(datasec[2:4]) > ny:
            datasec = [1, nx, 1, ny]
        # DATASEC describes the active area; keep it increasing.
        self.datasec = [
            min(datasec[0:2]),
            max(datasec[0:2]),
            min(datasec[2:4]),
            max(datasec[2:4]),
        ]
        detsec = parse_2dslice(self.header.get("DETSEC"))
        self.has_detsec = detsec is not None
        if detsec is None:
            detsec = list(self.datasec)
        if (
            abs(detsec[1] - detsec[0]) != self.datasec[1] - self.datasec[0]
            or abs(detsec[3] - detsec[2]) != self.datasec[3] - self.datasec[2]
        ):
            raise BadFitsError(
                "DETSEC and DATASEC describe areas of different sizes", ("query", "FIF")
            )
        self.detsec = detsec
        self.fixed_minmax = minmax
        self.background_level = np.zeros(nchannels)
        self.background_mad = np.zeros(nchannels)
        self.minmax = np.zeros((nchannels, 2))
        self.datasliceinfo: list[list[int]] = []
        self.detsliceinfo: list[list[int]] = []

    # -- reading ---------------------------------------------------------------------------

    def read_rows(
        self,
        y0: int,
        y1: int,
        x0: int = 0,
        x1: int | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Read rows ``y0:y1`` (0-based, numpy order) of every channel as float32.

        Parameters
        ----------
        y0, y1 : int
            First and past-the-last row.
        x0, x1 : int, optional
            First and past-the-last column (default: all).
        out : ndarray, optional
            Float32 (channels, y1 - y0, x1 - x0) destination, any strides (a
            flipped view of the frame, say): the pixels are converted straight
            into it, with no temporary copy.

        Returns
        -------
        rows : ndarray
            (channels, y1 - y0, x1 - x0) float32, native byte order, scaled,
            with BLANK and non-finite values set to NaN (``out`` if given).
        """
        hdu = self._hdu
        nx = self.shape[2]
        x1 = nx if x1 is None else x1
        if isinstance(hdu, fits.CompImageHDU):
            raw = hdu.section[..., y0:y1, x0:x1]
        else:
            raw = hdu.data[..., y0:y1, x0:x1]
        raw = np.asarray(raw).reshape(self.nchannels, y1 - y0, x1 - x0)
        if out is None:
            out = raw.astype(np.float32)  # converts byte order and type, always a copy
        else:
            np.copyto(out, raw, casting="unsafe")
        if self._bscale != 1.0 or self._bzero != 0.0:
            out *= np.float32(self._bscale)
            out += np.float32(self._bzero)
        if self._blank is not None:
            out[raw == self._blank] = np.nan
        if raw.dtype.kind == "f":
            out[np.isinf(out)] = np.nan
        return out

    @property
    def is_compressed(self) -> bool:
        """Whether the image comes from a tile-compressed HDU."""
        return isinstance(self._hdu, fits.CompImageHDU)

    def drop_cached_pages(self) -> None:
        """Let the kernel drop the mapped pages read so far from this process.

        The source file is memory-mapped; pages already copied out would
        otherwise stay in the process's resident set until the file is closed,
        so preparing a large image would look (and count) as big as the file.
        """
        hdu = self._hdu
        # Only plain HDUs whose data are already mapped: touching .data of a
        # compressed HDU would decompress all of it.
        if hdu is None or isinstance(hdu, fits.CompImageHDU) or not hdu._data_loaded:
            return
        base: Any = hdu.data
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if base is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                base.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass

    def release(self) -> None:
        """Drop the reference to the HDU (before pickling or closing the file)."""
        self._hdu = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_hdu"] = None
        return state

    # -- geometry --------------------------------------------------------------------------

    def compute_geometry(self, start: tuple[int, int], shape: tuple[int, int, int]) -> None:
        """Compute where the active area lands in a mosaic frame.

        Parameters
        ----------
        start : tuple[int, int]
            Frame origin (y, x), 0-based: the smallest DETSEC corner minus one.
        shape : tuple[int, int, int]
            Frame shape (channels, y, x).
        """
        x1, x2, y1, y2 = self.detsec
        xstep = 1 if x2 >= x1 else -1
        ystep = 1 if y2 >= y1 else -1
        dx1, dx2, dy1, dy2 = self.datasec
        self.datasliceinfo = [[dx1, dx2, 1], [dy1, dy2, 1]]
        self.detsliceinfo = [
            [x1 - start[1], x2 - start[1], xstep],
            [y1 - start[0], y2 - start[0], ystep],
        ]

    def frame_rows(self) -> tuple[int, int]:
        """Return the 0-based frame rows covered by the image, ``(first, past-last)``.

        Returns
        -------
        rows : tuple[int, int]
            Increasing row range in the frame.
        """
        (_, _, _), (fy1, fy2, _) = self.detsliceinfo
        return min(fy1, fy2) - 1, max(fy1, fy2)

    def set_background(self, samples: np.ndarray) -> None:
        """Set background statistics and default cuts from sample pixels.

        Parameters
        ----------
        samples : ndarray
            (channels, n) sample pixels from the active area.
        """
        self.background_level, self.background_mad = compute_background(samples)
        if self.fixed_minmax is not None:
            self.minmax = np.tile(
                np.asarray(self.fixed_minmax, dtype=np.float64),
                (
                    self.nchannels,
                    1,
                ),
            )
        else:
            self.minmax = np.stack(
                [
                    self.background_level - 2.0 * self.background_mad,
                    self.background_level + 400.0 * self.background_mad,
                ],
                axis=1,
            )

    def get_model(self) -> ImageModel:
        """Return a Pydantic model of the image.

        Returns
        -------
        model : ImageModel
            Model instance of the image.
        """
        return ImageModel(
            size=list(self.shape[::-1]),
            dataslice=self.datasliceinfo,
            detslice=self.detsliceinfo,
            background_level=[float(v) for v in self.background_level],
            background_mad=[float(v) for v in self.background_mad],
            min_max=[[float(v) for v in row] for row in self.minmax],
            header=header_to_dict(self.header),
        )

    def get_header_string(self) -> str:
        """Return the image header as a FITS string.

        Returns
        -------
        header : str
            Header cards, 80 characters each.
        """
        return str(self.header.tostring())
