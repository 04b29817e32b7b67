"""Image tiling module: the multi-resolution pyramid of a FITS image and its tiles.

This module re-implements the API of VisiOmatic's ``tiled`` module (see the
project's specification): :class:`Tiled`, :func:`pickledTiled`, the
``get_*_filename`` helpers and the pydantic models. It never imports Flask.

A :class:`Tiled` object is prepared once per image: the frame (one image or a
mosaic) is written as a float32 file and the reduced levels of the pyramid as a
second one, both in the cache folder, and the object itself is pickled there
without any pixel array. Every process then maps the files read-only.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Final

import numpy as np
from astropy.io import fits
from filelock import FileLock
from filelock import Timeout as LockTimeout

from .core import pyramid, render
from .core.cachefiles import (
    SourceStamp,
    aside,
    get_cache_dir,
    get_data_filename,
    get_image_filename,
    get_object_filename,
    get_tiles_filename,
    remove_leftovers,
    unlink_quietly,
    write_source_stamp,
)
from .core.image import Image, find_image_hdus, header_to_dict
from .core.mapped import FileMap
from .core.mosaic import frame_geometry, mosaic_header, write_frame
from .core.signing import dumps_signed, get_secret_key, loads_signed
from .core.tilecache import TileCache
from .errors import BadFitsError, BadParameterError, ImageBusyError, RegionTooLargeError
from .models import ImageModel, PixelModel, PixelValueModel, ProfileModel, TiledModel

__all__ = [
    "FORMAT_VERSION",
    "Image",
    "ImageModel",
    "PixelModel",
    "PixelValueModel",
    "ProfileModel",
    "Tiled",
    "TiledModel",
    "get_cache_dir",
    "get_data_filename",
    "get_image_filename",
    "get_object_filename",
    "get_prepared",
    "get_tiles_filename",
    "pickledTiled",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the pickled object or the file layout changes meaning.
FORMAT_VERSION = 1

DEFAULTS: dict[str, Any] = {
    "brightness": 0.0,
    "contrast": 1.0,
    "color_saturation": 1.5,
    "gamma": 2.2,
    "quality": 95,
    "max_region_tile_count": 1024,
}

# Longest profile line, in pixels: far beyond any real frame diagonal, small
# enough that one request cannot ask for gigabytes of JSON.
MAX_PROFILE_POINTS = 1 << 17

# OS errors that come from the cache folder or the process, not from a bad file.
_SERVER_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EMFILE, errno.ENFILE}
)


# -- the tiled image ---------------------------------------------------------------------


class Tiled:
    """Class for the tiled image pyramid to be visualized.

    Creating the object prepares the image: it reads the FITS file, assembles
    the frame, computes the background and cuts, writes the frame and the
    pyramid to the cache folder, then pickles itself there.

    Parameters
    ----------
    filename : str or path
        Path to the image.
    extnum : int, optional
        Extension number (for Multi-Extension FITS files): serve that HDU alone.
    tilesize : tuple[int, int], optional
        Shape of the served tiles (y, x).
    minmax : tuple[float, float], optional
        Intensity cuts of the served tiles, for every channel.
    brightness : float, optional
        Relative tile black level of the served tiles.
    contrast : float, optional
        Relative tile contrast of the served tiles.
    color_saturation : float, optional
        Default color saturation of the served tiles.
    gamma : float, optional
        Display gamma of the served tiles.
    quality : int, optional
        Default JPEG quality.
    max_region_tile_count : int, optional
        Largest number of tiles a region request may cover.
    nthreads : int, optional
        Number of compute threads for parallelized operations.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    secret_key : str or bytes, optional
        Key that signs the pickle (see ``core.signing.get_secret_key``).
    """

    # Display defaults, set by set_defaults() from DEFAULTS and the arguments.
    brightness: float
    contrast: float
    color_saturation: float
    gamma: float
    quality: int
    max_region_tile_count: int

    def __init__(
        self,
        filename: str | os.PathLike[str],
        extnum: int | None = None,
        tilesize: tuple[int, int] = (256, 256),
        minmax: tuple[float, float] | None = None,
        brightness: float | None = None,
        contrast: float | None = None,
        color_saturation: float | None = None,
        gamma: float | None = None,
        quality: int | None = None,
        max_region_tile_count: int | None = None,
        nthreads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        secret_key: str | bytes | None = None,
    ) -> None:
        started = time.perf_counter()
        self.filename = os.path.abspath(os.fspath(filename))
        self.extnum = extnum
        self.image_name = os.path.basename(self.filename)
        if extnum is not None:
            self.image_name += f"[{extnum}]"
        self.cache_dir = get_cache_dir(cache_dir)
        self.nthreads = int(nthreads or os.cpu_count() or 1)
        self.set_defaults(
            brightness=brightness,
            contrast=contrast,
            color_saturation=color_saturation,
            gamma=gamma,
            quality=quality,
            max_region_tile_count=max_region_tile_count,
        )
        if len(tilesize) != 2 or min(tilesize) < 1:
            raise ValueError("tilesize must be two positive integers")
        tilesize = (int(tilesize[0]), int(tilesize[1]))
        self.format_version = FORMAT_VERSION
        self._init_runtime()
        # Kept out of the pickle (see __getstate__): the key signs it.
        self._secret_key = get_secret_key(self.cache_dir, secret_key)
        try:
            stat = os.stat(self.filename)
        except OSError:
            raise BadFitsError(
                f"cannot read image {self.image_name}", ("query", "FIF")
            ) from None
        self.source_size = stat.st_size
        self.source_mtime_ns = stat.st_mtime_ns
        names = (self.filename, self.cache_dir, extnum, tilesize)
        self.object_filename = get_object_filename(*names)
        self.data_filename = get_data_filename(*names)
        self.tiles_filename = get_tiles_filename(*names)
        for final in (self.object_filename, self.data_filename, self.tiles_filename):
            remove_leftovers(final)
        try:
            hdus = fits.open(
                self.filename,
                mode="readonly",
                memmap=True,
                do_not_scale_image_data=True,
                lazy_load_hdus=False,
            )
        except Exception:
            raise BadFitsError(
                f"{self.image_name} is not a readable FITS file", ("query", "FIF")
            ) from None
        try:
            with hdus:
                primary = hdus[0].header
                images = [Image(hdu, minmax, primary) for hdu in self._select_hdus(hdus)]
                self.nchannels = images[0].nchannels
                self.images = images
                self.tile_shape = (self.nchannels, int(tilesize[0]), int(tilesize[1]))
                self.make_mosaic(images)
                for image in images:
                    image.release()
        except BadFitsError as error:
            raise BadFitsError(f"{self.image_name}: {error.msg}", error.loc) from None
        except MemoryError:
            raise
        except OSError as error:
            if error.errno in _SERVER_ERRNOS:
                raise  # the cache folder's trouble, not the file's
            raise BadFitsError(
                f"{self.image_name} is damaged or truncated", ("query", "FIF")
            ) from None
        except Exception:
            # astropy raises many kinds of errors on damaged files (truncated
            # data, bad BITPIX, ...); to the client they all mean the same.
            raise BadFitsError(
                f"{self.image_name} is damaged or not a valid FITS image", ("query", "FIF")
            ) from None
        self.object_name = str(self.header.get("OBJECT", ""))
        self.nlevels = self.compute_nlevels()
        self.shapes = np.array(
            [self.compute_grid_shape(level) for level in range(self.nlevels)],
            dtype=np.int64,
        )
        self.border_shapes = np.array(
            [self.compute_tile_bordershape(level) for level in range(self.nlevels)],
            dtype=np.int64,
        )
        self.counts = self.shapes[:, 1] * self.shapes[:, 2]
        self.ntiles = int(self.counts.sum())
        self.level_shapes = [
            pyramid.level_shape(self.shape[1], self.shape[2], level)
            for level in range(self.nlevels)
        ]
        self.level_offsets = pyramid.level_offsets(
            self.shape[0], self.shape[1], self.shape[2], self.nlevels
        )
        self.make_tiles()
        self.nbytes = os.path.getsize(self.data_filename) + os.path.getsize(
            self.tiles_filename
        )
        self._save()
        self.prepare_seconds = time.perf_counter() - started
        logger.info("prepared %s in %.2f s", self.image_name, self.prepare_seconds)

    # -- construction helpers ----------------------------------------------------------

    def set_defaults(self, **settings: Any) -> None:
        """Set display defaults; None values leave the current (or built-in) ones.

        Parameters
        ----------
        **settings : dict
            Any of brightness, contrast, color_saturation, gamma, quality and
            max_region_tile_count.
        """
        for name, default in DEFAULTS.items():
            value = settings.get(name)
            if value is not None:
                setattr(self, name, type(default)(value))
            elif not hasattr(self, name):
                setattr(self, name, default)

    def _init_runtime(self) -> None:
        """Create the per-process state that is never pickled."""
        self._lock = threading.Lock()
        self._data: np.ndarray | None = None
        self._tiles: np.ndarray | None = None
        self.tile_cache: TileCache | None = None
        # Tiles file that make_mosaic started (level 1) and make_tiles completes.
        self._tiles_temp: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_data", "_tiles", "tile_cache", "_secret_key", "_tiles_temp"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _select_hdus(self, hdus: fits.HDUList) -> list[Any]:
        """Return the HDUs to serve: the mosaic when all carry DETSEC, else the first."""
        candidates = find_image_hdus(hdus, self.extnum)
        if len(candidates) > 1 and all("DETSEC" in hdu.header for hdu in candidates):
            return candidates
        return candidates[:1]

    @property
    def identity(self) -> tuple[Hashable, ...]:
        """Key that changes whenever the served pixels may change."""
        return (
            self.filename,
            self.extnum,
            self.source_size,
            self.source_mtime_ns,
            self.tile_shape,
        )

    def is_fresh(self) -> bool:
        """Tell whether the source file is still the one this object was made from.

        Returns
        -------
        fresh : bool
            False if the source changed (size or mtime) or disappeared.
        """
        try:
            stat = os.stat(self.filename)
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (self.source_size, self.source_mtime_ns)

    # -- the seed's API ---------------------------------------------------------------

    def compute_nlevels(self) -> int:
        """Return the number of image resolution levels.

        Returns
        -------
        nlevels : int
            Number of image resolution levels in the pyramid.
        """
        return pyramid.compute_nlevels(
            self.shape[1], self.shape[2], self.tile_shape[1], self.tile_shape[2]
        )

    def compute_grid_shape(self, level: int = 0) -> tuple[int, int, int]:
        """Return the number of tiles per axis at a given image resolution level.

        Parameters
        ----------
        level : int, optional
            Pyramid level, 0 being full resolution.

        Returns
        -------
        shape : tuple[int, int, int]
            Number of channels, tile rows and tile columns.
        """
        rows, cols = pyramid.compute_grid_shape(
            self.shape[1], self.shape[2], self.tile_shape[1], self.tile_shape[2], level
        )
        return self.shape[0], rows, cols

    def compute_tile_bordershape(self, level: int = 0) -> tuple[int, int, int]:
        """Return the border shape of tiles at a given image resolution level.

        Parameters
        ----------
        level : int, optional
            Pyramid level, 0 being full resolution.

        Returns
        -------
        shape : tuple[int, int, int]
            Number of channels, height of the last tile row, width of the last
            tile column.
        """
        bh, bw = pyramid.compute_tile_bordershape(
            self.shape[1], self.shape[2], self.tile_shape[1], self.tile_shape[2], level
        )
        return self.tile_shape[0], bh, bw

    def get_model(self) -> TiledModel:
        """Return a Pydantic model of the tiled object.

        Returns
        -------
        model : TiledModel
            Pydantic model instance of the tiled object.
        """
        return TiledModel(
            type="visiomatic",
            version="3.0",
            image_name=self.image_name,
            object_name=self.object_name,
            full_size=(self.shape[2], self.shape[1]),
            tile_size=(self.tile_shape[2], self.tile_shape[1]),
            tile_levels=self.nlevels,
            channels=self.nchannels,
            bits_per_channel=self.bitdepth,
            brightness=self.brightness,
            contrast=self.contrast,
            color_saturation=self.color_saturation,
            gamma=self.gamma,
            quality=self.quality,
            header=header_to_dict(self.header),
            images=[image.get_model() for image in self.images],
        )

    def make_mosaic(self, images: list[Image]) -> None:
        """Stitch together several images to make a mosaic.

        The frame is written to the data file (aside, renamed when complete);
        background statistics and default cuts are computed for every image.

        Parameters
        ----------
        images : list[Image]
            List of input images (a single image is a mosaic of one).
        """
        _, shape = frame_geometry(images)
        self.shape = shape
        for image in images:
            image.set_background(_background_samples(image))
        self.minmax = np.median(np.array([image.minmax for image in images]), axis=0)
        self.bitdepth = images[0].bitdepth
        self.header = self.make_header()
        nlevels = pyramid.compute_nlevels(shape[1], shape[2], *self.tile_shape[1:])
        temp = aside(self.data_filename)
        # Level 1 of the pyramid is computed from the frame's stripes as they are
        # written, into the tiles file that make_tiles completes.
        tiles_temp = aside(self.tiles_filename) if nlevels > 1 else None
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if tiles_temp is None:
                    write_frame(images, shape, fd, nthreads=self.nthreads)
                else:
                    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
                    tiles_fd = os.open(tiles_temp, flags, 0o600)
                    try:
                        size = pyramid.level_offsets(*shape, nlevels)[-1]
                        with FileMap(tiles_fd, size) as tiles_map:
                            write_frame(
                                images,
                                shape,
                                fd,
                                nthreads=self.nthreads,
                                on_stripe=pyramid.level1_writer(tiles_map, shape),
                            )
                    finally:
                        os.close(tiles_fd)
                # No fsync here: writeback started stripe by stripe, and
                # make_tiles syncs both files. Only the pickle marks an image
                # whole, and it is written after those syncs.
            finally:
                os.close(fd)
            os.replace(temp, self.data_filename)
        except BaseException:
            unlink_quietly(temp)
            if tiles_temp is not None:
                unlink_quietly(tiles_temp)
            raise
        self._tiles_temp = tiles_temp

    def make_header(self) -> fits.Header:
        """Generate a FITS header with a global WCS for the mosaic.

        Returns
        -------
        header : astropy.io.fits.Header
            FITS header for the mosaic.
        """
        return mosaic_header(self.images, self.shape)

    def get_iipheaderstr(self) -> str:
        """Generate an IIP image header.

        Returns
        -------
        header : str
            IIP image header.
        """
        mins = " ".join(f"{v:.8g}" for v in self.minmax[:, 0])
        maxs = " ".join(f"{v:.8g}" for v in self.minmax[:, 1])
        subject = str(self.header.tostring())
        return (
            "IIP:1.0\n"
            f"Max-size:{self.shape[2]} {self.shape[1]}\n"
            f"Tile-size:{self.tile_shape[2]} {self.tile_shape[1]}\n"
            f"Resolution-number:{self.nlevels}\n"
            f"Bits-per-channel:{self.bitdepth}\n"
            f"Min-Max-sample-values:{mins} {maxs}\n"
            f"subject/{len(subject)}:{subject}"
        )

    def convert_tile(
        self,
        tile: np.ndarray,
        channel: int | None = None,
        minmax: tuple[tuple[int, float, float], ...] | None = None,
        mix: tuple[tuple[int, float, float, float], ...] | None = None,
        brightness: float | None = None,
        contrast: float | None = None,
        gamma: float | None = None,
        colormap: str = "grey",
        invert: bool = False,
    ) -> np.ndarray:
        """Process the dynamic range of a tile.

        Parameters
        ----------
        tile : ndarray
            Input tile (channels, y, x); never modified.
        channel : int, optional
            Image channel (first is 1) for mono mode; None for colour mode.
        minmax : tuple of (channel, min, max), optional
            Tile intensity cuts per channel, instead of the defaults.
        mix : tuple of (channel, red, green, blue), optional
            Tile slice RGB colors (colour mode).
        brightness : float, optional
            Relative tile brightness (black level).
        contrast : float, optional
            Relative tile contrast.
        gamma : float, optional
            Display gamma.
        colormap : str, optional
            Colormap: 'grey' (default), 'jet', 'cold', 'cool' or 'hot'.
        invert : bool, optional
            Invert the colormap.

        Returns
        -------
        raster : ndarray
            Processed tile image raster, uint8 (y, x) or (y, x, 3).
        """
        if channel is not None and not 1 <= channel <= self.nchannels:
            channel = 1
        return render.render_tile(
            tile,
            self.minmax,
            channel=channel,
            minmax=minmax,
            mix=mix,
            brightness=self.brightness if brightness is None else brightness,
            contrast=self.contrast if contrast is None else contrast,
            gamma=self.gamma if gamma is None else gamma,
            colormap=colormap,
            invert=invert,
        )

    def make_tiles(self) -> None:
        """Generate all tiles from the image: write the reduced pyramid levels.

        Completes the tiles file whose level 1 :meth:`make_mosaic` wrote, or
        computes every level from the frame file if there is none.
        """
        temp, self._tiles_temp = self._tiles_temp, None
        first_level = 1 if temp is None else 2
        if temp is None:
            temp = aside(self.tiles_filename)
        try:
            tiles_fd = os.open(temp, os.O_RDWR | os.O_CREAT, 0o600)
            data_fd = os.open(self.data_filename, os.O_RDONLY)
            try:
                pyramid.build_levels(
                    data_fd,
                    tiles_fd,
                    self.shape,
                    self.nlevels,
                    nthreads=self.nthreads,
                    first_level=first_level,
                )
                os.fsync(tiles_fd)
                os.fsync(data_fd)
            finally:
                os.close(data_fd)
                os.close(tiles_fd)
            os.replace(temp, self.tiles_filename)
        except BaseException:
            unlink_quietly(temp)
            raise

    def _save(self) -> None:
        """Pickle the object aside, then rename it: it appears whole or not at all."""
        temp = aside(self.object_filename)
        try:
            with open(temp, "xb") as f:
                f.write(dumps_signed(self, self._secret_key))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.object_filename)
        except BaseException:
            unlink_quietly(temp)
            raise
        # After the pickle: a stamp never claims a pickle that is not there yet.
        try:
            write_source_stamp(self.object_filename, self.source_stamp, self._secret_key)
        except OSError as error:
            logger.warning("no source stamp for %s: %s", self.image_name, error)

    @property
    def source_stamp(self) -> SourceStamp:
        """What the image was prepared from: format version, source size and mtime."""
        return SourceStamp(FORMAT_VERSION, self.source_size, self.source_mtime_ns)

    # -- pixel access ------------------------------------------------------------------

    def get_data(self) -> np.ndarray:
        """Get current memory-mapped image data.

        Returns
        -------
        data : numpy.ndarray
            Read-only frame (channels, y, x), FITS row order (row 0 is y = 1).
        """
        data = self._data
        if data is None:
            with self._lock:
                if self._data is None:
                    self._data = np.memmap(
                        self.data_filename, dtype=np.float32, mode="r", shape=self.shape
                    )
                data = self._data
        return data

    def get_tiles(self) -> np.ndarray:
        """Get current memory-mapped tile data.

        Returns
        -------
        data : numpy.ndarray
            Read-only flat float32 array of the reduced levels (level 1 and up);
            :meth:`get_level` gives each as (channels, y, x).
        """
        tiles = self._tiles
        if tiles is None:
            with self._lock:
                if self._tiles is None:
                    size = self.level_offsets[-1]
                    self._tiles = (
                        np.memmap(
                            self.tiles_filename, dtype=np.float32, mode="r", shape=(size,)
                        )
                        if size
                        else np.zeros(0, dtype=np.float32)
                    )
                tiles = self._tiles
        return tiles

    def get_level(self, level: int) -> np.ndarray:
        """Return a pyramid level as displayed: (channels, y, x), top row first.

        Parameters
        ----------
        level : int
            Pyramid level, 0 being full resolution.

        Returns
        -------
        pixels : ndarray
            Read-only view (no copy) of the level.
        """
        if level == 0:
            return self.get_data()[:, ::-1, :]
        h, w = self.level_shapes[level]
        start = self.level_offsets[level]
        flat = self.get_tiles()[start : start + self.nchannels * h * w]
        return flat.reshape(self.nchannels, h, w)

    def _check_level(self, tilelevel: int, loc: str = "JTL") -> None:
        if not 0 <= tilelevel < self.nlevels:
            raise BadParameterError(
                f"tile level {tilelevel} is out of range 0-{self.nlevels - 1}",
                ("query", loc),
            )

    def get_tile(self, tilelevel: int, tileindex: int) -> np.ndarray:
        """Return the pixels of one tile, cropped at the image edges.

        Parameters
        ----------
        tilelevel : int
            Pyramid level, 0 being full resolution.
        tileindex : int
            Tile number, ``column + columns * row``, row 0 at the top.

        Returns
        -------
        tile : ndarray
            Read-only view (channels, y, x) of float32 pixels.

        Raises
        ------
        BadParameterError
            If the level or the tile index is out of range.
        """
        self._check_level(tilelevel)
        _, rows, cols = self.shapes[tilelevel]
        if not 0 <= tileindex < rows * cols:
            raise BadParameterError(
                f"tile index {tileindex} is out of range 0-{rows * cols - 1}",
                ("query", "JTL"),
            )
        row, col = divmod(int(tileindex), int(cols))
        h, w = self.level_shapes[tilelevel]
        th, tw = self.tile_shape[1:]
        y0, x0 = row * th, col * tw
        return self.get_level(tilelevel)[:, y0 : min(h, y0 + th), x0 : min(w, x0 + tw)]

    def get_tile_raster(
        self,
        tilelevel: int,
        tileindex: int,
        channel: int | None = None,
        minmax: tuple[tuple[int, float, float], ...] | None = None,
        mix: tuple[tuple[int, float, float, float], ...] | None = None,
        brightness: float | None = None,
        contrast: float | None = None,
        gamma: float | None = None,
        colormap: str = "grey",
        invert: bool = False,
        **_: Any,
    ) -> np.ndarray:
        """Compute a gray-level or color image raster from a tile.

        Parameters
        ----------
        tilelevel : int
            Tile resolution level (0 is full resolution).
        tileindex : int
            Tile index.
        channel : int, optional
            Data channel (first channel is 1); None for colour mode.
        minmax : tuple of (channel, min, max), optional
            Tile intensity cuts.
        mix : tuple of (channel, red, green, blue), optional
            Tile slice RGB colors.
        brightness : float, optional
            Relative tile brightness.
        contrast : float, optional
            Relative tile contrast.
        gamma : float, optional
            Display gamma.
        colormap : str, optional
            Colormap: 'grey' (default), 'jet', 'cold', 'cool' or 'hot'.
        invert : bool, optional
            Invert the colormap.

        Returns
        -------
        raster : ndarray
            The computed tile image raster.
        """
        return self.convert_tile(
            self.get_tile(tilelevel, tileindex),
            channel=channel,
            minmax=minmax,
            mix=mix,
            brightness=brightness,
            contrast=contrast,
            gamma=gamma,
            colormap=colormap,
            invert=invert,
        )

    def encode(
        self,
        raster: np.ndarray,
        channel: int | None = None,
        colormap: str = "grey",
        quality: int | None = None,
        **_: Any,
    ) -> bytes:
        """Generate a JPEG bytestream from an image raster (e.g., a tile).

        Parameters
        ----------
        raster : ndarray
            Input raster, uint8 (y, x) or (y, x, 3).
        channel : int, optional
            Data channel (first channel is 1); kept for API compatibility.
        colormap : str, optional
            Colormap; kept for API compatibility (the raster's shape decides).
        quality : int, optional
            JPEG quality (0-100).

        Returns
        -------
        tile : bytes
            JPEG bytestream of the tile.
        """
        return render.encode_jpeg(raster, self.quality if quality is None else int(quality))

    def normalize_settings(
        self,
        channel: int | None = None,
        minmax: tuple[tuple[int, float, float], ...] | None = None,
        mix: tuple[tuple[int, float, float, float], ...] | None = None,
        brightness: float | None = None,
        contrast: float | None = None,
        gamma: float | None = None,
        colormap: str = "grey",
        invert: bool = False,
        quality: int | None = None,
    ) -> dict[str, Any]:
        """Return rendering settings with defaults filled in and irrelevant parts dropped.

        Two requests that render the same pixels get equal settings, so the tile
        cache keys on them.

        Parameters
        ----------
        channel, minmax, mix, brightness, contrast, gamma, colormap, invert, quality
            As for :meth:`get_encoded_tile`.

        Returns
        -------
        settings : dict
            Keyword arguments for :meth:`get_tile_raster` plus ``quality``.

        Raises
        ------
        BadParameterError
            If the colormap is unknown.
        """
        colormap = colormap.lower()
        if colormap not in render.COLORMAP_NAMES:
            raise BadParameterError(
                f"CMP must be one of {', '.join(render.COLORMAP_NAMES)}, got {colormap!r}",
                ("query", "CMP"),
            )
        nchan = self.nchannels
        if channel is not None:
            channel = int(channel) if 1 <= channel <= nchan else 1
            cuts = {int(c): (float(lo), float(hi)) for c, lo, hi in minmax or ()}
            minmax = ((channel, *cuts[channel]),) if channel in cuts else None
            mix = None
            if colormap == "cold":
                colormap = "cool"
        else:
            cuts = {
                int(c): (float(lo), float(hi))
                for c, lo, hi in minmax or ()
                if 1 <= c <= nchan
            }
            minmax = tuple((c, *cuts[c]) for c in sorted(cuts)) or None
            colours = {int(c): (float(r), float(g), float(b)) for c, r, g, b in mix or ()}
            mix = tuple((c, *colours[c]) for c in sorted(colours)) or None
            colormap = "grey"
        return {
            "channel": channel,
            "minmax": minmax,
            "mix": mix,
            "brightness": float(self.brightness if brightness is None else brightness),
            "contrast": float(self.contrast if contrast is None else contrast),
            "gamma": float(self.gamma if gamma is None else gamma),
            "colormap": colormap,
            "invert": bool(invert),
            "quality": int(self.quality if quality is None else quality),
        }

    def get_encoded_tile(
        self,
        tilelevel: int,
        tileindex: int,
        channel: int | None = None,
        minmax: tuple[tuple[int, float, float], ...] | None = None,
        mix: tuple[tuple[int, float, float, float], ...] | None = None,
        brightness: float | None = None,
        contrast: float | None = None,
        gamma: float | None = None,
        colormap: str = "grey",
        invert: bool = False,
        quality: int | None = None,
    ) -> bytes:
        """Return a JPEG bytestream of a specific tile (memoized per process).

        Parameters
        ----------
        tilelevel : int
            Tile resolution level (0 is full resolution).
        tileindex : int
            Tile index.
        channel : int, optional
            Data channel (first channel is 1); None for colour mode.
        minmax, mix, brightness, contrast, gamma, colormap, invert
            As for :meth:`get_tile_raster`.
        quality : int, optional
            JPEG quality (0-100).

        Returns
        -------
        tile : bytes
            JPEG bytestream of the tile.
        """
        settings = self.normalize_settings(
            channel, minmax, mix, brightness, contrast, gamma, colormap, invert, quality
        )
        quality = settings.pop("quality")
        # Taken (and validated) before touching the cache: a bad index must not be
        # memoized; the view costs nothing until a miss renders it.
        tile = self.get_tile(tilelevel, tileindex)
        key = (self.identity, tilelevel, tileindex, quality, tuple(settings.items()))
        cache = self.tile_cache
        if cache is None:
            with self._lock:
                if self.tile_cache is None:
                    self.tile_cache = TileCache()
                cache = self.tile_cache

        def make() -> bytes:
            # Straight from the rendered image to JPEG: no numpy raster in between.
            return render.render_jpeg(tile, self.minmax, quality, **settings)

        return cache.get_or_make(key, make)

    def get_encoded_region(
        self,
        bounds: tuple[tuple[int, int], tuple[int, int]],
        binning: int = 1,
        channel: int | None = None,
        colormap: str = "grey",
        **kwargs: Any,
    ) -> bytes:
        """Return a JPEG bytestream of an image region, made from the tiles of a level.

        Parameters
        ----------
        bounds : tuple[tuple[int, int], tuple[int, int]]
            Region corners ``((x1, y1), (x2, y2))`` in full-resolution pixels of
            the image as displayed: 1-based, inclusive, origin at the top-left
            corner, y growing downward. Clipped to the image.
        binning : int, optional
            Binning factor per axis; the pixels come from level log2(binning).
        channel : int, optional
            Data channel (first channel is 1); None for colour mode.
        colormap : str, optional
            Colormap: 'grey' (default), 'jet', 'cold', 'cool' or 'hot'.
        **kwargs
            Additional get_tile_raster() and encode() keyword arguments.

        Returns
        -------
        image : bytes
            JPEG bytestream of the region, ``ceil(size / binning)`` pixels a side.

        Raises
        ------
        IndexError
            (:class:`RegionTooLargeError`) if the region covers more than
            ``max_region_tile_count`` tiles, or nothing of the image.
        """
        binning = int(binning)
        if binning < 1:
            raise BadParameterError("BIN must be a positive integer", ("query", "BIN"))
        (x1, y1), (x2, y2) = bounds
        x1, x2 = sorted((int(x1), int(x2)))
        y1, y2 = sorted((int(y1), int(y2)))
        ny, nx = self.shape[1:]
        x1, y1 = max(x1, 1), max(y1, 1)
        x2, y2 = min(x2, nx), min(y2, ny)
        if x2 < x1 or y2 < y1:
            raise RegionTooLargeError(
                "the region does not overlap the image", ("query", "RGN")
            )
        level = min(binning.bit_length() - 1, self.nlevels - 1)
        th, tw = self.tile_shape[1:]
        # Level pixels covered, 0-based inclusive.
        lx1, lx2 = (x1 - 1) >> level, (x2 - 1) >> level
        ly1, ly2 = (y1 - 1) >> level, (y2 - 1) >> level
        ntiles = (ly2 // th - ly1 // th + 1) * (lx2 // tw - lx1 // tw + 1)
        if ntiles > self.max_region_tile_count:
            raise RegionTooLargeError(
                f"the region covers {ntiles} tiles, more than the server's limit of "
                f"{self.max_region_tile_count}; zoom in or increase the binning (BIN)",
                ("query", "RGN"),
            )
        settings = self.normalize_settings(channel=channel, colormap=colormap, **kwargs)
        quality = settings.pop("quality")
        # Rendering is per pixel, so rendering the level's pixels of the region in
        # one go gives exactly the stitched tiles, without the stitching.
        pixels = self.get_level(level)[:, ly1 : ly2 + 1, lx1 : lx2 + 1]
        raster = self.convert_tile(pixels, **settings)
        out_w = -(-(x2 - x1 + 1) // binning)
        out_h = -(-(y2 - y1 + 1) // binning)
        if raster.shape[:2] != (out_h, out_w):
            raster = render.resize_raster(raster, (out_h, out_w))
        return self.encode(raster, quality=quality)

    def get_pixel_values(
        self, channels: tuple[int, ...], pos: tuple[int, int]
    ) -> PixelValueModel:
        """Get pixel values at the given pixel coordinates in merged frame.

        Parameters
        ----------
        channels : tuple[int, ...]
            Data channels (first channel is 1).
        pos : tuple[int, int]
            Pixel coordinates, FITS style: x first, first pixel is 1.

        Returns
        -------
        value : PixelValueModel
            One value per channel; None for blank pixels, unknown channels and
            positions outside the frame.
        """
        x, y = int(pos[0]) - 1, int(pos[1]) - 1
        ny, nx = self.shape[1:]
        values: list[float | None] = []
        inside = 0 <= x < nx and 0 <= y < ny
        data = self.get_data()
        for channel in channels:
            value = None
            if inside and 1 <= channel <= self.nchannels:
                pixel = float(data[channel - 1, y, x])
                value = None if np.isnan(pixel) else pixel
            values.append(value)
        return PixelValueModel(values=values)

    def get_profiles(
        self,
        channels: tuple[int, ...] | None,
        pos1: tuple[int, int],
        pos2: tuple[int, int],
    ) -> ProfileModel:
        """Get image profile(s) between the given pixel coordinates in the merged frame.

        Parameters
        ----------
        channels : tuple[int, ...] or None
            Data channels (first channel is 1), or None (or empty) for all.
        pos1 : tuple[int, int]
            Start pixel coordinates, FITS style.
        pos2 : tuple[int, int]
            End pixel coordinates, FITS style.

        Returns
        -------
        profile : ProfileModel
            Pixels along the Bresenham line from pos1 to pos2, FITS-style
            coordinates, with the values of every requested channel.
        """
        x, y = bresenham_line(pos1, pos2)
        chans = np.array(
            channels if channels else range(1, self.nchannels + 1), dtype=np.int64
        )
        ny, nx = self.shape[1:]
        values = np.full((x.size, chans.size), np.nan, dtype=np.float64)
        inside = (x >= 1) & (x <= nx) & (y >= 1) & (y <= ny)
        good = (chans >= 1) & (chans <= self.nchannels)
        if inside.any() and good.any():
            data = self.get_data()
            picked = data[(chans[good] - 1)[:, None], y[inside] - 1, x[inside] - 1]
            values[np.ix_(inside, good)] = picked.T
        rows = [[None if np.isnan(v) else float(v) for v in row] for row in values.tolist()]
        return ProfileModel(
            profile=[
                PixelModel(x=int(px), y=int(py), values=row)
                for px, py, row in zip(x.tolist(), y.tolist(), rows, strict=True)
            ]
        )


def bresenham_line(
    pos1: tuple[int, int], pos2: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixels of the Bresenham line between two pixels, both included.

    Parameters
    ----------
    pos1, pos2 : tuple[int, int]
        End points (x, y).

    Returns
    -------
    x, y : ndarray
        Integer coordinates of the successive pixels, from pos1 to pos2.

    Raises
    ------
    BadParameterError
        If the line is longer than MAX_PROFILE_POINTS pixels.
    """
    x1, y1 = int(pos1[0]), int(pos1[1])
    x2, y2 = int(pos2[0]), int(pos2[1])
    dx, dy = x2 - x1, y2 - y1
    major = max(abs(dx), abs(dy))
    if major + 1 > MAX_PROFILE_POINTS:
        raise BadParameterError(
            f"the profile line is {major + 1} pixels long, more than the limit of "
            f"{MAX_PROFILE_POINTS}",
            ("query", "PFL"),
        )
    if major == 0:
        return np.array([x1]), np.array([y1])
    t = np.arange(major + 1, dtype=np.int64)
    # The minor coordinate is the major step scaled and rounded half up, which
    # is what Bresenham's error accumulation yields.
    xs = x1 + np.sign(dx) * ((2 * t * abs(dx) + major) // (2 * major))
    ys = y1 + np.sign(dy) * ((2 * t * abs(dy) + major) // (2 * major))
    return xs, ys


# Background statistics sample every _BACKGROUND_ROW_STEP-th row of the active
# area from its first row, as the reference server does (so that the default cuts
# of INFO agree with its own), thinned to a multiple of that step on large images
# so that at most about _BACKGROUND_PIXELS pixels are sampled.
_BACKGROUND_ROW_STEP: Final = 16
_BACKGROUND_PIXELS: Final = 1 << 20


def _background_samples(image: Image) -> np.ndarray:
    """Return (channels, n) pixels from a subsample of the active area's rows."""
    (dx1, dx2, _), (dy1, dy2, _) = image.datasliceinfo
    width = dx2 - dx1 + 1
    nrows = dy2 - dy1 + 1
    sampled = -(-nrows // _BACKGROUND_ROW_STEP) * max(1, width)
    step = _BACKGROUND_ROW_STEP * max(1, -(-sampled // _BACKGROUND_PIXELS))
    samples = [
        image.read_rows(y, y + 1, dx1 - 1, dx2)[:, 0, :] for y in range(dy1 - 1, dy2, step)
    ]
    return np.concatenate(samples, axis=1)


# -- loading prepared images -----------------------------------------------------------


def _load_fresh(
    object_filename: str, filename: str, tilesize: tuple[int, ...], key: bytes
) -> Tiled | None:
    """Return the pickled object if it verifies and is fresh for the source, else None."""
    try:
        with open(object_filename, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return None
    try:
        tiled = loads_signed(blob, key)
    except Exception:
        # A pickle that does not verify is never unpickled: it is prepared again.
        logger.warning("ignoring unverified or unreadable %s", object_filename)
        return None
    if (
        not isinstance(tiled, Tiled)
        or getattr(tiled, "format_version", None) != FORMAT_VERSION
        or tiled.filename != filename
        or tuple(tiled.tile_shape[1:]) != tuple(tilesize)
        or not tiled.is_fresh()
    ):
        return None
    try:
        data_ok = os.path.getsize(tiled.data_filename) == 4 * int(np.prod(tiled.shape))
        tiles_ok = os.path.getsize(tiled.tiles_filename) == 4 * tiled.level_offsets[-1]
    except OSError:
        return None
    return tiled if data_ok and tiles_ok else None


def get_prepared(
    filename: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    secret_key: str | bytes | None = None,
    extnum: int | None = None,
    tilesize: tuple[int, int] = (256, 256),
) -> Tiled | None:
    """Return the prepared image if a verified, fresh pickle exists, without preparing.

    Parameters
    ----------
    filename : str or path
        Path to the image.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    secret_key : str or bytes, optional
        Key that verifies pickles (see :func:`pickledTiled`).
    extnum : int, optional
        HDU number, when a single HDU of the file is served.
    tilesize : tuple[int, int], optional
        Tile shape the image must have been prepared with.

    Returns
    -------
    tiled : Tiled or None
        The loaded object, or None if the image needs preparing.
    """
    path = os.path.abspath(os.fspath(filename))
    folder = get_cache_dir(cache_dir)
    key = get_secret_key(folder, secret_key)
    tiled = _load_fresh(
        get_object_filename(path, folder, extnum, tilesize), path, tuple(tilesize), key
    )
    if tiled is not None:
        tiled._secret_key = key
    return tiled


def pickledTiled(  # noqa: N802 - the seed's name
    filename: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    lock_timeout: float = -1,
    secret_key: str | bytes | None = None,
    **kwargs: Any,
) -> Tiled:
    """Return pickled Tiled object if available, or initialized otherwise.

    Preparation is guarded by one inter-process lock per image, so that
    concurrent processes prepare an image exactly once; the others wait and
    load the result.

    Parameters
    ----------
    filename : str or path
        Path to the image.
    cache_dir : str or path, optional
        Cache folder (see :func:`get_cache_dir`).
    lock_timeout : float, optional
        Seconds to wait for another process that prepares the image; negative
        waits forever.
    secret_key : str or bytes, optional
        Key that signs and verifies pickles; None means FITSTILES_SECRET_KEY,
        else a random key kept in the cache folder.
    **kwargs : dict
        Additional keyword arguments for :class:`Tiled`; display settings
        (brightness, contrast, ...) also apply to an already prepared image.

    Returns
    -------
    tiled : Tiled
        Tiled object pickled from file if available, or initialized otherwise.

    Raises
    ------
    ImageBusyError
        If another process still prepares the image after ``lock_timeout``.
    """
    path = os.path.abspath(os.fspath(filename))
    folder = get_cache_dir(cache_dir)
    extnum = kwargs.get("extnum")
    ty, tx = (int(v) for v in kwargs.get("tilesize", (256, 256)))
    tilesize = (ty, tx)
    object_filename = get_object_filename(path, folder, extnum, tilesize)
    key = get_secret_key(folder, secret_key)
    tiled = _load_fresh(object_filename, path, tilesize, key)
    if tiled is None:
        lock = FileLock(object_filename + ".lock", timeout=lock_timeout)
        try:
            with lock:
                tiled = _load_fresh(object_filename, path, tilesize, key)
                if tiled is None:
                    tiled = Tiled(path, cache_dir=folder, secret_key=key, **kwargs)
        except LockTimeout:
            raise ImageBusyError(
                f"image {Path(path).name} is being prepared by another process; "
                "retry in a few seconds",
                retry_after=max(1, int(lock_timeout) if lock_timeout > 0 else 5),
            ) from None
    tiled._secret_key = key
    tiled.set_defaults(**{k: v for k, v in kwargs.items() if k in DEFAULTS})
    if kwargs.get("nthreads"):
        tiled.nthreads = int(kwargs["nthreads"])
    return tiled
