"""Turn float tiles into display rasters and JPEG bytes.

One tile is rendered per request, so this module is the hot path of the service.
Every step works in place on float32 work buffers (never on the input, which may be
a read-only memory map), and the power law of the display gamma is replaced by a
cached 16-bit lookup table: a pixel costs one multiply-add, one clip, two integer
casts and one table look-up. Shared tables are read-only and work buffers belong to
one thread each, so any number of threads may render at once.

Scaling a channel with cuts ``(min, max)`` gives::

    v = (x - min) * contrast / (max - min) + 0.01 * contrast * brightness

clipped to ``[0, 1]``; the displayed level is ``uint8(255.49 * v ** (1 / gamma))``,
``255 - level`` when inverted. Blank (NaN) pixels render as ``v = 0``.
"""

from __future__ import annotations

import io
import math
import threading
from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np
from PIL import Image

from ..errors import BadParameterError
from .colormaps import COLORMAP_NAMES, colormap_lut, colormap_palette

__all__ = [
    "COLORMAP_NAMES",
    "colormap_lut",
    "encode_jpeg",
    "mix_matrix",
    "render_jpeg",
    "render_tile",
    "resize_raster",
]

# Scaled values index a table of _LUT_SIZE entries: 16 bits keep the quantisation
# error of the gamma curve within one output level for usual gammas.
_LUT_SIZE: Final = 65536
_LUT_TOP: Final = float(_LUT_SIZE - 1)
# Stands for contrast / (max - min) when the cuts are empty or reversed.
_HUGE_FACTOR: Final = 1e30
_MIN_GAMMA: Final = 0.01
_MAX_EXPONENT: Final = 100.0
# Work buffers up to this size are kept per thread (a 256 x 256 colour tile of 3
# channels needs about 4 MiB in all); larger ones, for big regions, come per call.
_SCRATCH_MAX_BYTES: Final = 4 << 20


def mix_matrix(
    nchannels: int, mix: tuple[tuple[int, float, float, float], ...] | None
) -> np.ndarray:
    """Return the weights that turn scaled channels into R, G and B.

    Parameters
    ----------
    nchannels : int
        Number of channels of the image, at least 1.
    mix : tuple of (int, float, float, float), or None
        Rows ``(channel, r, g, b)`` with 1-based channel numbers. Weights of the
        channels between and beyond the rows are interpolated linearly (held constant
        past the ends); when a channel appears twice, its last row wins.

    Returns
    -------
    matrix : numpy.ndarray
        ``(3, nchannels)`` float32 array: all ones without `mix`, otherwise the
        interpolated weights times ``3 / nchannels``.

    Raises
    ------
    ValueError
        If `nchannels` is less than 1.
    """
    if nchannels < 1:
        raise ValueError(f"an image has at least one channel, got {nchannels}")
    if not mix:
        return np.ones((3, nchannels), dtype=np.float32)
    rows = {int(row[0]): row[1:] for row in mix}  # later rows overwrite earlier ones
    channels = sorted(rows)
    xp = np.array(channels, dtype=np.float64) - 1.0
    fp = np.array([rows[c] for c in channels], dtype=np.float64)  # (nrows, 3)
    indices = np.arange(nchannels, dtype=np.float64)
    matrix = np.empty((3, nchannels), dtype=np.float32)
    for band in range(3):
        matrix[band] = np.interp(indices, xp, fp[:, band])
    matrix *= np.float32(3.0 / nchannels)
    return matrix


@lru_cache(maxsize=16)
def _level_lut(gamma: float, invert: bool) -> np.ndarray:
    """Map a 16-bit scaled value to its display level, gamma and inversion applied."""
    # "not >=" also sends a NaN gamma to the guarded exponent.
    exponent = _MAX_EXPONENT if not gamma >= _MIN_GAMMA else 1.0 / gamma
    v = np.arange(_LUT_SIZE, dtype=np.float64) / _LUT_TOP
    lut = (255.49 * v**exponent).astype(np.uint8)
    if invert:
        np.subtract(255, lut, out=lut)
    lut.flags.writeable = False
    return lut


