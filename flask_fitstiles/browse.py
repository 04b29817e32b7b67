"""The query of the folder listings (``/images`` by pages, the index page).

Plain strings in, no Flask.

Parameters (names in lower case; unknown ones are ignored):

- ``dir``: a folder relative to the data folder, ``""`` (the default) being the
  data folder itself; confined like ``FIF`` (see
  :func:`~flask_fitstiles.core.listing.check_folder_name`).
- ``limit``: most entries per page, an integer in [1, :data:`MAX_LIMIT`]
  (ASCII digits only), :data:`DEFAULT_LIMIT` by default.
- ``cursor``: the ``next_cursor`` of the previous page, opaque to clients: the
  URL-safe base64 of a small JSON array holding the folder and the last entry
  returned. A cursor is only valid for the folder it was made for.

A value given several times: the last one wins; every ``dir`` and ``limit``
given is checked, and the last ``cursor`` against the last ``dir``. Errors are
:class:`~flask_fitstiles.errors.BadParameterError` at ``("query", NAME)``.
:data:`LISTING_PARAMETERS` describes them for the OpenAPI document.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .core.listing import FOLDER, IMAGE, Position, check_folder_name
from .errors import BadParameterError
from .iip import MAX_VALUE_LENGTH

__all__ = [
    "DEFAULT_LIMIT",
    "LISTING_PARAMETERS",
    "MAX_CURSOR_LENGTH",
    "MAX_LIMIT",
    "ListingQuery",
    "decode_cursor",
    "encode_cursor",
    "parse_listing_query",
]

#: Entries per page when ``limit`` is not given.
DEFAULT_LIMIT = 100
#: Largest ``limit`` accepted.
MAX_LIMIT = 1000
#: Longest cursor accepted (a cursor holds a folder name and a file name).
MAX_CURSOR_LENGTH = 4096

_CURSOR_VERSION = 1
_DIGITS_RE = re.compile(r"[0-9]{1,7}", re.ASCII)
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)

#: ``(name, description, JSON schema)`` of each parameter, for the OpenAPI document.
LISTING_PARAMETERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "dir",
        "folder to list, relative to the data folder (empty: the data folder itself); "
        "no leading '/', '..', hidden or empty components",
        {"type": "string", "maxLength": MAX_VALUE_LENGTH},
    ),
    (
        "limit",
        f"most entries (folders and images) per page, {DEFAULT_LIMIT} by default",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    ),
    (
        "cursor",
        "next_cursor of the previous page of the same folder (opaque)",
        {"type": "string", "maxLength": MAX_CURSOR_LENGTH, "pattern": "^[A-Za-z0-9_-]+$"},
    ),
)


@dataclass(frozen=True, slots=True)
class ListingQuery:
    """One parsed listing query.

    Parameters
    ----------
    dir : str
        Folder relative to the data folder (``""``: the data folder); its
        syntax is checked.
    limit : int
        Most entries on the page.
    after : Position or None
        Where the page starts after (from the cursor); None for the first page.
    paged : bool
        Whether any of ``dir``, ``limit`` or ``cursor`` was given (``/images``
        without them answers the whole flat list, as it always did).
    """

    dir: str = ""
    limit: int = DEFAULT_LIMIT
    after: Position | None = None
    paged: bool = False


def _bad(name: str, msg: str) -> BadParameterError:
    return BadParameterError(msg, ("query", name))


def encode_cursor(folder: str, position: Position) -> str:
    """Return the opaque cursor of the page that follows ``position`` in ``folder``.

    Parameters
    ----------
    folder : str
        Folder of the listing, as given in ``dir``.
    position : Position
        ``(kind, name)`` of the last entry returned.

    Returns
    -------
    cursor : str
        URL-safe base64 text without padding.
    """
    kind, name = position
    raw = json.dumps([_CURSOR_VERSION, folder, kind, name], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def decode_cursor(folder: str, cursor: str) -> Position:
    """Return the position a cursor stands for, checking that it fits ``folder``.

    Parameters
    ----------
    folder : str
        Folder of the listing, as given in ``dir``.
    cursor : str
        A cursor made by :func:`encode_cursor`.

    Returns
    -------
    position : Position
        ``(kind, name)`` of the last entry of the previous page.

    Raises
    ------
    BadParameterError
        If the cursor is malformed or was made for another folder.
    """
    bad = _bad(
        "cursor",
        "cursor is not one this service made; give the next_cursor of the previous "
        "page unchanged, or leave cursor out to start at the first page",
    )
    if len(cursor) > MAX_CURSOR_LENGTH or not _CURSOR_RE.fullmatch(cursor):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or value[0] != _CURSOR_VERSION
        or not isinstance(value[1], str)
        or type(value[2]) is not int
        or value[2] not in (FOLDER, IMAGE)
        or not isinstance(value[3], str)
        or not value[3]
        or "/" in value[3]
        or "\0" in value[3]
    ):
        raise bad
    if value[1] != folder:
        raise _bad(
            "cursor",
            "this cursor belongs to the listing of another folder; give the dir it came "
            "with, or leave cursor out to start at the first page",
        )
    return value[2], value[3]


def _limit(value: str) -> int:
    if _DIGITS_RE.fullmatch(value):
        limit = int(value)
        if 1 <= limit <= MAX_LIMIT:
            return limit
    raise _bad(
        "limit", f"limit must be an integer between 1 and {MAX_LIMIT}, got {value!r}"
    )


def parse_listing_query(items: Iterable[tuple[str, str]]) -> ListingQuery:
    """Parse the decoded query string of a listing into a :class:`ListingQuery`.

    Parameters
    ----------
    items : iterable of (str, str)
        ``(name, value)`` pairs in query order (``request.args.items(multi=True)``).

    Returns
    -------
    query : ListingQuery
        The checked query.

    Raises
    ------
    BadParameterError
        At ``("query", NAME)`` for the first malformed value.
    """
    values: dict[str, str] = {}
    for name, value in items:
        if name not in ("dir", "limit", "cursor"):
            continue
        if len(value) > (MAX_CURSOR_LENGTH if name == "cursor" else MAX_VALUE_LENGTH):
            raise _bad(name, f"{name} is too long ({len(value)} characters)")
        if name == "dir":
            check_folder_name(value)
        elif name == "limit":
            _limit(value)
        values[name] = value
    folder = values.get("dir", "")
    cursor = values.get("cursor")
    return ListingQuery(
        dir=folder,
        limit=_limit(values["limit"]) if "limit" in values else DEFAULT_LIMIT,
        after=decode_cursor(folder, cursor) if cursor is not None else None,
        paged=bool(values),
    )
