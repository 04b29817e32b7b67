"""Level 1 computed from the frame's stripes as written equals level 1 read back."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from flask_fitstiles.core import pyramid
from flask_fitstiles.core.mapped import FileMap


def frame_file(path: Path, frame: np.ndarray) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, np.ascontiguousarray(frame, dtype=np.float32).tobytes(), 0)
    return fd


def tiles_file(path: Path, shape: tuple[int, int, int], nlevels: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, pyramid.level_offsets(*shape, nlevels)[-1] * 4)
    return fd


def read_levels(fd: int, shape: tuple[int, int, int], nlevels: int) -> np.ndarray:
    size = pyramid.level_offsets(*shape, nlevels)[-1]
    return np.frombuffer(os.pread(fd, size * 4, 0), dtype=np.float32)


SHAPES = [(1, 9, 7), (1, 10, 8), (2, 11, 12), (1, 1, 5), (3, 16, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stripe_rows", [2, 4, 6])
def test_level1_from_stripes_equals_level1_read_back(
    tmp_path: Path, shape: tuple[int, int, int], stripe_rows: int
) -> None:
    rng = np.random.default_rng(sum(shape) + stripe_rows)
    frame = rng.normal(0.0, 1.0, shape).astype(np.float32)
    frame[rng.random(shape) < 0.2] = np.nan
    nlevels = 4
    data_fd = frame_file(tmp_path / "frame", frame)
    streamed_fd = tiles_file(tmp_path / "streamed", shape, nlevels)
    reference_fd = tiles_file(tmp_path / "reference", shape, nlevels)
    try:
        # Feed the stripes the way write_frame cuts them, in a scrambled order
        # (threads finish in any order).
        stripes = pyramid.frame_stripes(shape[1], stripe_rows)
        assert stripes[0][0] == 0 and stripes[-1][1] == shape[1]
        assert all(a[1] == b[0] for a, b in zip(stripes, stripes[1:], strict=False))
        with FileMap(streamed_fd, pyramid.level_offsets(*shape, nlevels)[-1]) as tiles:
            sink = pyramid.level1_writer(tiles, shape)
            for r0, r1 in reversed(stripes):
                sink(r0, r1, frame[:, r0:r1].copy())
        pyramid.build_levels(data_fd, streamed_fd, shape, nlevels, first_level=2)
        pyramid.build_levels(data_fd, reference_fd, shape, nlevels, stripe_rows=2)
        streamed = read_levels(streamed_fd, shape, nlevels)
        reference = read_levels(reference_fd, shape, nlevels)
    finally:
        for fd in (data_fd, streamed_fd, reference_fd):
            os.close(fd)
    assert_array_equal(streamed, reference)
    # Level 1, display row 0 (top) is the mean of the valid pixels of the two
    # top FITS rows (one for a single-row frame).
    top = frame[0, -2:, :2]
    valid = top[~np.isnan(top)]
    expected = float(valid.astype(np.float64).mean()) if valid.size else np.nan
    assert streamed[0] == pytest.approx(expected, rel=1e-5, abs=1e-6, nan_ok=True)


def test_a_stripe_that_splits_a_pair_is_refused(tmp_path: Path) -> None:
    shape = (1, 9, 4)
    fd = tiles_file(tmp_path / "tiles", shape, 2)
    try:
        with FileMap(fd, pyramid.level_offsets(*shape, 2)[-1]) as tiles:
            sink = pyramid.level1_writer(tiles, shape)
            with pytest.raises(ValueError, match="splits a pair"):
                sink(0, 2, np.zeros((1, 2, 4), dtype=np.float32))
    finally:
        os.close(fd)


def test_downsample2x2_allocates_its_output_when_none_is_given() -> None:
    rng = np.random.default_rng(4)
    block = rng.normal(0.0, 1.0, (2, 6, 8)).astype(np.float32)
    block[0, 0:2, 0:2] = np.nan  # a cell with no valid pixel
    block[1, 2, 3] = np.nan  # a cell with three
    mean = pyramid.downsample2x2(block)
    assert mean.dtype == np.float32 and mean.shape == (2, 3, 4)
    given = np.empty((2, 3, 4), dtype=np.float32)
    assert_array_equal(pyramid.downsample2x2(block, given), mean)
    cells = block.reshape(2, 3, 2, 4, 2).transpose(0, 1, 3, 2, 4).reshape(2, 3, 4, 4)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-blank cell
        expected = np.nanmean(cells.astype(np.float64), axis=-1)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-7)
    assert np.isnan(mean[0, 0, 0])


def test_defaults_are_full_resolution_and_256_row_stripes() -> None:
    # Level 0 is full resolution; stripes of 256 rows keep level-1 pairs whole
    # (an odd frame's boundaries move one row down).
    assert pyramid.compute_grid_shape(1000, 600, 256, 256) == pyramid.compute_grid_shape(
        1000, 600, 256, 256, 0
    )
    assert pyramid.compute_grid_shape(1000, 600, 256, 256) == (4, 3)
    assert pyramid.compute_tile_bordershape(1000, 600, 256, 256) == (232, 88)
    assert [r0 for r0, _ in pyramid.frame_stripes(1000)] == [0, 256, 512, 768]
    assert [r0 for r0, _ in pyramid.frame_stripes(1001)] == [0, 255, 511, 767]
