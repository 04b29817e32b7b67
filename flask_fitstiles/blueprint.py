"""Thin views: parse the request, call the registry and the image, return bytes or JSON.

Endpoints, relative to the mount's ``url_prefix``:

- ``GET /iip?FIF=...&...``: the IIP protocol (tiles, regions, image
  information, pixel values, profiles); without FIF, a short HTML page.
- ``GET /images``: JSON list of the images of the data folder; with ``dir``,
  ``limit`` or ``cursor``, one page of one folder (sub-folders and images).
- ``GET /``: HTML page that browses the data folder, folder by folder, one page
  at a time, with thumbnails of the prepared images (unless FITSTILES_INDEX is
  off); it never prepares an image and carries a Content-Security-Policy.
- ``GET /viewer?FIF=...``: the viewer page of one image, and under
  ``/viewer/static/`` and ``/viewer/leaflet/`` the files it loads (see
  :mod:`flask_fitstiles.viewer`; off with FITSTILES_VIEWER).
- ``GET /openapi.json``: the OpenAPI 3.1 document of these endpoints.
- ``GET /stats``: cache figures of the worker process that answers (unless
  FITSTILES_STATS is off).

Every error under the prefix is JSON ``{"detail": [{"loc", "msg", "type"}]}``
with its status, in the shape the VisiOmatic client reads: the
:class:`~flask_fitstiles.errors.FitsTilesError` family maps to its own status,
unknown paths to 404, other methods to 405, and anything unexpected to a 500
that is logged once with the request but shows no detail to the client.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Response, current_app, render_template, request, url_for
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from .browse import encode_cursor, parse_listing_query
from .core.listing import FolderPage
from .errors import BadParameterError, FitsTilesError, ImageBusyError
from .iip import IIPRequest, parse_iip_query
from .indexpage import index_context
from .models import FolderEntryModel, FolderPageModel, ImageEntryModel
from .openapi import openapi_json
from .viewer import CONTENT_SECURITY_POLICY, leaflet_file, static_file, viewer

if TYPE_CHECKING:
    from .extension import FitsTilesState
    from .tiled import Tiled

__all__ = ["make_blueprint"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
_ALLOW = "GET, HEAD, OPTIONS"
_COMMANDS = "INFO, obj, JTL=z,n, RGN=x1,y1:x2,y2 (with BIN), VAL=x,y or PFL=x1,y1:x2,y2"


def _state() -> FitsTilesState:
    """Return the state of the mount that routed the current request."""
    mounts = current_app.extensions["fitstiles"]
    return cast("FitsTilesState", mounts[request.blueprint])


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype=_JSON)


def _detail(status: int, loc: list[str], msg: str, error_type: str) -> Response:
    body = json.dumps({"detail": [{"loc": loc, "msg": msg, "type": error_type}]})
    return _json(body, status)


# -- the IIP endpoint -------------------------------------------------------------------


def iip() -> Response:
    """Answer one IIP request (see the IIP table of the design).

    Returns
    -------
    response : flask.Response
        JPEG, JSON, text or HTML, depending on the command.
    """
    query = parse_iip_query(request.args.items(multi=True))
    if query.fif is None:
        if _has_command(query):
            raise BadParameterError(
                "FIF is required: name the image, e.g. FIF=image.fits&INFO "
                "(the images endpoint lists them)",
                ("query", "FIF"),
            )
        return _service_page()
    if not _has_command(query):
        raise BadParameterError(
            f"FIF alone is not a request; add one of {_COMMANDS}", ("query",)
        )
    state = _state()
    tiled = state.registry.open(query.fif, query.extnum)
    if query.tile is not None:
        return _tile(tiled, *query.tile, query, state.settings.tile_max_age)
    if query.info:
        model = tiled.get_model().model_copy(update={"type": state.settings.service_type})
        return _json(model.model_dump_json())
    if query.obj:
        return Response(tiled.get_iipheaderstr(), mimetype="text/plain")
    if query.region is not None:
        jpeg = tiled.get_encoded_region(
            query.region, binning=query.binning, **_render_options(query)
        )
        return Response(jpeg, mimetype="image/jpeg")
    if query.value is not None:
        values = tiled.get_pixel_values(query.channels or (1,), query.value)
        return _json(values.model_dump_json())
    if query.profile is not None:
        profile = tiled.get_profiles(query.channels or None, *query.profile)
        return _json(profile.model_dump_json())
    raise BadParameterError(f"add one of {_COMMANDS}", ("query",))  # pragma: no cover


def _has_command(query: IIPRequest) -> bool:
    return (
        query.info
        or query.obj
        or query.tile is not None
        or query.region is not None
        or query.value is not None
        or query.profile is not None
    )


def _render_options(query: IIPRequest) -> dict[str, Any]:
    return {
        "channel": query.channel,
        "minmax": query.minmax or None,
        "mix": query.mix or None,
        "brightness": query.brightness,
        "contrast": query.contrast,
        "gamma": query.gamma,
        "colormap": query.colormap,
        "invert": query.invert,
        "quality": query.quality,
    }


def _tile(tiled: Tiled, z: int, index: int, query: IIPRequest, max_age: int) -> Response:
    """Return one tile; the hot path of the service."""
    # JTL counts levels from the coarsest; a z beyond the finest means full resolution.
    level = max(0, tiled.nlevels - 1 - z)
    jpeg = tiled.get_encoded_tile(level, index, **_render_options(query))
    response = Response(jpeg, mimetype="image/jpeg")
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


def _service_page() -> Response:
    state = _state()
    images_url = url_for(f"{request.blueprint}.images")
    index_url = url_for(f"{request.blueprint}.index")
    index_link = f'<a href="{escape(index_url)}">list</a>, ' if state.settings.index else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FITS tile service</title></head>
<body>
<h1>FITS tile service</h1>
<p>This is an <a href="https://iipimage.sourceforge.io/documentation/protocol/">IIP</a>
endpoint (flask_fitstiles, type
<code>{escape(state.settings.service_type)}</code>) for the FITS images of one folder.
Name an image with <code>FIF</code> and add a command:</p>
<ul>
<li><code>?FIF=image.fits&amp;INFO</code>: image information (JSON)</li>
<li><code>?FIF=image.fits&amp;obj</code>: IIP header (text)</li>
<li><code>?FIF=image.fits&amp;JTL=z,n</code>: JPEG tile n of level z (0 is the coarsest);
rendering with CHAN, MINMAX, MIX, CMP, INV, BRT, CNT, GAM, QLT</li>
<li><code>?FIF=image.fits&amp;RGN=x1,y1:x2,y2&amp;BIN=b</code>: JPEG of a region</li>
<li><code>?FIF=image.fits&amp;VAL=x,y</code>: pixel values (JSON)</li>
<li><code>?FIF=image.fits&amp;PFL=x1,y1:x2,y2</code>: profile along a line (JSON)</li>
</ul>
<p>The images: {index_link}<a href="{escape(images_url)}">JSON</a>.</p>
</body></html>
"""
    return Response(body, mimetype="text/html")


