"""The OpenAPI 3.1 document of the endpoints, served at ``<prefix>/openapi.json``.

The JSON answers are described by the JSON schemas of the pydantic models of
:mod:`flask_fitstiles.models`; the query parameters of ``/iip`` by hand, after
what :func:`flask_fitstiles.iip.parse_iip_query` accepts. Every value that the
parser accepts matches its schema (the patterns allow the same surrounding
whitespace and signs), so a request that breaks the document is always refused
with a 4xx; schema-valid requests may still be refused (an unknown image, a
tile index out of range for that image).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from .browse import LISTING_PARAMETERS
from .iip import MAX_REPEATS, MAX_VALUE_LENGTH
from .models import (
    FolderPageModel,
    ImageEntryModel,
    PixelValueModel,
    ProfileModel,
    TiledModel,
)

__all__ = ["openapi_document", "openapi_json"]

_REF = "#/components/schemas/{model}"
_INT_MAX = 2**31 - 1

# The parser's number syntax (ASCII digits, optional sign, ASCII whitespace).
_WS = r"\s*"
_INT = rf"{_WS}[+-]?[0-9]+{_WS}"
_FLOAT = rf"{_WS}[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?{_WS}"
_PAIR = f"^{_INT},{_INT}$"
_TWO_PAIRS = f"^{_INT},{_INT}:{_INT},{_INT}$"
# CMP is stripped (any Unicode whitespace) and compared in lower case.
_CMP_WS = r"[\s\x1c-\x1f]*"
_COLORMAP = "|".join(
    "".join(f"[{c}{c.upper()}]" for c in name)
    for name in ("grey", "jet", "cold", "cool", "hot")
)


def _string(pattern: str | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_VALUE_LENGTH, **extra}
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


def _repeated(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": MAX_REPEATS}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
    if schema.get("type") == "array":
        parameter.update(style="form", explode=True)
    return parameter


_FLAG = "flag: present with any value, or bare"
# Flags are never parsed: any value, any length, any number of times.
_FLAG_SCHEMA: dict[str, Any] = {"type": "string"}

_IIP_PARAMETERS = [
    _query(
        "FIF",
        "image: path relative to the data folder, optionally followed by [N] to serve "
        "HDU N alone; without FIF (and without a command) the answer is an HTML page",
        _string(minLength=1),
    ),
    _query("INFO", f"{_FLAG}; JSON description of the image (TiledModel)", _FLAG_SCHEMA),
    _query(
        "obj",
        f"{_FLAG}, repeatable (e.g. OBJ=IIP,1.0); text/plain IIP header",
        {"type": "array", "items": _FLAG_SCHEMA},
    ),
    _query(
        "JTL",
        "JPEG tile 'z,n': tile n of level z, z = 0 being the coarsest level",
        _string(_PAIR),
    ),
    _query(
        "CHAN",
        "1-based channel, repeatable: mono mode for tiles, the channels of VAL and PFL",
        _repeated({"type": "integer", "minimum": 1, "maximum": _INT_MAX}),
    ),
    _query(
        "MINMAX",
        "cuts of a channel, 'c:min,max', repeatable",
        _repeated(_string(f"^{_INT}:{_FLOAT},{_FLOAT}$")),
    ),
    _query(
        "MIX",
        "colour of a channel in colour mode, 'c:r,g,b', repeatable",
        _repeated(_string(f"^{_INT}:{_FLOAT},{_FLOAT},{_FLOAT}$")),
    ),
    _query(
        "CMP",
        "colormap (mono mode): grey, jet, cold, cool or hot (any case)",
        _string(f"^{_CMP_WS}({_COLORMAP}){_CMP_WS}$"),
    ),
    _query("INV", f"{_FLAG}; invert the colours", _FLAG_SCHEMA),
    _query("BRT", "brightness", {"type": "number", "minimum": -100, "maximum": 100}),
    _query("CNT", "contrast", {"type": "number", "minimum": 0, "maximum": 1000}),
    _query("GAM", "display gamma", {"type": "number", "minimum": 0.2, "maximum": 5}),
    _query("QLT", "JPEG quality", {"type": "integer", "minimum": 0, "maximum": 100}),
    _query(
        "RGN",
        "JPEG of the region 'x1,y1:x2,y2': full-resolution pixels of the image as "
        "displayed (origin top-left, y down, 1-based, inclusive)",
        _string(_TWO_PAIRS),
    ),
    _query("BIN", "binning of RGN", {"type": "integer", "minimum": 1, "maximum": 65536}),
    _query(
        "VAL",
        "pixel values at FITS pixel 'x,y' (1-based, y up), JSON PixelValueModel",
        _string(_PAIR),
    ),
    _query(
        "PFL",
        "profile along the line 'x1,y1:x2,y2' between FITS pixels, JSON ProfileModel",
        _string(_TWO_PAIRS),
    ),
]

_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorModel",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}

_COUNT = {"type": "integer", "minimum": 0}

_STATS_SCHEMA: dict[str, Any] = {
    "title": "StatsModel",
    "type": "object",
    "description": "figures of the worker process that answered",
    "required": [
        "pid",
        "open_images",
        "max_open_images",
        "tile_cache",
        "prepared_images",
        "max_cached_images",
    ],
    "properties": {
        "pid": {"type": "integer"},
        "open_images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "extnum", "size", "mtime_ns"],
                "properties": {
                    "name": {"type": "string"},
                    "extnum": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "size": _COUNT,
                    "mtime_ns": {"type": "integer"},
                },
            },
        },
        "max_open_images": _COUNT,
        "tile_cache": {
            "type": "object",
            "required": ["bytes", "max_bytes", "entries", "hits", "misses"],
            "properties": {
                name: _COUNT for name in ("bytes", "max_bytes", "entries", "hits", "misses")
            },
        },
        "prepared_images": _COUNT,
        "max_cached_images": _COUNT,
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": _REF.format(model="ErrorModel")}}
        },
    }


_HTML = {"text/html": {"schema": {"type": "string"}}}

_LISTING_PARAMETERS = [
    _query(name, description, schema) for name, description, schema in LISTING_PARAMETERS
]
_URI_TOO_LONG = {
    "description": "the request line is longer than the HTTP server accepts "
    "(gunicorn: 4094 bytes by default); answered by the HTTP server itself"
}
_LISTING_ERRORS = {
    "400": _error("a malformed dir, limit or cursor (loc names it)"),
    "404": _error("no such folder, or a name that leads outside the data folder"),
    "414": _URI_TOO_LONG,
}


def _get(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, **extra, "responses": responses}}


def openapi_document(
    server_url: str = "/",
    *,
    version: str = "",
    stats: bool = True,
    viewer: bool = True,
    index: bool = True,
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of one mount of the service.

    Parameters
    ----------
    server_url : str, optional
        URL of the mount (its prefix), the base of every path.
    version : str, optional
        Version of the package, for ``info.version``.
    stats : bool, optional
        Whether the ``/stats`` endpoint is documented (it is enabled).
    viewer : bool, optional
        Whether the ``/viewer`` page is documented (it is enabled).
    index : bool, optional
        Whether the index page ``/`` is documented (it is enabled).

    Returns
    -------
    document : dict
        The OpenAPI document, ready for :func:`json.dumps`.
    """
    _, top = models_json_schema(
        [
            (TiledModel, "serialization"),
            (PixelValueModel, "serialization"),
            (ProfileModel, "serialization"),
            (ImageEntryModel, "serialization"),
            (FolderPageModel, "serialization"),
        ],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["ErrorModel"] = _ERROR_SCHEMA
    if stats:
        schemas["StatsModel"] = _STATS_SCHEMA
    json_answer = {
        "anyOf": [
            {"$ref": _REF.format(model=name)}
            for name in ("TiledModel", "PixelValueModel", "ProfileModel")
        ]
    }
    iip_responses = {
        "200": {
            "description": "a JPEG (JTL, RGN), JSON (INFO, VAL, PFL), the IIP header "
            "as text (obj), or without FIF an HTML page about the service",
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": json_answer},
                "text/plain": {"schema": {"type": "string"}},
                **_HTML,
            },
        },
        "400": _error("a malformed or out-of-range parameter (loc names it)"),
        "404": _error("no such image, or a name that leads outside the data folder"),
        "422": _error("the file is not a displayable FITS image"),
        "503": {
            **_error("another worker is still preparing the image; retry later"),
            "headers": {
                "Retry-After": {
                    "description": "seconds to wait before retrying",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        },
        "414": _URI_TOO_LONG,
        "500": _error("an unexpected server error (logged; no detail shown)"),
    }
    paths: dict[str, Any] = {
        "/iip": _get(
            "The IIP protocol: tiles, regions, image information, pixel values, profiles",
            iip_responses,
            operationId="iip",
            description="Parameter names are case-insensitive and unknown parameters "
            "are ignored. Give FIF and one command: INFO, obj, JTL, RGN, VAL or PFL.",
            parameters=_IIP_PARAMETERS,
        ),
        "/images": _get(
            "The FITS images of the data folder: all at once, or a folder by pages",
            {
                "200": {
                    "description": "without dir, limit and cursor: one entry per image "
                    "of the whole tree, sorted by name; with any of them: one page of "
                    "one folder (sub-folders first, then images, each sorted by name)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "anyOf": [
                                    {
                                        "type": "array",
                                        "items": {
                                            "$ref": _REF.format(model="ImageEntryModel")
                                        },
                                    },
                                    {"$ref": _REF.format(model="FolderPageModel")},
                                ]
                            }
                        }
                    },
                },
                **_LISTING_ERRORS,
            },
            operationId="images",
            parameters=_LISTING_PARAMETERS,
        ),
        "/openapi.json": _get(
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
            operationId="openapi",
        ),
    }
    if index:
        paths["/"] = _get(
            "HTML page that browses the data folder, folder by folder, by pages",
            {"200": {"description": "HTML page", "content": _HTML}, **_LISTING_ERRORS},
            operationId="index",
            parameters=_LISTING_PARAMETERS,
        )
    if stats:
        paths["/stats"] = _get(
            "Cache figures of the worker process that answers",
            {
                "200": {
                    "description": "figures of one worker process",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(model="StatsModel")}
                        }
                    },
                }
            },
            operationId="stats",
        )
    if viewer:
        paths["/viewer"] = _get(
            "The viewer page of one image (zoom, pan, cuts, colours, values, profiles)",
            {
                "200": {"description": "HTML page", "content": _HTML},
                "400": _error("FIF missing or malformed"),
                "404": _error(
                    "no such image, or a name that leads outside the data folder"
                ),
            },
            operationId="viewer",
            parameters=[
                {
                    **_IIP_PARAMETERS[0],
                    "required": True,
                    "description": "image, as in the IIP endpoint (optionally [N])",
                }
            ],
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FITS tile service (flask_fitstiles)",
            "version": version or "0",
            "description": "Astronomical FITS images served as JPEG tiles and JSON "
            "over the IIP protocol of the VisiOmatic web client. Errors are JSON "
            '{"detail": [{"loc", "msg", "type"}]}.',
        },
        "servers": [{"url": server_url or "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }


@lru_cache(maxsize=64)
def openapi_json(
    server_url: str = "/",
    *,
    version: str = "",
    stats: bool = True,
    viewer: bool = True,
    index: bool = True,
) -> str:
    """Return :func:`openapi_document` as JSON text (memoized).

    Parameters
    ----------
    server_url : str, optional
        URL of the mount.
    version : str, optional
        Version of the package.
    stats : bool, optional
        Whether the ``/stats`` endpoint is documented.
    viewer : bool, optional
        Whether the ``/viewer`` page is documented.
    index : bool, optional
        Whether the index page is documented.

    Returns
    -------
    text : str
        The document as JSON.
    """
    return json.dumps(
        openapi_document(
            server_url, version=version, stats=stats, viewer=viewer, index=index
        )
    )
