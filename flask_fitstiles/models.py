"""Pydantic models of the JSON answers (the JSON boundary only).

The property names, types and required lists follow the seed's ``tiled`` module
documentation, which is also what the VisiOmatic web client reads.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

# A free-form FITS header: the seed's schema says just "object".
Header = Annotated[dict[str, Any], WithJsonSchema({"title": "Header", "type": "object"})]

__all__ = [
    "FolderEntryModel",
    "FolderPageModel",
    "ImageEntryModel",
    "ImageModel",
    "PixelModel",
    "PixelValueModel",
    "ProfileModel",
    "TiledModel",
]


class PixelValueModel(BaseModel):
    """Pydantic model class for VisiOmatic pixel values.

    Parameters
    ----------
    values : list[float | None]
        Pixel values, one per requested channel; None for blank pixels and
        positions outside the image.
    """

    values: list[float | None]


class PixelModel(BaseModel):
    """Pydantic model class for pixels.

    Parameters
    ----------
    x : int
        x coordinate of the pixel (FITS style, first pixel is 1).
    y : int
        y coordinate of the pixel (FITS style, first pixel is 1).
    values : list[float | None]
        Pixel values, one per channel; None for blank or outside pixels.
    """

    x: int
    y: int
    values: list[float | None]


class ProfileModel(BaseModel):
    """Pydantic model class for VisiOmatic profiles.

    Parameters
    ----------
    profile : list[PixelModel]
        Pixels along the line, in order from its first to its last point.
    """

    profile: list[PixelModel]


class ImageModel(BaseModel):
    """Pydantic image model class.

    Parameters
    ----------
    size : list[int]
        Image shape, FITS style (x comes first, then y and channels).
    dataslice : list[list[int]]
        Active area of the image, FITS style ``[start, end, step]`` per axis.
    detslice : list[list[int]]
        Place of the active area in the mosaic, FITS style ``[start, end, step]``
        per axis; a negative step means the axis is flipped.
    background_level : list[float]
        Background level of every channel.
    background_mad : list[float]
        Background median absolute deviation of every channel.
    min_max : list[list[float]]
        Default lower and upper intensity cuts of every channel.
    header : dict
        FITS header keyword/value pairs.
    """

    size: list[int]
    dataslice: list[list[int]]
    detslice: list[list[int]]
    background_level: list[float]
    background_mad: list[float]
    min_max: list[list[float]]
    header: Header


class TiledModel(BaseModel):
    """Pydantic tiled model class.

    Parameters
    ----------
    type : str
        Name of the web service (the VisiOmatic client wants ``visiomatic``).
    version : str
        Version of the web service protocol.
    image_name : str
        Public name of the image file.
    object_name : str
        Name of the observed object (OBJECT keyword), possibly empty.
    full_size : tuple[int, ...]
        Full raster size, FITS style (x comes first).
    tile_size : tuple[int, ...]
        Tile size, FITS style.
    tile_levels : int
        Number of levels in the image pyramid.
    channels : int
        Number of channels.
    bits_per_channel : int
        Number of bits per pixel.
    brightness : float
        Default relative tile brightness (black level).
    contrast : float
        Default relative tile contrast.
    color_saturation : float
        Default tile colour saturation.
    gamma : float
        Default tile display gamma.
    quality : int
        Default JPEG quality (0-100).
    header : dict
        Keyword/value pairs of the header with the global WCS.
    images : list[ImageModel]
        The images (CCDs) that make up the frame.
    """

    type: str
    version: str
    image_name: str
    object_name: str
    full_size: tuple[int, ...]
    tile_size: tuple[int, ...]
    tile_levels: int
    channels: int
    bits_per_channel: int
    brightness: float
    contrast: float
    color_saturation: float
    gamma: float
    quality: int
    header: Header
    images: list[ImageModel]


class ImageEntryModel(BaseModel):
    """One image of a listing (``/images``).

    Parameters
    ----------
    name : str
        Path relative to the data folder: the ``FIF`` value of the image.
    size : int
        File size in bytes.
    prepared : bool
        Whether a fresh prepared copy exists (no preparation is needed).
    """

    name: str = Field(description="FIF value of the image")
    size: int = Field(ge=0, description="file size in bytes")
    prepared: bool = Field(description="whether a fresh prepared copy exists")


class FolderEntryModel(BaseModel):
    """One sub-folder of a listing page.

    Parameters
    ----------
    name : str
        Path relative to the data folder: the ``dir`` value that lists it.
    """

    name: str = Field(description="dir value of the folder")


class FolderPageModel(BaseModel):
    """One page of the listing of one folder (``/images`` with dir, limit or cursor).

    Parameters
    ----------
    dir : str
        The folder listed, relative to the data folder (``""``: the data folder).
    parent : str or None
        Its parent folder (the ``dir`` value that lists it); None for the data folder.
    folders : list[FolderEntryModel]
        Sub-folders on this page, sorted by name; they come before the images.
    images : list[ImageEntryModel]
        Images on this page, sorted by name.
    next_cursor : str or None
        ``cursor`` value of the next page; None on the last page.
    """

    dir: str
    parent: str | None
    folders: list[FolderEntryModel]
    images: list[ImageEntryModel]
    next_cursor: str | None
