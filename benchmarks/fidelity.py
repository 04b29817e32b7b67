"""Side-by-side fidelity: the same IIP requests to our server and the reference.

What ``make fidelity`` runs. Both servers (ours under gunicorn, VisiOmatic 3.0.7
from the venv of ``peer.sh``) serve the same three images, written once into
``$BENCH_DIR/fidelity/images``:

* ``star2k.fits``: a 2048 x 2048 float32 star field;
* ``cube.fits``: a 3-channel 1300 x 1000 float32 cube (cropped edge tiles);
* ``mosaic.fits``: an 8-CCD raw mosaic with overscan and one CCD read out
  reversed.

Every case sends the same queries to both, decodes the answers (JPEG tiles and
regions with Pillow, JSON values) and prints, per case, the mean absolute
difference in levels and the share of pixels more than 16 levels apart (JSON
cases: the largest difference of values). A case passes within mean |diff| <= 2
and <= 1 % of pixels off by more than 16; cases where the reference itself is
wrong are listed with the evidence instead of being matched (``KNOWN``).

The reference keeps the MIX and the colour-mode MINMAX of one request for the
following ones (it changes its image's defaults in place), so colour requests
send both for every channel. Environment: ``BENCH_DIR`` (benchmark folder, where
``peer.sh setup`` put the reference's venv), ``FIDELITY_TILES`` (tiles per level
and case, default 3). Exit status 1 if a case fails.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import bench_dir, http_get  # noqa: E402
from make_images import make_star_field  # noqa: E402
from run import HERE, Server, our_server, peer_server  # noqa: E402

from example_app.samples import ccd_mosaic, color_cube, write_atomic  # noqa: E402

TILES_PER_LEVEL = int(os.environ.get("FIDELITY_TILES") or 3)
MAX_MEAN_DIFF = 2.0
MAX_SHARE_OFF = 0.01
OFF_LEVELS = 16

STAR = "star2k.fits"
CUBE = "cube.fits"
MOSAIC = "mosaic.fits"
MAKERS: dict[str, Callable[[], Any]] = {
    STAR: lambda: make_star_field(2048, seed=21),
    CUBE: lambda: color_cube((1000, 1300), nchannels=3, seed=22),
    MOSAIC: lambda: ccd_mosaic(ccd_shape=(512, 256), grid=(2, 4), seed=23),
}

# The reference's errors found by this comparison; each is shown with its
# evidence at the end of the run, and the differences it explains are counted
# apart from the others (the rest of the case must still match).
REGION_SHORT = "region one pixel short"
MOSAIC_GAPS = "mosaic gaps are 0.0"
KNOWN: dict[str, str] = {
    REGION_SHORT: (
        "Its first corner is 1-based and inclusive, its last corner exclusive: a "
        "region has one row and one column fewer than the inclusive corners ask, "
        "so that no request gives a whole image at a binning (RGN=1,1:W,H at "
        "BIN=b should be ceil(W/b) x ceil(H/b)); we take both corners inclusive "
        "(DESIGN.md). Compared over the pixels both have (same first pixel)."
    ),
    "INFO background of CCDs with overscan": (
        "the reference computes a CCD's background level and MAD, and so its "
        "default cuts, over the whole HDU, overscan columns (bias only, no sky) "
        "included; we use the DATASEC area. Its figures equal our estimator on "
        "its rows of the whole HDU:"
    ),
    MOSAIC_GAPS: (
        "the reference fills the gaps between CCDs with 0.0 instead of blank: "
        "PFL and VAL answer 0.0 ADU where there is no data (we answer null), "
        "and its tiles render 0.0 as a value (grey with BRT > 0 or a negative "
        "low cut; we render no data black). Compared outside the 8 x 8 JPEG "
        "blocks that touch a gap; null against 0.0 is not counted."
    ),
}


def images_folder() -> Path:
    """Return the folder of the fidelity images, written there once."""
    folder = bench_dir() / "fidelity" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in MAKERS.items():
        if not (folder / name).exists():
            write_atomic(make(), folder / name)
    return folder


# --------------------------------------------------------------------------------------
# Comparing answers
# --------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Differences accumulated over the requests of one case."""

    requests: int = 0
    values: int = 0
    pixels: int = 0
    abs_sum: float = 0.0
    off: int = 0
    worst: float = 0.0
    # Differences that the reference's known errors explain (see KNOWN), counted
    # apart so that they neither hide nor fail the rest of the comparison.
    explained: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_images(
        self, ours: np.ndarray, ref: np.ndarray, query: str, keep: np.ndarray | None = None
    ) -> None:
        """Add one pair of decoded rasters, over the pixels of `keep` (all by default)."""
        self.requests += 1
        if ours.shape != ref.shape:
            rows = min(ours.shape[0], ref.shape[0])
            cols = min(ours.shape[1], ref.shape[1])
            if ours.shape[:2] == (ref.shape[0] + 1, ref.shape[1] + 1):
                self.explain(
                    REGION_SHORT,
                    f"{query.split('&')[0]} {query.split('&')[1]}: ours "
                    f"{ours.shape[1]} x {ours.shape[0]}, reference {ref.shape[1]} x "
                    f"{ref.shape[0]}",
                )
            else:
                self.note(f"shape {ours.shape} vs reference {ref.shape}: {query}")
            # Both start at the region's first pixel: compare what both have.
            ours, ref = ours[:rows, :cols], ref[:rows, :cols]
            keep = None if keep is None else keep[:rows, :cols]
        diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
        if keep is not None:
            if not keep.all():
                self.explain(MOSAIC_GAPS)
            diff = diff[keep]  # (pixels, bands)
        # The mean is over every value (pixels x bands); a pixel is off when any
        # of its bands is.
        self.values += diff.size
        self.abs_sum += float(diff.sum())
        worst_band = diff.reshape(-1, diff.shape[-1]).max(axis=1)
        self.pixels += worst_band.size
        self.off += int((worst_band > OFF_LEVELS).sum())
        self.worst = max(self.worst, float(worst_band.max(initial=0)))

    def add_values(self, ours: Any, ref: Any, query: str) -> None:
        """Add one pair of JSON answers: every number compared, nulls must agree."""
        self.requests += 1
        mine, theirs = list(_numbers(ours)), list(_numbers(ref))
        if len(mine) != len(theirs):
            self.note(f"{len(mine)} values vs reference {len(theirs)}: {query}")
        for a, b in zip(mine, theirs, strict=False):
            if a is None and b == 0.0:
                # No data here; the reference says 0.0.
                self.explain(MOSAIC_GAPS, f"{query.split('&')[0]}: null vs 0.0")
            elif (a is None) != (b is None):
                self.note(f"value {a} vs reference {b}: {query}")
            elif a is not None and b is not None:
                self.worst = max(self.worst, abs(a - b) / max(1.0, abs(b)))

    def explain(self, reason: str, example: str = "") -> None:
        """Count a difference that a known error of the reference explains."""
        self.explained[reason] = self.explained.get(reason, 0) + 1
        if example and reason not in self.examples:
            self.examples[reason] = example

    def note(self, text: str) -> None:
        """Keep a remark on an unexplained difference (the first few are printed)."""
        if len(self.notes) < 3:
            self.notes.append(text)

    @property
    def mean(self) -> float:
        """Mean absolute difference in levels, over all values."""
        return self.abs_sum / self.values if self.values else 0.0

    @property
    def share(self) -> float:
        """Share of the pixels with a band more than OFF_LEVELS apart."""
        return self.off / self.pixels if self.pixels else 0.0