class _Scratch(threading.local):
    """Per-thread work buffers, reused from one tile to the next.

    Fresh buffers of a few hundred kilobytes per tile would go through ``mmap`` and
    page faults, which cost more than the rendering itself. Each thread owns its
    buffers, so no lock is needed; a buffer only grows, up to the largest tile seen
    and at most ``_SCRATCH_MAX_BYTES``.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """Return an uninitialised C-contiguous array of `shape` for `role`."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > _SCRATCH_MAX_BYTES:
            return np.empty(shape, dtype=dtype)
        buffer = self.buffers.get(role)
        if buffer is None or buffer.nbytes < nbytes:
            buffer = self.buffers[role] = np.empty(nbytes, dtype=np.uint8)
        return buffer[:nbytes].view(dtype).reshape(shape)


_scratch = _Scratch()


def _scale_into(
    plane: np.ndarray,
    lo: float,
    hi: float,
    contrast: float,
    brightness: float,
    offset: float,
    out: np.ndarray,
) -> None:
    """Write ``_LUT_TOP * v + offset`` for one channel into `out`, unclipped."""
    bias = _LUT_TOP * 0.01 * contrast * brightness + offset
    if hi > lo:
        factor = _LUT_TOP * contrast / (hi - lo)
        # One multiply-add: the cuts fold into the offset.
        np.multiply(plane, np.float32(factor), out=out)
        np.add(out, np.float32(bias - lo * factor), out=out)
    else:
        # Folding a huge factor would swamp x == min with rounding noise.
        np.subtract(plane, np.float32(lo), out=out)
        np.multiply(out, np.float32(_LUT_TOP * _HUGE_FACTOR), out=out)
        np.add(out, np.float32(bias), out=out)


def _zero_blanks(values: np.ndarray) -> None:
    """Replace NaN by 0 in place."""
    blank = np.isnan(values, out=_scratch.get("blank", values.shape, np.bool_))
    if blank.any():
        np.copyto(values, 0.0, where=blank)


def _apply_levels(scaled: np.ndarray, levels: np.ndarray, out: np.ndarray) -> None:
    """Clip scaled values (in place) to table indices and look their levels up."""
    np.clip(scaled, 0.0, _LUT_TOP, out=scaled)  # NaN passes through clip
    _zero_blanks(scaled)
    # float32 -> uint16 -> intp beats a direct float32 -> intp cast, and intp
    # indices spare np.take a hidden conversion buffer.
    short = _scratch.get("short", scaled.shape, np.uint16)
    np.copyto(short, scaled, casting="unsafe")
    index = _scratch.get("index", scaled.shape, np.intp)
    np.copyto(index, short)
    np.take(levels, index, out=out, mode="clip")  # "clip" writes out unbuffered


def _channel_cuts(
    cuts: np.ndarray, minmax: tuple[tuple[int, float, float], ...] | None
) -> list[tuple[float, float]]:
    """Return (min, max) per channel, the overrides of `minmax` replacing defaults."""
    limits = [(float(lo), float(hi)) for lo, hi in cuts]
    for channel, lo, hi in minmax or ():
        if 1 <= channel <= len(limits):
            limits[channel - 1] = (float(lo), float(hi))
    return limits


class _Rendered(NamedTuple):
    """A rendered tile; `flat_chroma` if it is RGB with three equal bands."""

    image: Image.Image
    flat_chroma: bool


