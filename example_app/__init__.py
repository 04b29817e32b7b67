"""Example site: the FITS tile service mounted at the root of a Flask app.

Run it under gunicorn (``make demo``)::

    gunicorn -c example_app/gunicorn.conf.py "example_app:create_app()"

Settings come from ``FITSTILES_*`` environment variables (see the README's
configuration table). Without ``FITSTILES_DATA_DIR``, a few realistic sample
images (a star field, a 3-band cube, a CCD mosaic) are written once into
``example_app/data/`` and served.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from filelock import FileLock
from flask import Flask

from flask_fitstiles import FitsTiles

from .samples import write_samples

__all__ = ["SAMPLES_DIR", "create_app", "ensure_samples"]

#: Where the sample images go when FITSTILES_DATA_DIR is not set.
SAMPLES_DIR = Path(__file__).resolve().parent / "data"

logger = logging.getLogger(__name__)


def ensure_samples(folder: str | os.PathLike[str]) -> Path:
    """Write the sample images into ``folder`` unless they are there already.

    Safe when several processes (gunicorn workers) start at once: one writes
    under a file lock while the others wait, and each file appears atomically.

    Parameters
    ----------
    folder : str or path
        Destination folder, created if needed.

    Returns
    -------
    folder : pathlib.Path
        The folder, absolute.
    """
    path = Path(folder).resolve()
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(os.fspath(path / ".samples.lock"), timeout=300):
        missing = [
            name
            for name in ("starfield.fits", "cube.fits", "mosaic.fits")
            if not (path / name).exists()
        ]
        if missing:
            logger.info("writing sample images %s into %s", ", ".join(missing), path)
            write_samples(path)
    return path


def create_app(samples_dir: str | os.PathLike[str] | None = None) -> Flask:
    """Return the example Flask app with the tile service at the site root.

    Parameters
    ----------
    samples_dir : str or path, optional
        Where to write and serve the sample images when FITSTILES_DATA_DIR is
        not set (default: ``example_app/data/``).

    Returns
    -------
    app : flask.Flask
        The application; FITSTILES_* settings are read from the environment.
    """
    app = Flask(__name__)
    options: dict[str, Any] = {}
    if not os.environ.get("FITSTILES_DATA_DIR"):
        options["data_dir"] = ensure_samples(samples_dir or SAMPLES_DIR)
    FitsTiles(app, url_prefix="", **options)
    return app
