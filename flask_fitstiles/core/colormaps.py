"""Colormap lookup tables of the mono mode, equal to the reference server's.

The reference server (VisiOmatic) colours a mono tile with OpenCV's colormaps:
``jet`` is ``COLORMAP_JET``, ``hot`` is ``COLORMAP_HOT``, and both ``cool`` and
``cold`` are ``COLORMAP_COOL``. OpenCV defines each of them by samples of the
red, green and blue bands at ``n`` evenly spaced positions of [0, 1] and builds
its 256-entry table by linear interpolation between the samples, in single
precision, then scales by 255 and rounds half to even. The bands sampled are:

======  =======  =======================  =======================  =======================
name    samples  red                      green                    blue
======  =======  =======================  =======================  =======================
jet     256      min(4x - 1.5, 4.5 - 4x)  min(4x - 0.5, 3.5 - 4x)  min(4x + 0.5, 2.5 - 4x)
hot     64       2.5x                     2.5x - 1                 5x - 4
cool    256      x                        1 - x                    1
======  =======  =======================  =======================  =======================

each clipped to [0, 1]. Rounding halves to even depends on the last bit of
every single-precision step (positions, differences, the interpolation), so
those steps are reproduced one by one: the result equals OpenCV's tables entry
for entry (``tests/core/test_colormaps.py`` compares all of them). The 64
samples of ``hot`` are what give that table its soft knees where a band
saturates.

The tables are built once, at import, as read-only ``(256, 3)`` uint8 arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from ..errors import BadParameterError

__all__ = ["COLORMAP_NAMES", "colormap_lut", "colormap_palette"]

#: Colormap names of the mono mode; "grey" keeps a single band.
COLORMAP_NAMES: tuple[str, ...] = ("grey", "jet", "cold", "cool", "hot")

_Band = Callable[[np.ndarray], np.ndarray]


def _single_linspace(n: int) -> np.ndarray:
    """Return ``n`` positions ``i * (1 / (n - 1))``, each step in float32."""
    step = np.float32(1.0) / np.float32(n - 1)
    return np.arange(n, dtype=np.float32) * step


def _interpolated_table(bands: tuple[_Band, _Band, _Band], nsamples: int) -> np.ndarray:
    """Sample three bands at `nsamples` positions and interpolate them to 256 levels."""
    positions = _single_linspace(nsamples)
    levels = _single_linspace(256)
    # The bands are sampled in double precision at k / (n - 1), then stored as
    # float32, as constants in single precision would be.
    exact = np.arange(nsamples, dtype=np.float64) / (nsamples - 1)
    # The interval [lo, lo + 1] of each level: the first sample at or beyond
    # it closes the interval; levels outside the samples use the end intervals.
    lo = np.clip(np.searchsorted(positions, levels, side="left") - 1, 0, nsamples - 2)
    hi = lo + 1
    table = np.empty((256, 3), dtype=np.uint8)
    for index, band in enumerate(bands):
        samples = np.clip(band(exact), 0.0, 1.0).astype(np.float32)
        # One float32 operation at a time, in this order: the ties at .5 after
        # scaling round the same way only if every intermediate value does.
        rise = samples[hi] - samples[lo]
        value = samples[lo] + ((levels - positions[lo]) * rise) / (
            positions[hi] - positions[lo]
        )
        scaled = value * np.float32(255.0)
        table[:, index] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def _build_luts() -> dict[str, np.ndarray]:
    """Return the table of every colormap but grey, by name."""
    luts = {
        "jet": _interpolated_table(
            (
                lambda x: np.minimum(4.0 * x - 1.5, 4.5 - 4.0 * x),
                lambda x: np.minimum(4.0 * x - 0.5, 3.5 - 4.0 * x),
                lambda x: np.minimum(4.0 * x + 0.5, 2.5 - 4.0 * x),
            ),
            256,
        ),
        "hot": _interpolated_table(
            (lambda x: 2.5 * x, lambda x: 2.5 * x - 1.0, lambda x: 5.0 * x - 4.0), 64
        ),
        "cool": _interpolated_table((lambda x: x, lambda x: 1.0 - x, np.ones_like), 256),
    }
    # The reference maps the VisiOmatic client's "cold" to OpenCV's COOL as well.
    luts["cold"] = luts["cool"]
    return luts


_LUTS: Final[dict[str, np.ndarray]] = _build_luts()
# Pillow palettes of the same tables, for its palette-to-RGB expansion.
_PALETTES: Final[dict[str, bytes]] = {name: lut.tobytes() for name, lut in _LUTS.items()}


def colormap_lut(name: str) -> np.ndarray | None:
    """Return the lookup table of a colormap.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAP_NAMES`.

    Returns
    -------
    lut : numpy.ndarray or None
        Read-only ``(256, 3)`` uint8 table mapping a grey level to (R, G, B), or
        ``None`` for ``"grey"``, which stays a single band.

    Raises
    ------
    BadParameterError
        If `name` is not a known colormap (a subclass of `ValueError`).
    """
    if name == "grey":
        return None
    try:
        return _LUTS[name]
    except KeyError:
        raise BadParameterError(
            f"unknown colormap {name!r}; use one of {', '.join(COLORMAP_NAMES)}",
            loc=("query", "CMP"),
        ) from None


def colormap_palette(name: str) -> bytes | None:
    """Return the table of :func:`colormap_lut` as a Pillow palette.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAP_NAMES`.

    Returns
    -------
    palette : bytes or None
        768 bytes, (R, G, B) for each grey level, or ``None`` for ``"grey"``.

    Raises
    ------
    BadParameterError
        If `name` is not a known colormap.
    """
    # colormap_lut checks the name.
    return None if colormap_lut(name) is None else _PALETTES[name]
