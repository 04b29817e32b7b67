"""Write the benchmark images once into the benchmark folder.

Images (in ``$BENCH_DIR/images``, default ``bench-data/images``):

* ``star8k.fits``: 8192 x 8192 float32 star field (the main benchmark image);
* ``cube4k.fits``: 3 x 4096 x 4096 float32 colour cube;
* ``mosaic8k.fits``: 8-CCD raw mosaic, 2 x 4 CCDs of 4096 x 2048 (about 8192^2);
* ``star1k.fits`` and ``star16k.fits``: 1024^2 and 16384^2 float32 star fields
  (the scale check).

Existing files are kept. Star and galaxy counts grow with the area, at the
density of the demo's star field. Run: ``python benchmarks/make_images.py``.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import (  # noqa: E402
    CUBE_4K,
    MOSAIC_8K,
    STAR_1K,
    STAR_8K,
    STAR_16K,
    images_dir,
)

from example_app.samples import (  # noqa: E402
    ccd_mosaic,
    color_cube,
    star_field,
    write_atomic,
)

# Object densities of the demo's default star field (3000 stars, 40 galaxies
# on 1536 x 2048 pixels).
STARS_PER_PIXEL = 3000 / (1536 * 2048)
GALAXIES_PER_PIXEL = 40 / (1536 * 2048)


def make_star_field(size: int, seed: int) -> fits.HDUList:
    """Return a ``size`` x ``size`` float32 star field at the demo's density."""
    area = size * size
    return star_field(
        (size, size),
        nstars=int(area * STARS_PER_PIXEL),
        ngalaxies=max(1, int(area * GALAXIES_PER_PIXEL)),
        seed=seed,
    )


#: Makers of the benchmark images, by file name.
MAKERS: dict[str, Callable[[], fits.HDUList]] = {
    STAR_1K: lambda: make_star_field(1024, seed=11),
    STAR_8K: lambda: make_star_field(8192, seed=12),
    CUBE_4K: lambda: color_cube((4096, 4096), nchannels=3, seed=13),
    MOSAIC_8K: lambda: ccd_mosaic(ccd_shape=(4096, 2048), grid=(2, 4), seed=14),
    # samples.star_field holds the float32 image once (1 GiB here) and adds the
    # sky and noise in row stripes; astropy byte-swaps in place when writing,
    # so the peak stays near 1.3 GB (checked by main()'s report).
    STAR_16K: lambda: make_star_field(16384, seed=15),
}


def make_images(folder: Path | None = None, verbose: bool = True) -> list[Path]:
    """Write the missing benchmark images; return the paths of all of them."""
    folder = folder or images_dir()
    paths = []
    for name, make in MAKERS.items():
        path = folder / name
        if not path.exists():
            started = time.perf_counter()
            hdus = make()
            write_atomic(hdus, path)
            del hdus
            if verbose:
                print(
                    f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
        paths.append(path)
    return paths


def main() -> None:
    """Write the images and report the peak memory of this process."""
    make_images()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"images ready in {images_dir()} (peak RSS {peak / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
