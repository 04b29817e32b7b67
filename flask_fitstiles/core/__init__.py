"""Pure computation and storage: FITS images, mosaics, pyramid, rendering (no Flask)."""
