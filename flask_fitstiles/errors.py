"""One exception hierarchy for the whole package.

Every failure that a client can cause is a subclass of :class:`FitsTilesError`;
each subclass knows the HTTP status it maps to and where in the request the
problem lies (``loc``), so that the web layer translates them in one place.
Messages never contain server paths: they name images by their public name.
"""

from __future__ import annotations

__all__ = [
    "BadFitsError",
    "BadParameterError",
    "FitsTilesError",
    "FolderNotFoundError",
    "ImageBusyError",
    "ImageNotFoundError",
    "RegionTooLargeError",
]


class FitsTilesError(Exception):
    """Root of every error that flask_fitstiles reports to a client.

    Parameters
    ----------
    msg : str
        Human-readable message that says what went wrong and what to do.
    loc : tuple of str, optional
        Where the problem lies, e.g. ``("query", "JTL")``.
    """

    status: int = 500
    error_type: str = "server_error"

    def __init__(self, msg: str, loc: tuple[str, ...] = ()) -> None:
        super().__init__(msg)
        self.msg = msg
        self.loc = loc

    def to_detail(self) -> list[dict[str, object]]:
        """Return the error in the ``detail`` shape read by the VisiOmatic client.

        Returns
        -------
        detail : list of dict
            One entry with ``loc``, ``msg`` and ``type``.
        """
        return [{"loc": list(self.loc), "msg": self.msg, "type": self.error_type}]


class BadParameterError(FitsTilesError, ValueError):
    """A request parameter is malformed or out of range (400)."""

    status = 400
    error_type = "value_error"


class RegionTooLargeError(BadParameterError, IndexError):
    """A region needs more tiles than the server allows, or is empty (400)."""


class ImageNotFoundError(FitsTilesError, FileNotFoundError):
    """No image by that name inside the data folder (404)."""

    status = 404
    error_type = "not_found"


class FolderNotFoundError(FitsTilesError, FileNotFoundError):
    """No folder by that name inside the data folder (404)."""

    status = 404
    error_type = "not_found"


class BadFitsError(FitsTilesError, LookupError):
    """The file exists but is not a displayable FITS image (422)."""

    status = 422
    error_type = "unprocessable_entity"


class ImageBusyError(FitsTilesError, TimeoutError):
    """Another process is still preparing the image (503, retry later).

    Parameters
    ----------
    msg : str
        Message for the client.
    retry_after : int
        Seconds after which the client should try again.
    """

    status = 503
    error_type = "service_unavailable"

    def __init__(self, msg: str, retry_after: int = 5) -> None:
        super().__init__(msg, ("query", "FIF"))
        self.retry_after = retry_after
