"""flask_fitstiles: serve astronomical FITS images as zoomable tiles from Flask."""

from .extension import FitsTiles

__version__ = "0.1.0"

__all__ = ["FitsTiles", "__version__"]
