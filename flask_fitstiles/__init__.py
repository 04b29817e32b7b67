"""flask_fitstiles: serve astronomical FITS images as zoomable tiles from Flask."""

__version__ = "0.1.0"
