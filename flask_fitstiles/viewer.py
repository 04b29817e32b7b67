"""The viewer page: ``GET <prefix>/viewer?FIF=<image>`` and the files it loads.

The page is a Jinja template of the package; it loads Leaflet from the
installed ``xstatic-leaflet`` package and our own ES modules and CSS from the
package's ``static`` folder, all through this mount, so it works with no
network and under a Content-Security-Policy that allows the mount's own origin
alone. Everything the scripts need to know (the IIP URL, the image name, the
region limit) travels in ``data-`` attributes of the page, never in inline
script.

The page does not open the image: it checks the name as the IIP endpoint does
(same 400 and 404 answers) and leaves the preparation to the page's INFO
request, so that a large image never delays the page itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from flask import (
    Response,
    current_app,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from .errors import BadParameterError
from .iip import split_fif

if TYPE_CHECKING:
    from .extension import FitsTilesState

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "leaflet_file", "static_file", "viewer"]

#: Folder of the viewer's own JavaScript modules and CSS.
STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The page may load, fetch and show nothing but what its own origin serves;
#: no inline script or style, no plugins, no framing by other sites.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)

# Static files change only with the package; a short max-age plus ETags keeps
# a development server honest while sparing most revalidations.
_STATIC_MAX_AGE = 3600


def _state() -> FitsTilesState:
    mounts = current_app.extensions["fitstiles"]
    return cast("FitsTilesState", mounts[request.blueprint])


def _enabled() -> None:
    """Raise a JSON 404 (through the blueprint's handler) if the viewer is off."""
    if not _state().settings.viewer:
        from werkzeug.exceptions import NotFound

        raise NotFound(
            "the viewer is turned off on this site (FITSTILES_VIEWER); use an IIP "
            "client such as VisiOmatic with the iip endpoint"
        )


def _leaflet_dir() -> str:
    # Imported here: the module is only needed when the viewer is used.
    from xstatic.pkg import leaflet

    return cast(str, leaflet.BASE_DIR)


def viewer() -> Response:
    """Return the viewer page of one image.

    Returns
    -------
    response : flask.Response
        HTML page with a Content-Security-Policy header; a JSON 400 for a
        missing or malformed FIF, a JSON 404 for an unknown image, a name
        outside the data folder, or when the viewer is turned off.
    """
    _enabled()
    # Parameter names are case-insensitive, as in IIP; the last FIF wins.
    values = [
        value for key, value in request.args.items(multi=True) if key.lower() == "fif"
    ]
    if not values:
        raise BadParameterError(
            "FIF is required: name the image, e.g. viewer?FIF=image.fits "
            "(the images endpoint lists them)",
            ("query", "FIF"),
        )
    fif = values[-1]
    name, _extnum = split_fif(fif)
    _state().registry.resolve(name)
    from . import __version__

    html = render_template(
        "fitstiles/viewer.html",
        fif=fif,
        iip_url=url_for(f"{request.blueprint}.iip"),
        max_region_tiles=_state().settings.max_region_tiles,
        version=__version__,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _send(folder: str | Path, filename: str) -> Response:
    response = send_from_directory(folder, filename, max_age=_STATIC_MAX_AGE)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def static_file(filename: str) -> Response:
    """Return one of the viewer's own static files (JavaScript modules, CSS).

    Parameters
    ----------
    filename : str
        Path relative to the package's ``static`` folder.

    Returns
    -------
    response : flask.Response
        The file, or a JSON 404.
    """
    _enabled()
    return _send(STATIC_DIR, filename)


def leaflet_file(filename: str) -> Response:
    """Return a file of the installed Leaflet (``xstatic-leaflet``).

    Parameters
    ----------
    filename : str
        Path relative to the package's data folder (``leaflet.js``,
        ``leaflet.css``, ``images/...``).

    Returns
    -------
    response : flask.Response
        The file, or a JSON 404.
    """
    _enabled()
    return _send(_leaflet_dir(), filename)