def _numbers(answer: Any) -> Iterable[float | None]:
    """Yield the values of a VAL or PFL answer, in order (None for null)."""
    if isinstance(answer, dict):
        for key in ("values", "profile"):
            if key in answer:
                yield from _numbers(answer[key])
    elif isinstance(answer, list):
        for item in answer:
            if item is None or isinstance(item, int | float):
                yield None if item is None else float(item)
            else:
                yield from _numbers(item)


def decode(body: bytes) -> np.ndarray:
    """Decode a JPEG answer to an (h, w, bands) uint8 array."""
    with Image.open(io.BytesIO(body)) as image:
        if image.format != "JPEG":
            raise ValueError(f"not a JPEG: {image.format}")
        array = np.asarray(image)
    return array if array.ndim == 3 else array[:, :, np.newaxis]


# --------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    """Queries (without FIF) for one image, answered as images or as JSON."""

    name: str
    image: str
    queries: list[str]
    json: bool = False


def tile_grid(info: dict[str, Any], z: int) -> tuple[int, int]:
    """Return (columns, rows) of JTL level z (0 is the coarsest)."""
    level = int(info["tile_levels"]) - 1 - z
    width, height = info["full_size"][:2]
    tile_w, tile_h = info["tile_size"][:2]
    scale = 1 << level
    return (
        max(1, math.ceil(math.ceil(width / scale) / tile_w)),
        max(1, math.ceil(math.ceil(height / scale) / tile_h)),
    )


