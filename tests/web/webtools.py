"""Helpers shared by the web tests: test libraries of FITS files and test apps."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from flask import Flask

from example_app.samples import write_samples
from flask_fitstiles import FitsTiles

PREFIX = "/fits"


@dataclass(frozen=True)
class Library:
    """Folders of one test library."""

    root: Path
    data: Path
    outside: Path
    cache: Path


def small_image(shape: tuple[int, int] = (200, 300), seed: int = 0) -> np.ndarray:
    """Return a float32 image with distinct, easily checked values."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    return (1000.0 + x + 1000.0 * y + rng.normal(0.0, 0.1, shape)).astype(np.float32)


def write_purpose_files(data: Path, outside: Path) -> None:
    """Write the small purpose-made files next to the samples."""
    image = small_image()
    image[10, 20] = np.nan  # FITS pixel x=21, y=11 is blank
    fits.PrimaryHDU(image).writeto(data / "small.fits")

    # Integer data with BSCALE/BZERO: the served values are the physical ones.
    raw = (np.arange(150 * 100).reshape(150, 100) % 3000).astype(np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 100.0
    hdu.writeto(data / "scaled.fits")

    # Two image extensions without DETSEC: the first is served, [N] picks one.
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(small_image((64, 96), 1), name="ONE"),
            fits.ImageHDU(small_image((40, 50), 2), name="TWO"),
        ]
    ).writeto(data / "mef.fits")

    # Odd sizes: edge tiles and level shapes that do not divide evenly.
    fits.PrimaryHDU(small_image((300, 771), 3)).writeto(data / "odd.fits")

    (data / "sub").mkdir()
    fits.PrimaryHDU(small_image((32, 48), 4)).writeto(data / "sub" / "deep.fits")
    fits.PrimaryHDU(small_image((32, 48), 5)).writeto(data / "Upper.FITS")
    (data / "notfits.fits").write_text("this is not a FITS file\n" * 10)
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])]),
        ]
    ).writeto(data / "table.fits")
    (data / "notes.txt").write_text("not an image")
    (data / "folder.fits").mkdir()
    fits.PrimaryHDU(small_image((32, 48), 6)).writeto(data / ".hidden.fits")

    fits.PrimaryHDU(small_image((64, 64), 7)).writeto(outside / "outside.fits")
    (data / "link_in.fits").symlink_to("small.fits")
    (data / "link_out.fits").symlink_to(outside / "outside.fits")
    (data / "linkdir").symlink_to(outside, target_is_directory=True)


def make_library(root: Path, samples: Path | None = None) -> Library:
    """Make a library under ``root``; the samples are linked from ``samples``."""
    library = Library(root, root / "data", root / "outside", root / "cache")
    for folder in (library.data, library.outside, library.cache):
        folder.mkdir(parents=True)
    if samples is None:
        write_samples(library.data)
    else:
        for name in ("starfield.fits", "cube.fits", "mosaic.fits"):
            os.link(samples / name, library.data / name)
    write_purpose_files(library.data, library.outside)
    return library


def make_app(library: Library, **options: object) -> Flask:
    """Return a test app with the service mounted at PREFIX over ``library``."""
    app = Flask("fitstiles_test")
    app.config["TESTING"] = True
    options.setdefault("data_dir", library.data)
    options.setdefault("cache_dir", library.cache)
    FitsTiles(app, url_prefix=PREFIX, **options)
    return app