# -- other endpoints --------------------------------------------------------------------


def images() -> Response:
    """Return the images of the data folder: all of them, or one page of one folder.

    Returns
    -------
    response : flask.Response
        Without ``dir``, ``limit`` and ``cursor``: the flat list of every image
        of the tree, ``[{"name", "size", "prepared"}, ...]``. With any of them:
        a ``FolderPageModel`` (sub-folders, images, ``next_cursor``).
    """
    query = parse_listing_query(request.args.items(multi=True))
    registry = _state().registry
    if not query.paged:
        return _json(json.dumps(registry.list_images()))
    page = registry.list_folder(query.dir, query.after, query.limit)
    return _json(_page_model(page).model_dump_json())


def _page_model(page: FolderPage) -> FolderPageModel:
    return FolderPageModel(
        dir=page.dir,
        parent=page.parent,
        folders=[FolderEntryModel(name=name) for name in page.folders],
        images=[
            ImageEntryModel(name=image.name, size=image.size, prepared=image.prepared)
            for image in page.images
        ],
        next_cursor=(
            encode_cursor(page.dir, page.next_position)
            if page.next_position is not None
            else None
        ),
    )


def openapi() -> Response:
    """Return the OpenAPI document of this mount's endpoints.

    Returns
    -------
    response : flask.Response
        JSON OpenAPI 3.1 document; its server URL is the mount's prefix.
    """
    from . import __version__

    state = _state()
    server_url = (request.script_root + state.url_prefix) or "/"
    settings = state.settings
    return _json(
        openapi_json(
            server_url,
            version=__version__,
            stats=settings.stats,
            viewer=settings.viewer,
            index=settings.index,
        )
    )


def stats() -> Response:
    """Return the cache figures of the worker process that answers.

    Returns
    -------
    response : flask.Response
        JSON ``StatsModel`` (see the OpenAPI document), or a JSON 404 if the
        endpoint is disabled (FITSTILES_STATS).
    """
    state = _state()
    if not state.settings.stats:
        return not_found()
    return _json(json.dumps(state.registry.stats()))