def sample_tiles(info: dict[str, Any], z: int, count: int) -> list[int]:
    """Return up to `count` tile numbers of level z: corners first (cropped edges)."""
    cols, rows = tile_grid(info, z)
    picks = [
        cols * rows - 1,
        0,
        (rows // 2) * cols + cols // 2,
        cols - 1,
        (rows - 1) * cols,
    ]
    return list(dict.fromkeys(picks))[:count]


def tiles(info: dict[str, Any], levels: Iterable[int], extra: str, count: int) -> list[str]:
    """Return JTL queries over the given levels, with extra parameters."""
    return [f"JTL={z},{n}{extra}" for z in levels for n in sample_tiles(info, z, count)]


def cuts(info: dict[str, Any], channel: int, low: float, high: float) -> str:
    """Return a MINMAX row at fractions of the default cuts' range."""
    # The default cuts of a channel: the median of its images' (INFO has those).
    lo, hi = np.median([image["min_max"] for image in info["images"]], axis=0)[channel - 1]
    span = hi - lo
    return f"MINMAX={channel}:{lo + low * span:.6g},{lo + high * span:.6g}"


def colour(info: dict[str, Any], mix: list[tuple[float, float, float]]) -> str:
    """Return colour-mode parameters: MINMAX and MIX for every channel."""
    parts = []
    for c in range(1, int(info["channels"]) + 1):
        parts.append(cuts(info, c, 0.0, 1.0))
        r, g, b = mix[(c - 1) % len(mix)]
        parts.append(f"MIX={c}:{r:g},{g:g},{b:g}")
    return "&" + "&".join(parts)


def build_cases(infos: dict[str, dict[str, Any]]) -> list[Case]:
    """Return every case: commands, parameters, levels and regions."""
    n = TILES_PER_LEVEL
    cases: list[Case] = []
    # Colour requests change the reference's default cuts (shared state): they
    # come after every mono request that uses the defaults.
    colour_cases: list[Case] = []
    for image, info in infos.items():
        top = int(info["tile_levels"]) - 1
        every = range(top + 1)
        some = sorted({top, max(0, top - 2)})
        cases.append(
            Case(f"{image} grey, every level", image, tiles(info, every, "&CHAN=1", n))
        )
        # The reference's default cuts of a mosaic are off (its background
        # statistics count the overscan, see INFO): the other mono cases of the
        # mosaic name our default cuts, so that they compare the rendering alone.
        mono = "&CHAN=1" + ("&" + cuts(info, 1, 0.0, 1.0) if image == MOSAIC else "")
        colour_cases.append(
            Case(
                f"{image} no CHAN, MIX 1,1,1",
                image,
                tiles(info, some, colour(info, [(1, 1, 1)]), n),
            )
        )
        for cmp in ("jet", "hot", "cool", "cold"):
            cases.append(
                Case(f"{image} CMP={cmp}", image, tiles(info, some, f"{mono}&CMP={cmp}", n))
            )
        for extra in (
            "&INV",
            "&CMP=jet&INV",
            "&GAM=1",
            "&GAM=0.5",
            "&GAM=4",
            "&CNT=0.5",
            "&CNT=4",
            "&BRT=-30",
            "&BRT=40",
            "&QLT=50",
            "&QLT=100",
            "&CMP=hot&QLT=75",
        ):
            cases.append(
                Case(f"{image} {extra[1:]}", image, tiles(info, some, mono + extra, n))
            )
        for low, high in ((0.2, 0.3), (-0.5, 3.0)):
            minmax = "&CHAN=1&" + cuts(info, 1, low, high)
            cases.append(Case(f"{image} {minmax[1:]}", image, tiles(info, some, minmax, n)))
        width, height = info["full_size"][:2]
        x1, y1 = width // 5, height // 7
        for binning in (1, 2, 4):
            x2 = min(width, x1 + 300 * binning)
            y2 = min(height, y1 + 200 * binning)
            region = f"RGN={x1},{y1}:{x2},{y2}&BIN={binning}"
            cases.append(Case(f"{image} RGN BIN={binning}", image, [f"{region}{mono}"]))
            cases.append(
                Case(
                    f"{image} RGN BIN={binning} CMP=jet",
                    image,
                    [f"{region}{mono}&CMP=jet"],
                )
            )
        cases.append(
            Case(
                f"{image} RGN whole BIN=8",
                image,
                [f"RGN=1,1:{width},{height}&BIN=8{mono}"],
            )
        )
        rng = np.random.default_rng(5)
        points = [
            (int(x), int(y))
            for x, y in zip(
                rng.integers(1, width + 1, 20), rng.integers(1, height + 1, 20), strict=True
            )
        ]
        chans = "".join(f"&CHAN={c}" for c in range(1, int(info["channels"]) + 1))
        cases.append(
            Case(
                f"{image} VAL", image, [f"VAL={x},{y}{chans}" for x, y in points], json=True
            )
        )
        cases.append(
            Case(
                f"{image} PFL",
                image,
                [
                    f"PFL=1,1:{width},{height}{chans}",
                    f"PFL={x1},{y1}:{x1 + 150},{y1 + 40}{chans}",
                ],
                json=True,
            )
        )
    cube = infos[CUBE]
    top = int(cube["tile_levels"]) - 1
    some = sorted({top, max(0, top - 2)})
    for chan in (2, 3):
        cases.append(
            Case(f"{CUBE} CHAN={chan}", CUBE, tiles(cube, some, f"&CHAN={chan}", n))
        )
        cases.append(
            Case(
                f"{CUBE} CHAN={chan} MINMAX",
                CUBE,
                tiles(cube, some, f"&CHAN={chan}&" + cuts(cube, chan, 0.1, 0.5), n),
            )
        )
    rgb = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    odd = [(0.2, 0.5, 1.0), (1.0, 0.3, 0.0), (0.4, 0.9, 0.6)]
    for label, extra in (
        ("R/G/B MIX", colour(cube, rgb)),
        ("other MIX", colour(cube, odd)),
        ("R/G/B MIX INV GAM=1", colour(cube, rgb) + "&INV&GAM=1"),
        ("R/G/B MIX CNT=2 BRT=10", colour(cube, rgb) + "&CNT=2&BRT=10"),
        ("R/G/B MIX QLT=60", colour(cube, rgb) + "&QLT=60"),
    ):
        colour_cases.append(
            Case(f"{CUBE} colour {label}", CUBE, tiles(cube, some, extra, n))
        )
    narrow = "&" + "&".join(
        [cuts(cube, c, 0.1, 0.4) for c in (1, 2, 3)]
        + [f"MIX={c}:{r},{g},{b}" for c, (r, g, b) in enumerate(rgb, 1)]
    )
    colour_cases.append(Case(f"{CUBE} colour MINMAX", CUBE, tiles(cube, some, narrow, n)))
    width, height = cube["full_size"][:2]
    for binning in (1, 2):
        x2, y2 = min(width, 101 + 400 * binning), min(height, 51 + 300 * binning)
        colour_cases.append(
            Case(
                f"{CUBE} colour RGN BIN={binning}",
                CUBE,
                [f"RGN=101,51:{x2},{y2}&BIN={binning}" + colour(cube, rgb)],
            )
        )
    return cases + colour_cases


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def fetch(server: Server, image: str, query: str) -> tuple[int, bytes]:
    """GET one IIP query of an image from a server."""
    return http_get(
        server.port, f"{server.endpoint}?FIF={quote(image)}&{query}", timeout=120
    )


def gap_blocks(ours: Server, image: str, query: str, shape: tuple[int, ...]) -> np.ndarray:
    """Return the pixels of `query` outside the 8 x 8 JPEG blocks that touch no data.

    Our server renders blank pixels black, and any other pixel white at BRT=100:
    that answer is the map of the gaps.
    """
    where = "&".join(
        p for p in query.split("&") if p.split("=")[0] in ("JTL", "RGN", "BIN")
    )
    status, body = fetch(ours, image, f"{where}&CHAN=1&BRT=100&QLT=100")
    if status != 200:
        raise RuntimeError(f"gap map of {image} {where}: status {status}")
    blank = decode(body)[:, :, 0] < 128
    height, width = blank.shape
    rows, cols = -(-height // 8), -(-width // 8)
    padded = np.zeros((rows * 8, cols * 8), dtype=bool)
    padded[:height, :width] = blank
    blocks = padded.reshape(rows, 8, cols, 8).any(axis=(1, 3))
    keep = ~np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:height, :width]
    if keep.shape != tuple(shape[:2]):
        raise RuntimeError(f"gap map {keep.shape} vs tile {shape}")
    return keep


def run_case(case: Case, ours: Server, ref: Server) -> Tally:
    """Send the case's queries to both servers and compare the answers."""
    tally = Tally()
    for query in case.queries:
        status_ours, body_ours = fetch(ours, case.image, query)
        status_ref, body_ref = fetch(ref, case.image, query)
        if status_ours != 200 or status_ref != 200:
            tally.requests += 1
            tally.note(f"status {status_ours} vs reference {status_ref}: {query}")
            continue
        if case.json:
            tally.add_values(json.loads(body_ours), json.loads(body_ref), query)
            continue
        mine, theirs = decode(body_ours), decode(body_ref)
        keep = (
            gap_blocks(ours, case.image, query, mine.shape)
            if case.image == MOSAIC
            else None
        )
        tally.add_images(mine, theirs, query, keep)
    return tally


def compare_info(
    image: str, ours: dict[str, Any], ref: dict[str, Any], folder: Path
) -> tuple[list[str], list[str]]:
    """Compare INFO answers: (differences, evidence of the reference's own errors).

    Geometry must be equal. Background levels, MADs and default cuts are the
    same estimator on the same rows (every 16th row on these sizes): they must
    agree to float32 precision, but for mosaic CCDs with overscan, where the
    reference counts the overscan columns (bias only) as sky.
    """
    differ: list[str] = []
    evidence: list[str] = []
    for key in ("full_size", "tile_size", "tile_levels", "channels", "bits_per_channel"):
        if ours.get(key) != ref.get(key):
            differ.append(f"{key}: {ours.get(key)} vs {ref.get(key)}")
    worst = 0.0
    for k, (a, b) in enumerate(zip(ours["images"], ref["images"], strict=True)):
        for key in ("size", "dataslice", "detslice"):
            if a.get(key) != b.get(key):
                differ.append(f"images[{k}].{key}: {a.get(key)} vs {b.get(key)}")
        whole_hdu = a["dataslice"][0][1] - a["dataslice"][0][0] + 1 != a["size"][0]
        if whole_hdu:
            # Overscan in this HDU: check what the reference's figures are.
            level, mad = whole_hdu_background(folder / image, k + 1)
            matches = np.allclose(b["background_level"], level, rtol=2e-5) and np.allclose(
                b["background_mad"], mad, rtol=2e-5
            )
            evidence.append(
                f"images[{k}]: reference level {b['background_level'][0]:.3f} MAD "
                f"{b['background_mad'][0]:.3f}; statistics of the whole HDU with its "
                f"overscan: {level[0]:.3f} / {mad[0]:.3f} "
                f"({'equal' if matches else 'NOT equal'}); "
                f"ours, DATASEC only: {a['background_level'][0]:.3f} / "
                f"{a['background_mad'][0]:.3f}"
            )
            if not matches:
                differ.append(f"images[{k}]: background unexplained")
            continue
        for key in ("min_max", "background_level", "background_mad"):
            mine, theirs = np.asarray(a[key], float), np.asarray(b[key], float)
            span = np.abs(np.asarray(b["min_max"], float)).max()
            worst = max(worst, float(np.abs(mine - theirs).max() / span))
    if worst > 1e-5:
        differ.append(f"cuts and background differ by {worst:.1e} of the cuts' scale")
    return differ, evidence


def whole_hdu_background(path: Path, ext: int) -> tuple[np.ndarray, np.ndarray]:
    """Our estimator on every 16th row of a whole HDU, overscan included."""
    from astropy.io import fits

    from flask_fitstiles.core.image import compute_background

    with fits.open(path) as hdus:
        data = np.asarray(hdus[ext].data, dtype=np.float32)
    cube = data.reshape(-1, *data.shape[-2:])
    samples = cube[:, ::16, :].reshape(cube.shape[0], -1)
    # The reference divides the samples by their mean in float32 first; on
    # integer data, that decides which way the medians' ties fall.
    norm = float(abs(np.nanmean(samples)))
    level, mad = compute_background(samples / np.float32(norm))
    return level * norm, mad * norm


def main() -> int:
    """Start both servers, run every case and print the table."""
    subprocess.run(["bash", str(HERE / "peer.sh"), "setup"], check=True)
    data = images_folder()
    root = Path(tempfile.mkdtemp(prefix="fidelity-", dir=bench_dir()))
    ours = our_server(root, data_dir=data)
    # One worker: the reference's per-process state then stays one state.
    ref = peer_server(root, data_dir=data)
    ref.command[6] = "1"
    failed = 0
    try:
        ours.start()
        ref.start()
        infos: dict[str, dict[str, Any]] = {}
        evidence: dict[str, list[str]] = {}
        for image in MAKERS:
            answers = []
            for server in (ours, ref):
                status, body = fetch(server, image, "INFO")
                if status != 200:
                    raise RuntimeError(f"{server.name}: INFO of {image} answered {status}")
                answers.append(json.loads(body))
            infos[image] = answers[0]
            differ, found = compare_info(image, *answers, data)
            # CCDs with overscan are compared through the evidence instead.
            same = "same geometry" + (
                "; background and cuts: see below" if found else ", background and cuts"
            )
            print(f"INFO {image}: {'; '.join(differ) or same}")
            if found:
                print(
                    f"    {len(found)} images: the reference's background includes overscan"
                )
                evidence["INFO background of CCDs with overscan"] = found
            failed += bool(differ)
        cases = build_cases(infos)
        print(
            f"\n{'case':56} {'req':>4} {'mean|d|':>8} {'>16':>7} {'max':>5}  result",
            flush=True,
        )
        for case in cases:
            tally = run_case(case, ours, ref)
            if case.json:
                good = tally.worst <= 1e-5 and not tally.notes
                figures = f"{'':>8} {'':>7} {tally.worst:5.0e}"
            else:
                good = (
                    tally.mean <= MAX_MEAN_DIFF
                    and tally.share <= MAX_SHARE_OFF
                    and not tally.notes
                )
                figures = f"{tally.mean:8.3f} {100 * tally.share:6.2f}% {tally.worst:5.0f}"
            result = "ok" if good else "FAIL"
            if good and tally.explained:
                result = "ok, but reference: " + ", ".join(tally.explained)
            failed += not good
            print(
                f"{case.name[:56]:56} {tally.requests:4d} {figures}  {result}", flush=True
            )
            for note in tally.notes:
                print(f"    {note}")
            for reason, example in tally.examples.items():
                evidence.setdefault(reason, []).append(example)
        print(f"\n{len(cases)} cases, {failed} failed")
        for reason, examples in evidence.items():
            print(f"\nThe reference is wrong: {reason}. {KNOWN.get(reason, '')}")
            # Whole-image regions first: they show what is lost.
            unique = sorted(set(examples), key=lambda text: ("RGN=1,1:" not in text, text))
            for example in unique[:8]:
                print(f"    {example}")
    finally:
        ours.stop()
        ref.stop()
        for sub in root.glob("*/cache*"):
            shutil.rmtree(sub, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