def _render_image(
    tile: np.ndarray,
    cuts: np.ndarray,
    channel: int | None = None,
    minmax: tuple[tuple[int, float, float], ...] | None = None,
    mix: tuple[tuple[int, float, float, float], ...] | None = None,
    brightness: float = 0.0,
    contrast: float = 1.0,
    gamma: float = 2.2,
    colormap: str = "grey",
    invert: bool = False,
) -> _Rendered:
    """Render one tile of float data as a Pillow image (see :func:`render_tile`)."""
    if tile.ndim != 3:
        raise ValueError(f"tile must be (nchannels, h, w), got shape {tile.shape}")
    nchannels, height, width = tile.shape
    if cuts.shape != (nchannels, 2):
        raise ValueError(f"cuts must have shape ({nchannels}, 2), got {cuts.shape}")
    # None for grey; an unknown name fails in either mode.
    palette = colormap_palette(colormap)
    limits = _channel_cuts(cuts, minmax)
    levels = _level_lut(float(gamma), bool(invert))

    if channel is not None:
        index = channel - 1 if 1 <= channel <= nchannels else 0
        lo, hi = limits[index]
        scaled = _scratch.get("scaled", (height, width), np.float32)
        # Overflow (huge factor, +/-inf data) and inf * 0 are expected and clipped.
        with np.errstate(over="ignore", invalid="ignore"):
            _scale_into(tile[index], lo, hi, contrast, brightness, 0.5, scaled)
        grey = np.empty((height, width), dtype=np.uint8)
        _apply_levels(scaled, levels, grey)
        if palette is None:
            return _Rendered(
                Image.frombuffer("L", (width, height), grey, "raw", "L", 0, 1), False
            )
        image = Image.frombuffer("P", (width, height), grey, "raw", "P", 0, 1)
        image.putpalette(palette)
        # Pillow's palette expansion is several times faster than a (256, 3) np.take.
        return _Rendered(image.convert("RGB"), False)

    npixels = height * width
    scaled = _scratch.get("scaled", (nchannels, height, width), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for index, (lo, hi) in enumerate(limits):
            _scale_into(tile[index], lo, hi, contrast, brightness, 0.0, scaled[index])
    _zero_blanks(scaled)  # a blank channel contributes nothing to the mix
    matrix = mix_matrix(nchannels, mix)
    # Equal weights in R, G and B (no MIX, or a grey mix) give three equal bands:
    # compute one and use it thrice.
    nbands = 1 if (matrix == matrix[0]).all() else 3
    rgb = _scratch.get("rgb", (nbands, npixels), np.float32)
    np.matmul(matrix[:nbands], scaled.reshape(nchannels, npixels), out=rgb)
    np.add(rgb, np.float32(0.5), out=rgb)  # round, not truncate, to a table index
    bands = _scratch.get("bands", (nbands, npixels), np.uint8)
    _apply_levels(rgb, levels, bands)
    planes = [
        Image.frombuffer("L", (width, height), bands[band % nbands], "raw", "L", 0, 1)
        for band in range(3)
    ]
    # Pillow interleaves the bands far faster than a strided numpy copy, and its
    # result is a fresh copy, so the scratch bands can be reused at once.
    return _Rendered(Image.merge("RGB", planes), nbands == 1)


def render_tile(
    tile: np.ndarray,
    cuts: np.ndarray,
    channel: int | None = None,
    minmax: tuple[tuple[int, float, float], ...] | None = None,
    mix: tuple[tuple[int, float, float, float], ...] | None = None,
    brightness: float = 0.0,
    contrast: float = 1.0,
    gamma: float = 2.2,
    colormap: str = "grey",
    invert: bool = False,
) -> np.ndarray:
    """Render one tile of float data as an 8-bit raster.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(nchannels, h, w)`` float32 data, NaN for blank pixels. May be a
        non-contiguous view of a read-only memory map; it is never modified.
    cuts : numpy.ndarray
        ``(nchannels, 2)`` default (min, max) per channel; never modified.
    channel : int or None, optional
        1-based channel for mono mode; ``None`` selects colour mode. A channel out of
        range means channel 1.
    minmax : tuple of (int, float, float), or None, optional
        ``(channel, min, max)`` rows overriding the cuts of those channels.
    mix : tuple of (int, float, float, float), or None, optional
        ``(channel, r, g, b)`` rows for colour mode, see :func:`mix_matrix`.
    brightness : float, optional
        Offset in percent of the display range, scaled by the contrast.
    contrast : float, optional
        Gain applied to the cuts' range.
    gamma : float, optional
        Display gamma; gammas below 0.01 count as 0.01.
    colormap : str, optional
        One of :data:`COLORMAP_NAMES`, for mono mode only.
    invert : bool, optional
        Whether to render the negative (blank pixels become white).

    Returns
    -------
    raster : numpy.ndarray
        C-contiguous uint8 array, ``(h, w)`` in mono mode with the grey colormap,
        otherwise ``(h, w, 3)``. It may be read-only.

    Raises
    ------
    ValueError
        If `tile` is not 3-D or `cuts` does not hold one (min, max) per channel.
    BadParameterError
        If `colormap` is unknown.
    """
    return np.asarray(
        _render_image(
            tile,
            cuts,
            channel=channel,
            minmax=minmax,
            mix=mix,
            brightness=brightness,
            contrast=contrast,
            gamma=gamma,
            colormap=colormap,
            invert=invert,
        ).image
    )


def render_jpeg(tile: np.ndarray, cuts: np.ndarray, quality: int, **settings: Any) -> bytes:
    """Render one tile and encode it as JPEG, without an intermediate numpy raster.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(nchannels, h, w)`` float32 data, as for :func:`render_tile`.
    cuts : numpy.ndarray
        ``(nchannels, 2)`` default (min, max) per channel.
    quality : int
        JPEG quality, 0 to 100.
    **settings : Any
        Keyword arguments of :func:`render_tile` (channel, minmax, mix, ...).

    Returns
    -------
    jpeg : bytes
        One-band JPEG in mono mode with the grey colormap, else three-band.
    """
    _check_quality(quality)
    image, flat_chroma = _render_image(tile, cuts, **settings)
    return _encode_image(image, quality, flat_chroma)


def encode_jpeg(raster: np.ndarray, quality: int) -> bytes:
    """Encode a raster from :func:`render_tile` as JPEG.

    Parameters
    ----------
    raster : numpy.ndarray
        uint8 ``(h, w)`` grey or ``(h, w, 3)`` RGB array.
    quality : int
        JPEG quality, 0 to 100.

    Returns
    -------
    jpeg : bytes
        The encoded image, one band (``"L"``) or three (``"RGB"``).

    Raises
    ------
    ValueError
        If `raster` is not a uint8 grey or RGB raster.
    BadParameterError
        If `quality` is outside 0 to 100.
    """
    _check_quality(quality)
    if raster.dtype != np.uint8 or not (
        raster.ndim == 2 or (raster.ndim == 3 and raster.shape[2] == 3)
    ):
        raise ValueError(
            f"expected a uint8 (h, w) or (h, w, 3) raster, got {raster.dtype} "
            f"with shape {raster.shape}"
        )
    mode = "L" if raster.ndim == 2 else "RGB"
    data = np.ascontiguousarray(raster)  # no copy for render_tile's output
    height, width = raster.shape[:2]
    return _encode_image(
        Image.frombuffer(mode, (width, height), data, "raw", mode, 0, 1), quality
    )


def _check_quality(quality: int) -> None:
    if not 0 <= quality <= 100:
        raise BadParameterError(
            f"JPEG quality {quality} is out of range; use 0 to 100", loc=("query", "QLT")
        )


def _encode_image(image: Image.Image, quality: int, flat_chroma: bool = False) -> bytes:
    """Encode a grey or RGB image as JPEG; `flat_chroma` if its RGB bands are equal."""
    buffer = io.BytesIO()
    # Colour JPEGs keep full chroma resolution (4:4:4), as the reference server's
    # do: stars are a few pixels wide, and 4:2:0 would smear the colours of a
    # colormap or a channel mix over 2 x 2 pixels. Equal bands (colour mode with
    # equal weights) have no colour: their chroma is 128 everywhere, which 4:2:0
    # keeps exactly, and encoding it costs a third less.
    subsampling = 2 if flat_chroma else 0
    image.save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
    return buffer.getvalue()


def resize_raster(raster: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a rendered raster to another size with area averaging.

    Used for regions whose binning is not a power of two: the pyramid level
    nearest below the binning is rendered, then reduced to the asked size.

    Parameters
    ----------
    raster : ndarray
        uint8 raster, (h, w) or (h, w, 3).
    shape : tuple[int, int]
        Output (height, width), both at least 1.

    Returns
    -------
    raster : ndarray
        Resampled uint8 raster with the same number of bands.
    """
    image = Image.fromarray(np.ascontiguousarray(raster))
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BOX))