def index() -> Response:
    """Return the HTML page that browses one folder of the data folder, one page at a time.

    Takes the query of ``/images`` (``dir``, ``limit``, ``cursor``). Folders
    link to their own listing; images link to the viewer and show the coarsest
    tile as a thumbnail if they are prepared (the page never prepares one).

    Returns
    -------
    response : flask.Response
        HTML page with a Content-Security-Policy, or a JSON 404 if the page is
        disabled (FITSTILES_INDEX).
    """
    state = _state()
    if not state.settings.index:
        return not_found()
    query = parse_listing_query(request.args.items(multi=True))
    page = state.registry.list_folder(query.dir, query.after, query.limit)
    response = Response(
        render_template(
            "fitstiles/index.html", **index_context(query, page, state.settings.viewer)
        ),
        mimetype="text/html",
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def not_found(path: str = "") -> Response:
    """Answer JSON 404 for any other path under the prefix.

    Parameters
    ----------
    path : str, optional
        The unknown path (not echoed).

    Returns
    -------
    response : flask.Response
        JSON 404.
    """
    return _detail(
        404,
        ["path"],
        "no such endpoint; this service answers iip (the IIP protocol), images, "
        "openapi.json, viewer and the page at its root",
        "not_found",
    )


def options() -> Response:
    """Answer OPTIONS with the methods of the endpoints.

    Returns
    -------
    response : flask.Response
        Empty answer with an ``Allow`` header.
    """
    response = Response(status=200)
    response.headers["Allow"] = _ALLOW
    return response


def method_not_allowed(path: str = "") -> Response:
    """Answer JSON 405 to a method other than GET, HEAD or OPTIONS.

    Parameters
    ----------
    path : str, optional
        The path (not echoed).

    Returns
    -------
    response : flask.Response
        JSON 405 with an ``Allow`` header.
    """
    response = _detail(
        405,
        ["method"],
        f"method {request.method} is not allowed here; use GET",
        "method_not_allowed",
    )
    response.headers["Allow"] = _ALLOW
    return response


# -- errors ------------------------------------------------------------------------------


def handle_fitstiles_error(error: FitsTilesError) -> Response:
    """Translate a FitsTilesError into its JSON answer and status.

    Parameters
    ----------
    error : FitsTilesError
        The error.

    Returns
    -------
    response : flask.Response
        ``{"detail": [...]}`` with the error's status (and Retry-After for 503).
    """
    response = _json(json.dumps({"detail": error.to_detail()}), error.status)
    if isinstance(error, ImageBusyError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def handle_http_error(error: HTTPException) -> Response:
    """Translate a werkzeug HTTP error raised inside a view into JSON.

    Parameters
    ----------
    error : werkzeug.exceptions.HTTPException
        The error.

    Returns
    -------
    response : flask.Response
        ``{"detail": [...]}`` with the error's status.
    """
    code = error.code or 500
    name = (error.name or "error").lower().replace(" ", "_")
    return _detail(code, [], error.description or error.name or "error", name)


def handle_unexpected_error(error: Exception) -> Response:
    """Log an unexpected error with its request and answer a bare JSON 500.

    Parameters
    ----------
    error : Exception
        The error.

    Returns
    -------
    response : flask.Response
        JSON 500 that shows nothing of the error itself.
    """
    # Once, with the request line and the status; the client sees no detail.
    logger.exception(
        "unexpected error answering %s %s: status 500", request.method, request.full_path
    )
    return _detail(
        500,
        [],
        "internal server error; it has been logged, try again later or tell the site's "
        "administrators",
        "server_error",
    )


# -- assembly ----------------------------------------------------------------------------


def make_blueprint(name: str) -> Blueprint:
    """Return the blueprint of one FitsTiles mount.

    The views find their settings and registry in
    ``current_app.extensions["fitstiles"][name]``, ``name`` being the
    blueprint's name.

    Parameters
    ----------
    name : str
        Name of the mount (also the blueprint's name).

    Returns
    -------
    blueprint : flask.Blueprint
        Blueprint with the views and the error handlers.
    """
    # Not "/static": mounted at the site root, the app's own static route would
    # shadow it.
    bp = Blueprint(
        name,
        __name__,
        static_folder="static",
        static_url_path="/fitstiles-static",
        template_folder="templates",
    )
    for rule, endpoint, view in (
        ("/iip", "iip", iip),
        ("/images", "images", images),
        ("/", "index", index),
        ("/openapi.json", "openapi", openapi),
        ("/stats", "stats", stats),
        ("/viewer", "viewer", viewer),
    ):
        bp.add_url_rule(
            rule, endpoint, view, methods=["GET"], provide_automatic_options=False
        )
        bp.add_url_rule(rule, f"{endpoint}_options", options, methods=["OPTIONS"])
        bp.add_url_rule(
            rule,
            f"{endpoint}_other",
            method_not_allowed,
            methods=_OTHER_METHODS,
            provide_automatic_options=False,
        )
    # The viewer's files: GET only; other methods fall to the JSON 404 below.
    bp.add_url_rule("/viewer/static/<path:filename>", "viewer_static", static_file)
    bp.add_url_rule("/viewer/leaflet/<path:filename>", "viewer_leaflet", leaflet_file)
    bp.add_url_rule(
        "/<path:path>", "not_found", not_found, methods=["GET", "OPTIONS", *_OTHER_METHODS]
    )
    bp.register_error_handler(FitsTilesError, handle_fitstiles_error)
    bp.register_error_handler(HTTPException, handle_http_error)
    bp.register_error_handler(Exception, handle_unexpected_error)
    return bp
