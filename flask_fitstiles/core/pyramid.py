"""Level and grid arithmetic, and building the reduced levels on disk.

Level 0 is full resolution; level l + 1 is the 2 x 2 mean of level l, where
blank (NaN) and outside-the-image pixels do not count. Level l measures
``ceil(n / 2**l)`` pixels along an axis of n pixels, so every image pixel reaches
every level. The grid formulas are the seed's (they are what the VisiOmatic
client computes on its side), with at least one tile per axis.

Rows of every reduced level run from the top of the displayed image (largest
FITS y) downward, as the tiles do; level 0 is the frame itself, read flipped.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .mapped import FileMap

FrameStripeSink = Callable[[int, int, np.ndarray], None]

__all__ = [
    "FrameStripeSink",
    "build_levels",
    "compute_grid_shape",
    "compute_nlevels",
    "compute_tile_bordershape",
    "downsample2x2",
    "frame_stripes",
    "level1_writer",
    "level_offsets",
    "level_shape",
]


def compute_nlevels(ny: int, nx: int, tile_ny: int, tile_nx: int) -> int:
    """Return the number of pyramid levels.

    Parameters
    ----------
    ny, nx : int
        Full-resolution image size.
    tile_ny, tile_nx : int
        Tile size.

    Returns
    -------
    nlevels : int
        Smallest number of levels whose top level fits in one tile.
    """
    return max(
        ((ny - 1) // tile_ny).bit_length() + 1,
        ((nx - 1) // tile_nx).bit_length() + 1,
    )


def compute_grid_shape(
    ny: int, nx: int, tile_ny: int, tile_nx: int, level: int = 0
) -> tuple[int, int]:
    """Return the number of tile rows and columns at a level.

    Parameters
    ----------
    ny, nx : int
        Full-resolution image size.
    tile_ny, tile_nx : int
        Tile size.
    level : int, optional
        Pyramid level, 0 being full resolution.

    Returns
    -------
    shape : tuple[int, int]
        Tile rows and columns (never zero, even for a 20000 x 3 image).
    """
    return (
        max(1, ((ny >> level) - 1) // tile_ny + 1),
        max(1, ((nx >> level) - 1) // tile_nx + 1),
    )


def compute_tile_bordershape(
    ny: int, nx: int, tile_ny: int, tile_nx: int, level: int = 0
) -> tuple[int, int]:
    """Return the size of the last tile row and column at a level.

    Parameters
    ----------
    ny, nx : int
        Full-resolution image size.
    tile_ny, tile_nx : int
        Tile size.
    level : int, optional
        Pyramid level, 0 being full resolution.

    Returns
    -------
    shape : tuple[int, int]
        Height of the tiles of the last row, width of those of the last column.
    """
    return (
        ((ny - 1) >> level) % tile_ny + 1,
        ((nx - 1) >> level) % tile_nx + 1,
    )


def level_shape(ny: int, nx: int, level: int) -> tuple[int, int]:
    """Return the size in pixels of a pyramid level.

    Parameters
    ----------
    ny, nx : int
        Full-resolution image size.
    level : int
        Pyramid level.

    Returns
    -------
    shape : tuple[int, int]
        ``(ceil(ny / 2**level), ceil(nx / 2**level))``.
    """
    return ((ny - 1) >> level) + 1, ((nx - 1) >> level) + 1


def level_offsets(nchannels: int, ny: int, nx: int, nlevels: int) -> list[int]:
    """Return the element offsets of the reduced levels in the tiles file.

    Parameters
    ----------
    nchannels, ny, nx : int
        Frame shape.
    nlevels : int
        Number of pyramid levels.

    Returns
    -------
    offsets : list[int]
        ``offsets[l]`` is where level l starts (in float32 elements) for
        l >= 1; ``offsets[0]`` is 0 and the last entry is the total size.
    """
    offsets = [0, 0]
    for level in range(1, nlevels):
        h, w = level_shape(ny, nx, level)
        offsets.append(offsets[-1] + nchannels * h * w)
    return offsets


def downsample2x2(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return the NaN-aware 2 x 2 mean of a (channels, 2 m, 2 n) block.

    Parameters
    ----------
    block : ndarray
        Float32 input with even row and column counts; NaN pixels (blank or
        padding outside the image) are left out of the mean.
    out : ndarray, optional
        Output (channels, m, n) float32 array.

    Returns
    -------
    mean : ndarray
        Mean of the valid pixels of each 2 x 2 cell; NaN where none is valid.
    """
    quads = (
        block[:, 0::2, 0::2],
        block[:, 0::2, 1::2],
        block[:, 1::2, 0::2],
        block[:, 1::2, 1::2],
    )
    if out is None:
        out = np.empty(quads[0].shape, dtype=np.float32)
    # Most cells hold four valid pixels: a plain mean, where any NaN propagates
    # and marks the (few) cells to redo with the NaN-aware mean.
    np.add(quads[0], quads[1], out=out)
    out += quads[2]
    out += quads[3]
    out *= np.float32(0.25)
    bad = np.nonzero(np.isnan(out))
    if bad[0].size:
        values = np.stack([quad[bad] for quad in quads])
        valid = ~np.isnan(values)
        total = np.where(valid, values, np.float32(0)).sum(axis=0, dtype=np.float32)
        count = valid.sum(axis=0, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[bad] = total / count
    return out


def frame_stripes(ny: int, stripe_rows: int = 256) -> list[tuple[int, int]]:
    """Return stripes of frame rows that keep the row pairs of level 1 whole.

    Level 1 pairs display rows from the top, so FITS rows ``(ny - 2, ny - 1)``,
    ``(ny - 4, ny - 3)``, ...; with an odd ny, row 0 pairs with a blank row below
    the image. The boundaries sit at ``k * stripe_rows - ny % 2`` (and 0), so
    each stripe makes whole level-1 rows (:func:`level1_writer`).

    Parameters
    ----------
    ny : int
        Frame rows.
    stripe_rows : int, optional
        Rows per stripe (even); the first one is a row shorter when ny is odd.

    Returns
    -------
    stripes : list of (int, int)
        ``(r0, r1)`` FITS row ranges, bottom first, covering ``0:ny``.
    """
    bounds = sorted({0, *range(stripe_rows - ny % 2, ny, stripe_rows), ny})
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def level1_writer(tiles: FileMap, shape: tuple[int, int, int]) -> FrameStripeSink:
    """Return a function that writes level 1 from stripes of the frame, as written.

    Computing level 1 while the frame is assembled saves reading the whole frame
    back from the file. Stripes must be cut by :func:`frame_stripes`.

    Parameters
    ----------
    tiles : FileMap
        Tiles file, mapped for writing; level 1 starts at its beginning.
    shape : tuple[int, int, int]
        Frame shape (channels, y, x).

    Returns
    -------
    sink : callable
        ``sink(r0, r1, stripe)`` takes FITS rows ``r0:r1`` of the frame, as a
        (channels, r1 - r0, x) float32 array, and writes the level-1 rows they
        make. Calls for different stripes may run at once, in threads.
    """
    nchan, ny, nx = shape
    phase = ny % 2
    dh, dw = level_shape(ny, nx, 1)

    def sink(r0: int, r1: int, stripe: np.ndarray) -> None:
        # Rows counted from the blank row below an odd frame: pairs are (2k, 2k + 1).
        g0 = 0 if r0 == 0 else r0 + phase
        g1 = r1 + phase
        if g0 % 2 or g1 % 2:
            raise ValueError(f"frame stripe {r0}:{r1} splits a pair of rows")
        if (r1 - r0) != (g1 - g0) or nx % 2:
            block = np.full((nchan, g1 - g0, 2 * dw), np.nan, dtype=np.float32)
            block[:, g1 - g0 - (r1 - r0) :, :nx] = stripe
        else:
            block = stripe
        d0 = dh - g1 // 2  # pair k from the bottom is display row dh - 1 - k
        out = tiles.array((nchan, dh, dw))[:, d0 : d0 + (g1 - g0) // 2]
        # Display order (top first), as build_levels reads it: the same sums in
        # the same order, so the same bits.
        downsample2x2(block[:, ::-1], out)
        for c in range(nchan):
            tiles.release(out[c])

    return sink


def build_levels(
    data_fd: int,
    tiles_fd: int,
    shape: tuple[int, int, int],
    nlevels: int,
    nthreads: int = 1,
    stripe_rows: int = 512,
    first_level: int = 1,
) -> None:
    """Compute the reduced levels ``first_level .. nlevels - 1`` into the tiles file.

    Level 1 is computed from level 0, read from the frame file (FITS row order,
    so read flipped); each further level from the previous one in the tiles file.
    Work goes in stripes, so memory does not grow with the image.

    Parameters
    ----------
    data_fd : int
        Frame file, channel-major float32 (channels, y, x), FITS row order.
    tiles_fd : int
        Tiles file, open for reading and writing (it is sized and mapped).
    shape : tuple[int, int, int]
        Frame shape.
    nlevels : int
        Number of pyramid levels.
    nthreads : int, optional
        Threads that compute the means (numpy releases the GIL).
    stripe_rows : int, optional
        Output rows computed per stripe.
    first_level : int, optional
        First level to compute; 2 when level 1 was written with the frame
        (:func:`level1_writer`).
    """
    nchan, ny, nx = shape
    offsets = level_offsets(nchan, ny, nx, nlevels)
    first_level = max(1, first_level)
    if first_level >= nlevels:
        return
    pool = ThreadPoolExecutor(max_workers=nthreads) if nthreads > 1 else None
    tiles = FileMap(tiles_fd, offsets[-1])
    frame = FileMap(data_fd, nchan * ny * nx, writable=False) if first_level == 1 else None
    try:
        for level in range(first_level, nlevels):
            sh, sw = level_shape(ny, nx, level - 1)
            dh, dw = level_shape(ny, nx, level)
            source_map = frame if level == 1 else tiles
            assert source_map is not None
            source = source_map.array((nchan, sh, sw), offsets[level - 1])
            out = tiles.array((nchan, dh, dw), offsets[level])
            for d0 in range(0, dh, stripe_rows):
                d1 = min(dh, d0 + stripe_rows)
                s0, s1 = 2 * d0, min(sh, 2 * d1)
                # Level 0 is in FITS row order: display rows s0:s1 are flipped rows.
                rows = source[:, sh - s1 : sh - s0] if level == 1 else source[:, s0:s1]
                part = rows[:, ::-1] if level == 1 else rows
                if s1 - s0 != 2 * (d1 - d0) or sw % 2:
                    # Only the padding beyond an odd edge is outside the image.
                    block = np.full(
                        (nchan, 2 * (d1 - d0), 2 * dw), np.nan, dtype=np.float32
                    )
                    block[:, : s1 - s0, :sw] = part
                else:
                    block = part
                _downsample_parallel(block, out[:, d0:d1], pool, nthreads)
                for c in range(nchan):
                    tiles.release(out[c, d0:d1])
                    source_map.release(rows[c])
            del source, out, rows, part, block
    finally:
        if pool is not None:
            pool.shutdown()
        tiles.close()
        if frame is not None:
            frame.close()


def _downsample_parallel(
    block: np.ndarray, out: np.ndarray, pool: ThreadPoolExecutor | None, nthreads: int
) -> None:
    """Run :func:`downsample2x2` over row chunks of a stripe, in threads if any."""
    rows = out.shape[1]
    if pool is None or rows < 2 * nthreads:
        downsample2x2(block, out)
        return
    step = -(-rows // nthreads)
    jobs = [
        pool.submit(
            downsample2x2,
            block[:, 2 * r : 2 * min(rows, r + step)],
            out[:, r : min(rows, r + step)],
        )
        for r in range(0, rows, step)
    ]
    for job in jobs:
        job.result()
