"""Micro-benchmark of the per-tile path: read from the memory map, render, encode.

Per mode, on prepared benchmark images (cached in ``$BENCH_DIR/micro-cache``),
the median over repeats of the time per tile, in microseconds, with the tile
memo cache bypassed (``render_jpeg`` on the tile, what a tile request
runs on a cache miss; its steps through ``Tiled.get_tile_raster`` and
``Tiled.encode``):

* mono grey: 8192^2 star field, ``CHAN=1``;
* mono colormap: the same, ``CHAN=1&CMP=jet``;
* colour: the 3 x 4096^2 cube, no ``CHAN`` (3 channels mixed into RGB), with
  equal weights (one band computed) and with an R/G/B ``MIX`` (three bands);
* plain request: the star field without ``CHAN`` (what ``run.py`` asks for);
* region: ``get_encoded_region`` of 4 x 4 tiles (1024 x 1024 pixels), per region
  and per tile;
* the Flask view in-process (the example app through ``app.test_client()``, no
  network, no gunicorn) for the plain request, uncached (random CNT) and cached
  (one tile): what the framework adds to the tile path.

Each full-resolution mode is also split into its steps (copy of the tile out of
the memory map, render alone, encode alone). Run: ``python benchmarks/micro.py``.
Environment: ``BENCH_DIR``, ``BENCH_MICRO_REPEAT`` (default 7).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import CUBE_4K, STAR_8K, bench_dir, images_dir  # noqa: E402
from make_images import make_images  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_fitstiles.core.render import render_jpeg  # noqa: E402
from flask_fitstiles.tiled import Tiled, pickledTiled  # noqa: E402

REPEAT = int(os.environ.get("BENCH_MICRO_REPEAT") or 7)
NTILES = 64  # distinct tiles cycled through, so no single tile stays in CPU caches


def per_call_us(func: Callable[[], object], number: int) -> float:
    """Return the median over ``REPEAT`` repeats of the time of one call, in µs."""
    func()  # warm up (tables, buffers, page faults)
    times = timeit.Timer(func).repeat(repeat=REPEAT, number=number)
    return statistics.median(times) / number * 1e6


def cycler(tiled: Tiled, level: int) -> Callable[[], int]:
    """Return a function giving the next of ``NTILES`` random full tiles of a level."""
    _, rows, cols = (int(v) for v in tiled.shapes[level])
    rng = np.random.default_rng(7)
    # Full tiles only: edge tiles are smaller and would flatter the figures.
    indices = [int(i) for i in rng.integers(0, (rows - 1) * cols, NTILES) if i % cols]
    position = [0]

    def next_index() -> int:
        position[0] = (position[0] + 1) % len(indices)
        return indices[position[0]]

    return next_index


def bench_tiles(tiled: Tiled, name: str, settings: dict[str, Any]) -> dict[str, float]:
    """Time the whole path and its steps for one mode; return µs per tile."""
    level = 0
    next_index = cycler(tiled, level)
    normalized = tiled.normalize_settings(**settings)
    quality = normalized["quality"]
    number = 200
    options = {k: v for k, v in normalized.items() if k != "quality"}

    def whole() -> bytes:
        # What a tile request runs on a cache miss (Tiled.get_encoded_tile).
        return render_jpeg(
            tiled.get_tile(level, next_index()), tiled.minmax, quality, **options
        )

    def read() -> np.ndarray:
        return np.array(tiled.get_tile(level, next_index()))

    def render() -> np.ndarray:
        return tiled.get_tile_raster(level, next_index(), **normalized)

    rasters = [
        tiled.get_tile_raster(level, next_index(), **normalized) for _ in range(NTILES)
    ]
    position = [0]

    def encode() -> bytes:
        position[0] = (position[0] + 1) % NTILES
        return tiled.encode(rasters[position[0]], quality=quality)

    result = {
        "whole_us": per_call_us(whole, number),
        "read_copy_us": per_call_us(read, number),
        "render_us": per_call_us(render, number),
        "encode_us": per_call_us(encode, number),
        "jpeg_bytes": float(np.mean([len(encode()) for _ in range(NTILES)])),
    }
    print(
        f"{name:26s} {result['whole_us']:8.0f} µs/tile   (read+copy "
        f"{result['read_copy_us']:5.0f}, read+render {result['render_us']:5.0f}, "
        f"encode {result['encode_us']:5.0f}; {result['jpeg_bytes'] / 1024:.0f} KiB)",
        flush=True,
    )
    return result


def bench_region(tiled: Tiled, name: str, side_tiles: int = 4) -> dict[str, float]:
    """Time ``get_encoded_region`` of ``side_tiles`` x ``side_tiles`` tiles."""
    th, tw = tiled.tile_shape[1:]
    rng = np.random.default_rng(8)
    ny, nx = tiled.shape[1:]
    corners = [
        (
            int(rng.integers(0, nx // tw - side_tiles)),
            int(rng.integers(0, ny // th - side_tiles)),
        )
        for _ in range(16)
    ]
    position = [0]

    def region() -> bytes:
        position[0] = (position[0] + 1) % len(corners)
        cx, cy = corners[position[0]]
        x1, y1 = cx * tw + 1, cy * th + 1
        bounds = ((x1, y1), (x1 + side_tiles * tw - 1, y1 + side_tiles * th - 1))
        return tiled.get_encoded_region(bounds, channel=1)

    per_region = per_call_us(region, 10)
    ntiles = side_tiles * side_tiles
    print(
        f"{name:26s} {per_region / ntiles:8.0f} µs/tile   "
        f"({per_region / 1000:.1f} ms per region of {ntiles} tiles)",
        flush=True,
    )
    return {"region_us": per_region, "per_tile_us": per_region / ntiles}


def bench_view(fif: str, cache: Path) -> dict[str, float]:
    """Time the example app's IIP view in-process, uncached and cached, per request."""
    os.environ["FITSTILES_DATA_DIR"] = str(images_dir())
    os.environ["FITSTILES_CACHE_DIR"] = str(cache)
    from example_app import create_app

    client = create_app().test_client()
    rng = np.random.default_rng(9)
    counter = [0]

    def get(path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: status {response.status_code}")

    def uncached() -> None:
        counter[0] += 1
        tile = int(rng.integers(0, 1024))
        get(f"/iip?FIF={fif}&JTL=5,{tile}&CNT={1 + counter[0] * 1e-9:.9f}")

    def cached() -> None:
        get(f"/iip?FIF={fif}&JTL=5,100")

    result = {
        "uncached_us": per_call_us(uncached, 200),
        "cached_us": per_call_us(cached, 500),
    }
    print(
        f"{'Flask view, no CHAN':26s} {result['uncached_us']:8.0f} µs/tile uncached, "
        f"{result['cached_us']:5.0f} µs cached (test client, in-process)",
        flush=True,
    )
    return result


def main() -> None:
    """Run the micro-benchmark and write ``micro.json`` next to ``results.json``."""
    make_images()
    cache = bench_dir() / "micro-cache"
    star = pickledTiled(images_dir() / STAR_8K, cache_dir=cache)
    cube = pickledTiled(images_dir() / CUBE_4K, cache_dir=cache)
    print(f"per-tile path, 256 x 256 full-resolution tiles, median of {REPEAT} repeats")
    results = {
        "mono grey": bench_tiles(star, "mono grey (CHAN=1)", {"channel": 1}),
        "mono colormap": bench_tiles(
            star, "mono jet (CHAN=1&CMP=jet)", {"channel": 1, "colormap": "jet"}
        ),
        "colour 3 channels": bench_tiles(cube, "colour, 3 channels", {}),
        "colour R/G/B mix": bench_tiles(
            cube,
            "colour, R/G/B MIX",
            {"mix": ((1, 1.0, 0.0, 0.0), (2, 0.0, 1.0, 0.0), (3, 0.0, 0.0, 1.0))},
        ),
        "plain (no CHAN)": bench_tiles(star, "star field, no CHAN", {}),
        "region 4x4": bench_region(star, "region 4 x 4 tiles, grey"),
    }
    try:
        results["flask view"] = bench_view(STAR_8K, cache)
    except Exception as error:  # the app is optional for the tile path figures
        print(f"Flask view: not measured ({type(error).__name__}: {error})")
    out = bench_dir() / "micro.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
