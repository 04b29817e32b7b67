"""IIP query string -> frozen :class:`IIPRequest` (plain strings in, no Flask).

The web layer hands over the decoded ``(name, value)`` pairs of the query string
(``request.args.items(multi=True)``); :func:`parse_iip_query` checks every known
parameter and returns one immutable request object, or raises
:class:`~flask_fitstiles.errors.BadParameterError` located at
``("query", NAME)``. It never raises anything else, whatever the strings.

Rules, as in the IIP table of the design:

- Parameter names are case-insensitive; unknown names are ignored (browsers add
  cache-busters such as ``_=123``).
- Flags (``INFO``, ``obj``, ``INV``) count as present whatever their value.
- Single-valued parameters given several times: the last one wins, but every
  value given is checked. ``CHAN``, ``MINMAX``, ``MIX`` and ``obj`` repeat.
- Numbers may carry surrounding ASCII whitespace. Only ASCII digits are numbers:
  Python's ``int`` and ``float`` would also take other scripts' digits
  (``int("٣") == 3``), underscores (``"1_0"``), ``"nan"`` and ``"inf"``, none of
  which an IIP client sends, so numbers are matched by regular expressions
  first. Floats must be finite and integers below 2**31 in magnitude.
- No value may exceed :data:`MAX_VALUE_LENGTH` characters, and no repeatable
  parameter may be given more than :data:`MAX_REPEATS` times.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import BadParameterError

__all__ = [
    "MAX_REPEATS",
    "MAX_VALUE_LENGTH",
    "IIPRequest",
    "parse_iip_query",
    "split_fif",
]

#: Longest value, in characters, that is parsed; longer ones are refused.
MAX_VALUE_LENGTH = 1000
#: Most values accepted for each repeatable parameter (CHAN, MINMAX, MIX).
MAX_REPEATS = 1024

_INT_LIMIT = 2**31
_COLORMAPS = ("grey", "jet", "cold", "cool", "hot")

# Explicit [0-9] and re.ASCII: no other scripts' digits or whitespace.
_INT = r"\s*([+-]?[0-9]+)\s*"
_UINT = r"\s*\+?([0-9]+)\s*"
_FLOAT = r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*"
_INT_RE = re.compile(_INT, re.ASCII)
_FLOAT_RE = re.compile(_FLOAT, re.ASCII)
_PAIR_RE = re.compile(f"{_INT},{_INT}", re.ASCII)
_TWO_PAIRS_RE = re.compile(f"{_INT},{_INT}:{_INT},{_INT}", re.ASCII)
_MINMAX_RE = re.compile(f"{_INT}:{_FLOAT},{_FLOAT}", re.ASCII)
_MIX_RE = re.compile(f"{_INT}:{_FLOAT},{_FLOAT},{_FLOAT}", re.ASCII)
_FIF_RE = re.compile(r"(.*)\[([^\[\]]*)\]", re.DOTALL)
_EXTNUM_RE = re.compile(_UINT, re.ASCII)


@dataclass(frozen=True, slots=True)
class IIPRequest:
    """One parsed IIP request; every field is checked and normalised.

    Parameters
    ----------
    fif : str or None
        ``FIF`` as given, without its ``[N]`` suffix; None without FIF.
    extnum : int or None
        HDU number N from a trailing ``[N]`` on ``FIF``, else None.
    info : bool
        ``INFO`` flag present.
    obj : bool
        ``obj`` present (any value, e.g. ``OBJ=IIP,1.0``).
    tile : tuple of int or None
        ``JTL`` as ``(z, n)``: IIP level (0 is the coarsest) and tile number.
    channels : tuple of int
        ``CHAN`` values (1-based) in the order given.
    minmax : tuple of tuple
        ``MINMAX`` values as ``(channel, min, max)``.
    mix : tuple of tuple
        ``MIX`` values as ``(channel, r, g, b)``.
    colormap : str
        ``CMP`` in lower case: one of grey, jet, cold, cool, hot.
    invert : bool
        ``INV`` flag present.
    brightness : float or None
        ``BRT``, in [-100, 100].
    contrast : float or None
        ``CNT``, in [0, 1000].
    gamma : float or None
        ``GAM``, in [0.2, 5].
    quality : int or None
        ``QLT``, JPEG quality in [0, 100].
    region : tuple of tuple of int or None
        ``RGN`` as ``((x1, y1), (x2, y2))``, displayed orientation.
    binning : int
        ``BIN``, in [1, 65536].
    value : tuple of int or None
        ``VAL`` as ``(x, y)``, FITS pixel coordinates.
    profile : tuple of tuple of int or None
        ``PFL`` as ``((x1, y1), (x2, y2))``, FITS pixel coordinates.
    """

    fif: str | None = None
    extnum: int | None = None
    info: bool = False
    obj: bool = False
    tile: tuple[int, int] | None = None
    channels: tuple[int, ...] = ()
    minmax: tuple[tuple[int, float, float], ...] = ()
    mix: tuple[tuple[int, float, float, float], ...] = ()
    colormap: str = "grey"
    invert: bool = False
    brightness: float | None = None
    contrast: float | None = None
    gamma: float | None = None
    quality: int | None = None
    region: tuple[tuple[int, int], tuple[int, int]] | None = None
    binning: int = 1
    value: tuple[int, int] | None = None
    profile: tuple[tuple[int, int], tuple[int, int]] | None = None

    @property
    def channel(self) -> int | None:
        """First ``CHAN`` value (mono mode for tiles), or None (colour mode).

        Returns
        -------
        channel : int or None
            1-based channel number, or None without CHAN.
        """
        return self.channels[0] if self.channels else None


def _error(name: str, expected: str, value: str) -> BadParameterError:
    return BadParameterError(f"{name} must be {expected}, got {value!r}", ("query", name))


def _ints(match: re.Match[str] | None, minimum: int = 1 - _INT_LIMIT) -> list[int] | None:
    """Return the integer groups of ``match``, or None if absent or out of bounds."""
    if match is None:
        return None
    values = [int(group) for group in match.groups()]
    if all(minimum <= v < _INT_LIMIT for v in values):
        return values
    return None


def _too_long(name: str, value: str) -> BadParameterError:
    return BadParameterError(
        f"{name} must be at most {MAX_VALUE_LENGTH} characters long, "
        f"got {len(value)} characters starting with {value[:20]!r}",
        ("query", name),
    )


def split_fif(value: str) -> tuple[str, int | None]:
    """Split an IIP ``FIF`` value into the image name and its optional HDU number.

    Parameters
    ----------
    value : str
        ``FIF`` as given, e.g. ``"dir/a.fits[2]"`` or ``"a.fits"``.

    Returns
    -------
    name : str
        The value without its ``[N]`` suffix, otherwise unchanged.
    extnum : int or None
        N from a trailing ``[N]`` (a non-negative integer), else None.

    Raises
    ------
    BadParameterError
        If the value is empty, too long, or ends with a malformed ``[...]``
        suffix (such as ``[x]`` or ``[-1]``).
    """
    expected = "an image name, optionally followed by '[N]' with N an HDU number >= 0"
    if len(value) > MAX_VALUE_LENGTH:
        raise _too_long("FIF", value)
    if not value.endswith("]"):
        if not value:
            raise _error("FIF", expected, value)
        return value, None
    match = _FIF_RE.fullmatch(value)
    if match is None or not match.group(1):
        raise _error("FIF", expected, value)
    ints = _ints(_EXTNUM_RE.fullmatch(match.group(2)), minimum=0)
    if ints is None:
        raise _error("FIF", expected, value)
    return match.group(1), ints[0]


@dataclass(frozen=True)
class _FloatIn:
    """Parser of a number within [low, high] for parameter `name`."""

    name: str
    low: float
    high: float

    def __call__(self, value: str) -> float:
        match = _FLOAT_RE.fullmatch(value)
        if match is not None:
            number = float(match.group(1))
            if self.low <= number <= self.high:  # also false for an overflow to inf
                return number
        raise _error(self.name, f"a number between {self.low:g} and {self.high:g}", value)


@dataclass(frozen=True)
class _IntIn:
    """Parser of an integer within [low, high] for parameter `name`."""

    name: str
    low: int
    high: int

    def __call__(self, value: str) -> int:
        match = _INT_RE.fullmatch(value)
        if match is not None:
            number = int(match.group(1))
            if self.low <= number <= self.high:
                return number
        raise _error(self.name, f"an integer between {self.low} and {self.high}", value)


def _parse_tile(value: str) -> tuple[int, int]:
    ints = _ints(_PAIR_RE.fullmatch(value), minimum=0)
    if ints is None:
        raise _error("JTL", "'level,tile' with two non-negative integers", value)
    return ints[0], ints[1]


def _parse_channel(value: str) -> int:
    ints = _ints(_INT_RE.fullmatch(value), minimum=1)
    if ints is None:
        raise _error("CHAN", "a channel number, an integer >= 1", value)
    return ints[0]


def _channel_floats(match: re.Match[str] | None) -> tuple[int, list[float]] | None:
    """Return the channel and numbers of a MINMAX or MIX match, or None if invalid."""
    if match is None:
        return None
    channel_text, *float_texts = match.groups()
    channel = int(channel_text)
    floats = [float(text) for text in float_texts]
    if not 1 <= channel < _INT_LIMIT or not all(math.isfinite(f) for f in floats):
        return None
    return channel, floats


def _parse_minmax(value: str) -> tuple[int, float, float]:
    parsed = _channel_floats(_MINMAX_RE.fullmatch(value))
    if parsed is None:
        raise _error(
            "MINMAX",
            "'channel:min,max' with an integer channel >= 1 and two finite numbers",
            value,
        )
    channel, (low, high) = parsed
    return channel, low, high


def _parse_mix(value: str) -> tuple[int, float, float, float]:
    parsed = _channel_floats(_MIX_RE.fullmatch(value))
    if parsed is None:
        raise _error(
            "MIX",
            "'channel:r,g,b' with an integer channel >= 1 and three finite numbers",
            value,
        )
    channel, (red, green, blue) = parsed
    return channel, red, green, blue


def _parse_colormap(value: str) -> str:
    colormap = value.strip().lower()
    if colormap not in _COLORMAPS:
        raise _error("CMP", f"one of {', '.join(_COLORMAPS)}", value)
    return colormap


@dataclass(frozen=True)
class _TwoPoints:
    """Parser of two integer points ``x1,y1:x2,y2`` for parameter `name`."""

    name: str

    def __call__(self, value: str) -> tuple[tuple[int, int], tuple[int, int]]:
        ints = _ints(_TWO_PAIRS_RE.fullmatch(value))
        if ints is None:
            raise _error(self.name, "'x1,y1:x2,y2' with four integers (|v| < 2**31)", value)
        return (ints[0], ints[1]), (ints[2], ints[3])


def _parse_value(value: str) -> tuple[int, int]:
    ints = _ints(_PAIR_RE.fullmatch(value))
    if ints is None:
        raise _error("VAL", "'x,y' with two integers (|v| < 2**31)", value)
    return ints[0], ints[1]


class _Param(NamedTuple):
    name: str  # canonical name, as in the design table and in error locations
    field: str  # IIPRequest field
    parse: Callable[[str], Any] | None  # None for a flag
    repeatable: bool = False


_PARAMS: dict[str, _Param] = {
    p.name.lower(): p
    for p in (
        _Param("FIF", "fif", split_fif),
        _Param("INFO", "info", None),
        _Param("obj", "obj", None),
        _Param("JTL", "tile", _parse_tile),
        _Param("CHAN", "channels", _parse_channel, repeatable=True),
        _Param("MINMAX", "minmax", _parse_minmax, repeatable=True),
        _Param("MIX", "mix", _parse_mix, repeatable=True),
        _Param("CMP", "colormap", _parse_colormap),
        _Param("INV", "invert", None),
        _Param("BRT", "brightness", _FloatIn("BRT", -100.0, 100.0)),
        _Param("CNT", "contrast", _FloatIn("CNT", 0.0, 1000.0)),
        _Param("GAM", "gamma", _FloatIn("GAM", 0.2, 5.0)),
        _Param("QLT", "quality", _IntIn("QLT", 0, 100)),
        _Param("RGN", "region", _TwoPoints("RGN")),
        _Param("BIN", "binning", _IntIn("BIN", 1, 65536)),
        _Param("VAL", "value", _parse_value),
        _Param("PFL", "profile", _TwoPoints("PFL")),
    )
}


def parse_iip_query(items: Iterable[tuple[str, str]]) -> IIPRequest:
    """Parse the decoded IIP query string into an :class:`IIPRequest`.

    Parameters
    ----------
    items : iterable of (str, str)
        ``(name, value)`` pairs in query order, e.g.
        ``request.args.items(multi=True)``; bare flags come with ``""``.

    Returns
    -------
    request : IIPRequest
        The checked request; absent parameters keep their defaults.

    Raises
    ------
    BadParameterError
        At ``("query", NAME)`` for the first malformed or out-of-range value.
    """
    fields: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    for name, value in items:
        param = _PARAMS.get(name.lower())
        if param is None:
            continue
        if param.parse is None:
            fields[param.field] = True
            continue
        if len(value) > MAX_VALUE_LENGTH:
            raise _too_long(param.name, value)
        if param.repeatable:
            values = lists.setdefault(param.field, [])
            if len(values) >= MAX_REPEATS:
                raise BadParameterError(
                    f"{param.name} may be given at most {MAX_REPEATS} times",
                    ("query", param.name),
                )
            values.append(param.parse(value))
        else:
            fields[param.field] = param.parse(value)
    if "fif" in fields:
        fields["fif"], fields["extnum"] = fields["fif"]
    for field, values in lists.items():
        fields[field] = tuple(values)
    return IIPRequest(**fields)
