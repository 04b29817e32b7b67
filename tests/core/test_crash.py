"""A process killed (SIGKILL) while it prepares an image loses nothing, misleads no one."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from flask_fitstiles import tiled
from flask_fitstiles.tiled import pickledTiled

pytestmark = pytest.mark.slow  # servers or killed subprocesses

# The child prepares the image, but stalls at a chosen stage (after writing part of
# a file) and says so; the test then kills it with SIGKILL.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from flask_fitstiles import tiled
    from flask_fitstiles.core import mosaic, pyramid

    stage = sys.argv[3]

    def stall():
        print("stalled", flush=True)
        time.sleep(60)

    if stage == "frame":
        original = mosaic.write_frame
        def write_frame(images, shape, fd, **kwargs):
            original(images, (shape[0], shape[1] // 2, shape[2]), fd, **kwargs)
            stall()
        tiled.write_frame = write_frame
    elif stage == "levels":
        original_build = pyramid.build_levels
        def build_levels(data_fd, tiles_fd, shape, nlevels, **kwargs):
            os.pwrite(tiles_fd, b"\\0" * 4096, 0)
            stall()
        pyramid.build_levels = build_levels
    elif stage == "pickle":
        original_save = tiled.Tiled._save
        def _save(self):
            with open(tiled.aside(self.object_filename), "wb") as f:
                f.write(b"half a pickle")
            stall()
        tiled.Tiled._save = _save
    tiled.pickledTiled(sys.argv[1], cache_dir=sys.argv[2], secret_key="k")
    """
)


@pytest.fixture()
def image(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(9).normal(0.0, 1.0, (700, 900)).astype(np.float32)
    path = tmp_path / "victim.fits"
    fits.PrimaryHDU(data).writeto(path)
    return path, data


@pytest.mark.parametrize("stage", ["frame", "levels", "pickle"])
def test_killed_preparation(
    stage: str, image: tuple[Path, np.ndarray], cache_dir: Path
) -> None:
    path, data = image
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(cache_dir), stage],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # A wedged child must fail the test, not hang the suite.
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "the child did not reach its stage within 60 s"
        assert child.stdout.readline().strip() == "stalled"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    leftovers = [name for name in os.listdir(cache_dir) if ".tmp-" in name]
    assert leftovers, "the child should have been killed mid-way"
    # Nothing half-written is taken for whole...
    assert tiled.get_prepared(path, cache_dir, secret_key="k") is None
    start = time.perf_counter()
    again = pickledTiled(path, cache_dir=cache_dir, secret_key="k")
    assert time.perf_counter() - start < 30
    # ...the image is prepared again correctly...
    rng = np.random.default_rng(1)
    for x, y in rng.integers(1, 700, (50, 2)):
        assert again.get_pixel_values((1,), (int(x), int(y))).values == [
            float(data[y - 1, x - 1])
        ]
    assert np.allclose(again.get_level(1)[0, 0, 0], data[::-1][0:2, 0:2].mean(), rtol=1e-6)
    # ...and the leftovers are cleaned up.
    assert [name for name in os.listdir(cache_dir) if ".tmp-" in name] == []
    assert tiled.get_prepared(path, cache_dir, secret_key="k") is not None
