"""The viewer in headless Chromium (Playwright), served by gunicorn over the samples.

One browser and one server for the module; each test opens its own page, and
every page is checked at the end: no console error, no uncaught exception, no
request to anything but the server on 127.0.0.1 (such requests are aborted and
counted).

Geometry used below: the hash ``C=x,y&Z=z`` puts FITS pixel (x, y) at the
centre of the map; at zoom z a full-resolution pixel measures
``2 ** (z - zmax)`` screen pixels, zmax = tile_levels - 1.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlparse

import numpy as np
import pytest
from PIL import Image

from tests.web.browsers import CHROMIUM, launch
from tests.web.servers import Gunicorn, fetch, gunicorn, live_server
from tests.web.webtools import PREFIX, Library, make_app

VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="the browser tests need Debian's chromium at /usr/bin/chromium "
        "(apt-get install chromium; .ci/run installs it)",
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def server(
    library: Library, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    log = tmp_path_factory.mktemp("viewer") / "gunicorn.log"
    with gunicorn(library.data, library.cache, log, workers=2, threads=4) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@dataclass
class Viewer:
    """A page of the viewer with what it requested and complained about."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    levels: int = 0

    def open(self, fif: str, view: str = "") -> None:
        self.levels = fetch_json(f"{self.base}/iip?FIF={fif}&INFO")["tile_levels"]
        self.page.goto(f"{self.base}/viewer?FIF={fif}{'#' + view if view else ''}")
        self.page.wait_for_selector("#viewer[data-ready=true]", timeout=TIMEOUT_MS)
        self.settle()

    def settle(self) -> None:
        """Wait until every tile image on screen has loaded."""
        self.page.wait_for_function(
            """() => document.getElementById('map').dataset.tilesPending === '0'
                && !document.querySelector('.leaflet-zoom-anim')
                && [...document.querySelectorAll('.iip-tiles img')]
                   .every(i => i.complete)""",
            timeout=TIMEOUT_MS,
        )
        # Two frames, so that what was loaded is also laid out and painted.
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

    def tiles_requested(self) -> list[tuple[int, int]]:
        """(z, n) of every JTL request so far, in order."""
        found = []
        for url in self.requests:
            params = dict(parse_qsl(urlparse(url).query, keep_blank_values=True))
            if "JTL" in params and "FIF" in params:
                z, n = params["JTL"].split(",")
                found.append((int(z), int(n)))
        return found

    def hash_view(self) -> dict[str, str]:
        return dict(parse_qsl(urlparse(self.page.url).fragment))

    def wait_hash(self, name: str, value: str) -> None:
        self.page.wait_for_function(
            "([n, v]) => new URLSearchParams(location.hash.slice(1)).get(n) === v",
            arg=[name, value],
            timeout=TIMEOUT_MS,
        )

    def wait_centre(self, x: float, y: float, tolerance: float) -> tuple[float, float]:
        """Wait until the hash's centre settles within ``tolerance`` of (x, y); return it.

        A busy machine may settle a move more than once on the way.
        """
        self.page.wait_for_function(
            """([x, y, t]) => {
                 const c = new URLSearchParams(location.hash.slice(1))
                   .get('C').split(',').map(Number);
                 return Math.abs(c[0] - x) <= t && Math.abs(c[1] - y) <= t; }""",
            arg=[x, y, tolerance],
        )
        cx, cy = (float(v) for v in self.hash_view()["C"].split(","))
        return cx, cy

    def key_zoom(self, key: str, zoom: int) -> None:
        """Zoom with Leaflet's keyboard ("Equal" in, "Minus" out) to ``zoom``."""
        # Leaflet drops a zoom asked for while another one is animating.
        self.page.wait_for_function("() => !document.querySelector('.leaflet-zoom-anim')")
        self.page.focus("#map")
        self.page.keyboard.press(key)
        self.wait_hash("Z", str(zoom))

    def button_zoom(self, direction: str, zoom: int) -> None:
        """Zoom with Leaflet's zoom buttons ("in" or "out") to ``zoom``."""
        self.page.wait_for_function("() => !document.querySelector('.leaflet-zoom-anim')")
        self.page.click(f".leaflet-control-zoom-{direction}")
        self.wait_hash("Z", str(zoom))

    def map_box(self) -> dict[str, float]:
        box: dict[str, float] = self.page.locator("#map").bounding_box()
        return box

    def map_centre(self) -> tuple[float, float]:
        box = self.map_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def drawn_tiles(self) -> list[dict[str, Any]]:
        """The tile images of the current level, fully inside the map, with their boxes."""
        tiles: list[dict[str, Any]] = self.page.evaluate(
            """() => {
              const map = document.getElementById('map').getBoundingClientRect();
              return [...document.querySelectorAll('.iip-tiles img')].map(img => {
                const r = img.getBoundingClientRect();
                return {src: img.src, x: r.x, y: r.y, width: r.width, height: r.height,
                        natural: [img.naturalWidth, img.naturalHeight],
                        inside: r.x >= map.x && r.y >= map.y && r.right <= map.right
                                && r.bottom <= map.bottom};
              });
            }"""
        )
        # Leaflet keeps the previous level's tiles on screen until the new ones
        # load; those belong to another JTL level.
        level = f"{min(int(self.hash_view()['Z']), self.levels - 1)},"
        return [
            tile
            for tile in tiles
            if tile["inside"]
            and tile["width"] > 0
            and dict(params_of(tile["src"]))["JTL"].startswith(level)
        ]


@pytest.fixture
def viewer(browser: Any, server: Gunicorn) -> Iterator[Viewer]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    opened = Viewer(page, server.url)

    def route(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            opened.outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on(
        "console",
        lambda message: message.type == "error" and opened.errors.append(message.text),
    )
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()
    assert opened.errors == []
    assert opened.outside == []


# -- helpers ------------------------------------------------------------------------------


def decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)


def screenshot(viewer: Viewer, tile: dict[str, Any]) -> np.ndarray:
    clip = {k: tile[k] for k in ("x", "y", "width", "height")}
    png = viewer.page.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def server_tile(url: str) -> np.ndarray:
    status, body = fetch(url)
    assert status == 200, body[:200]
    return decode(body)


def assert_drawn_as_served(viewer: Viewer, tile: dict[str, Any]) -> np.ndarray:
    """The screen pixels of a tile are those of the JPEG the server sends for its URL."""
    served = server_tile(tile["src"])
    assert served.shape[1::-1] == tuple(tile["natural"])
    # Drawn at its own size: a cropped edge tile is not stretched.
    assert (tile["width"], tile["height"]) == tuple(tile["natural"])
    drawn = screenshot(viewer, tile)
    assert drawn.shape == served.shape
    difference = np.abs(drawn - served)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 4, (
        difference.mean(),
        difference.max(),
    )
    return drawn


def params_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlparse(url).query, keep_blank_values=True)


def fetch_json(url: str) -> Any:
    status, body = fetch(url)
    assert status == 200, body[:200]
    return json.loads(body)


def info_of_url(base: str, fif: str) -> dict[str, Any]:
    info: dict[str, Any] = fetch_json(f"{base}/iip?FIF={fif}&INFO")
    return info


def info_of(server: Gunicorn, fif: str) -> dict[str, Any]:
    return info_of_url(server.url, fif)


# -- tiles --------------------------------------------------------------------------------


def test_draws_the_tiles_the_server_sends(viewer: Viewer, server: Gunicorn) -> None:
    info = info_of(server, "starfield.fits")
    viewer.open("starfield.fits")
    tiles = viewer.drawn_tiles()
    assert tiles
    full = [t for t in tiles if tuple(t["natural"]) == tuple(info["tile_size"])]
    cropped = [t for t in tiles if tuple(t["natural"]) != tuple(info["tile_size"])]
    assert full and cropped
    for tile in (full[0], cropped[0]):
        drawn = assert_drawn_as_served(viewer, tile)
        assert drawn.std() > 2  # stars on a sky: not a blank square
    zoom = int(viewer.hash_view()["Z"])
    assert {z for z, _ in viewer.tiles_requested()} == {zoom, 0}  # view and overview
    overview = viewer.page.evaluate(
        "() => [document.getElementById('overview-image').naturalWidth, "
        "document.getElementById('overview-image').complete]"
    )
    assert overview[0] > 0 and overview[1]


def test_wheel_zoom_requests_the_next_level(viewer: Viewer) -> None:
    viewer.open("starfield.fits", "C=1024,768&Z=1")
    before = len(viewer.tiles_requested())
    viewer.page.mouse.move(*viewer.map_centre())
    viewer.page.mouse.wheel(0, -120)
    viewer.wait_hash("Z", "2")
    viewer.settle()
    new = viewer.tiles_requested()[before:]
    assert new and {z for z, _ in new} == {2}
    for tile in viewer.drawn_tiles()[:2]:
        assert_drawn_as_served(viewer, tile)


def test_panning_requests_only_the_newly_visible_tiles(
    viewer: Viewer, server: Gunicorn
) -> None:
    info = info_of(server, "starfield.fits")
    nx, ny = info["full_size"]
    tw, th = info["tile_size"]
    viewer.open("starfield.fits", "C=700,900&Z=3")  # full resolution, 1 pixel = 1 pixel
    old = set(viewer.tiles_requested())
    box = viewer.map_box()

    def visible(cx: float, cy: float) -> set[tuple[int, int]]:
        """Tiles of level 3 that a view centred on FITS (cx, cy) overlaps, 1 px margin."""
        left, top = cx - 0.5 - box["width"] / 2, ny - cy + 0.5 - box["height"] / 2
        right, bottom = left + box["width"], top + box["height"]
        cols, rows = -(-nx // tw), -(-ny // th)
        return {
            (3, col + cols * row)
            for col in range(cols)
            for row in range(rows)
            if col * tw < right - 1 and (col + 1) * tw > left + 1
            if row * th < bottom - 1 and (row + 1) * th > top + 1
        }

    assert {t for t in old if t[0] == 3} >= visible(700, 900)
    start = viewer.map_centre()
    viewer.page.mouse.move(*start)
    viewer.page.mouse.down()
    # Straight across: every view on the way lies within the first and the last.
    viewer.page.mouse.move(start[0] - 300, start[1], steps=10)
    viewer.page.wait_for_timeout(150)  # still before release: no inertia
    viewer.page.mouse.up()
    cx, cy = viewer.wait_centre(1000, 900, 1)
    viewer.settle()
    new = viewer.tiles_requested()[len(old) :]
    assert new and not set(new) & old
    newly_visible = visible(cx, cy) - visible(700, 900)
    assert set(new) - {(0, 0)} == newly_visible


def test_zoom_past_full_resolution_requests_nothing(viewer: Viewer) -> None:
    viewer.open("starfield.fits", "C=1024,768&Z=3")
    before = len(viewer.requests)
    tiles = viewer.drawn_tiles()
    viewer.page.mouse.move(*viewer.map_centre())
    viewer.page.mouse.wheel(0, -120)
    viewer.wait_hash("Z", "4")
    viewer.key_zoom("Equal", 5)  # "+" of Leaflet's keyboard zoom
    viewer.settle()
    viewer.page.wait_for_timeout(300)
    assert [url for url in viewer.requests[before:] if "JTL" in url] == []
    assert tiles
    scaled = viewer.page.evaluate(
        """() => [...document.querySelectorAll('.iip-tiles img')]
              .filter(i => i.getBoundingClientRect().width > 0)
              .map(i => i.getBoundingClientRect().width / i.naturalWidth)"""
    )
    assert scaled and all(abs(s - 4) < 1e-6 for s in scaled)


# -- controls -----------------------------------------------------------------------------


def _set(viewer: Viewer, selector: str, value: str) -> None:
    """Set a control as a person would, ending with its change event."""
    locator = viewer.page.locator(selector)
    kind = locator.evaluate("e => e.tagName + ':' + (e.type || '')")
    if kind.startswith("SELECT"):
        locator.select_option(value)
    elif kind == "INPUT:checkbox":
        locator.check()
    elif kind == "INPUT:number":
        locator.fill(value)
        locator.press("Tab")
    else:  # range and colour pickers: no typing there
        locator.evaluate(
            """(e, v) => { e.value = v;
                 e.dispatchEvent(new Event('input', {bubbles: true}));
                 e.dispatchEvent(new Event('change', {bubbles: true})); }""",
            value,
        )


CONTROLS = [
    ("starfield.fits", "#cmp", "jet", ("CMP", r"jet")),
    ("starfield.fits", "tr[data-channel='1'] .min", "1200", ("MINMAX", r"1:1200,[0-9.]+")),
    ("starfield.fits", "tr[data-channel='1'] .max", "3000", ("MINMAX", r"1:[0-9.]+,3000")),
    ("starfield.fits", "#gam", "1", ("GAM", r"1")),
    ("starfield.fits", "#inv", "", ("INV", r"1")),
    ("starfield.fits", "#brt", "20", ("BRT", r"20")),
    ("starfield.fits", "#cnt", "3", ("CNT", r"3")),
    ("starfield.fits", "#qlt", "20", ("QLT", r"20")),
    ("cube.fits", "tr[data-channel='1'] .color", "#ff0000", ("MIX", r"1:1,0,0")),
    ("cube.fits", "#mode", "2", ("CHAN", r"2")),
]


@pytest.mark.parametrize(("fif", "selector", "value", "expected"), CONTROLS)
def test_each_control_changes_the_tiles(
    viewer: Viewer, fif: str, selector: str, value: str, expected: tuple[str, str]
) -> None:
    viewer.open(fif, "C=400,400&Z=2" if fif == "cube.fits" else "C=1024,768&Z=2")
    name, pattern = expected
    before = {t["src"]: t for t in viewer.drawn_tiles()}
    tile = next(t for t in before.values() if t["natural"] == [256, 256])
    old_pixels = assert_drawn_as_served(viewer, tile)
    _set(viewer, selector, value)
    viewer.page.wait_for_function(
        """([name, pattern]) => {
             const imgs = [...document.querySelectorAll('.iip-tiles img')];
             return imgs.length && imgs.every(i => [...new URL(i.src).searchParams]
               .some(([n, v]) => n === name && new RegExp('^' + pattern + '$').test(v)));
           }""",
        arg=[name, pattern],
    )
    viewer.settle()
    after = viewer.drawn_tiles()
    assert not {t["src"] for t in after} & set(before)
    for url in [t["src"] for t in after] + [viewer.page.get_attribute("#download", "href")]:
        assert any(n == name and re.fullmatch(pattern, v) for n, v in params_of(url)), url
    moved = next(t for t in after if (t["x"], t["y"]) == (tile["x"], tile["y"]))
    new_pixels = assert_drawn_as_served(viewer, moved)
    assert np.abs(new_pixels - old_pixels).mean() > 0.5
    # The setting is in the URL too, under its IIP name.
    assert name in viewer.hash_view()


# -- readouts and profile -----------------------------------------------------------------


def test_value_under_the_cursor_is_vals(viewer: Viewer, server: Gunicorn) -> None:
    viewer.open("cube.fits", "C=100,200&Z=4")  # 4 screen pixels per image pixel
    cx, cy = viewer.map_centre()
    for dx, dy, x, y in ((0, 0, 100, 200), (4, 0, 101, 200), (0, -4, 100, 201)):
        viewer.page.mouse.move(cx + dx, cy + dy)
        viewer.page.wait_for_function(
            "([x, y]) => { const r = document.getElementById('readout');"
            " return r.dataset.x === String(x) && r.dataset.y === String(y); }",
            arg=[x, y],
        )
        assert viewer.page.inner_text("#readout-xy") == f"x {x} y {y}"
        shown = viewer.page.inner_text("#readout-values").removeprefix("= ").split(", ")
        val = fetch_json(f"{server.url}/iip?FIF=cube.fits&VAL={x},{y}&CHAN=1&CHAN=2&CHAN=3")
        assert len(shown) == 3
        np.testing.assert_allclose([float(v) for v in shown], val["values"], rtol=1e-6)
    # Only the pixels under the cursor were asked for (a browser may repeat a
    # mousemove on the same spot, hence a set).
    asked = {dict(params_of(u))["VAL"] for u in viewer.requests if "VAL=" in u}
    assert asked == {"100,200", "101,200", "100,201"}


def test_value_requests_one_at_a_time(viewer: Viewer) -> None:
    viewer.open("starfield.fits", "C=1024,768&Z=3")
    flight = {"now": 0, "most": 0, "sent": 0}

    def sent(request: Any) -> None:
        if "VAL=" in request.url:
            flight["now"] += 1
            flight["sent"] += 1
            flight["most"] = max(flight["most"], flight["now"])

    def done(request: Any) -> None:
        if "VAL=" in request.url:
            flight["now"] -= 1

    viewer.page.on("request", sent)
    viewer.page.on("requestfinished", done)
    viewer.page.on("requestfailed", done)
    cx, cy = viewer.map_centre()
    viewer.page.mouse.move(cx - 200, cy)
    viewer.page.mouse.move(cx + 200, cy, steps=100)  # 100 pixels in a rush
    # The last answer is for the last position.
    viewer.page.wait_for_function(
        """() => { const r = document.getElementById('readout');
                   return r.dataset.x && document.getElementById('readout-xy').textContent
                     === `x ${r.dataset.x} y ${r.dataset.y}`; }"""
    )
    assert abs(int(viewer.page.get_attribute("#readout", "data-x")) - 1224) <= 1
    assert flight["most"] == 1
    assert 1 < flight["sent"] < 50, flight


def test_profile_plot_has_pfls_points(viewer: Viewer, server: Gunicorn) -> None:
    viewer.open("cube.fits", "C=100,200&Z=4")
    cx, cy = viewer.map_centre()
    viewer.page.click("#profile-tool")
    viewer.page.mouse.click(cx - 40, cy - 20)  # FITS (90, 205)
    viewer.page.mouse.click(cx + 40, cy + 20)  # FITS (110, 195)
    viewer.page.wait_for_selector("#profile-plot svg path.channel")
    assert viewer.page.get_attribute("#profile-plot", "data-pfl") == "90,205:110,195"
    answer = fetch_json(f"{server.url}/iip?FIF=cube.fits&PFL=90,205:110,195")
    points = answer["profile"]
    values = [v for p in points for v in p["values"] if v is not None]
    ymin, ymax = min(values), max(values)
    plot = viewer.page.locator("#profile-plot svg")
    assert float(plot.get_attribute("data-ymin")) == pytest.approx(ymin)
    assert float(plot.get_attribute("data-ymax")) == pytest.approx(ymax)
    frame = {
        k: float(viewer.page.get_attribute("#profile-plot svg rect.frame", k))
        for k in ("x", "y", "width", "height")
    }
    paths = viewer.page.eval_on_selector_all(
        "#profile-plot svg path.channel", "ps => ps.map(p => p.getAttribute('d'))"
    )
    assert len(paths) == 3
    for channel, d in enumerate(paths):
        drawn = np.array([float(v) for v in re.findall(r"-?[0-9.]+", d)]).reshape(-1, 2)
        expected = np.array(
            [
                (
                    frame["x"] + i / (len(points) - 1) * frame["width"],
                    frame["y"]
                    + (ymax - p["values"][channel]) / (ymax - ymin) * frame["height"],
                )
                for i, p in enumerate(points)
            ]
        )
        np.testing.assert_allclose(drawn, expected, atol=0.006)


# -- state in the URL ---------------------------------------------------------------------


def test_reload_and_history_restore_the_view(viewer: Viewer) -> None:
    viewer.open("cube.fits", "C=300,700&Z=2")
    first = viewer.page.url
    _set(viewer, "#mode", "3")
    _set(viewer, "#cmp", "hot")
    viewer.wait_hash("CMP", "hot")
    viewer.key_zoom("Equal", 3)
    viewer.settle()
    url = viewer.page.url
    srcs = sorted(t["src"] for t in viewer.drawn_tiles())
    viewer.page.reload()
    viewer.page.wait_for_selector("#viewer[data-ready=true]")
    viewer.settle()
    assert viewer.page.url == url
    assert sorted(t["src"] for t in viewer.drawn_tiles()) == srcs
    assert viewer.page.input_value("#cmp") == "hot"
    assert viewer.page.input_value("#mode") == "3"
    # Back through the zoom, the colormap and the mode to the first view.
    for _ in range(3):
        viewer.page.go_back()
    viewer.page.wait_for_function("u => location.href === u", arg=first)
    viewer.settle()
    assert viewer.page.input_value("#mode") == "0"
    assert all(("CHAN", "3") not in params_of(t["src"]) for t in viewer.drawn_tiles())
    viewer.page.go_forward()
    viewer.page.wait_for_function("() => document.getElementById('mode').value === '3'")


# -- mosaics, information, downloads -------------------------------------------------------


def test_ccd_outlines_and_names(viewer: Viewer, server: Gunicorn) -> None:
    info = info_of(server, "mosaic.fits")
    viewer.open("mosaic.fits")
    assert viewer.page.locator(".ccd").count() == 0
    viewer.page.click("#show-ccds")
    names = viewer.page.locator(".ccd-name").all_inner_texts()
    assert sorted(names) == sorted(image["header"]["EXTNAME"] for image in info["images"])
    assert viewer.page.locator("path.ccd").count() == len(info["images"])
    viewer.page.click("#show-ccds")
    assert viewer.page.locator(".ccd").count() == 0


def test_information_and_header(viewer: Viewer, server: Gunicorn) -> None:
    info = info_of(server, "cube.fits")
    viewer.open("cube.fits")
    assert viewer.page.inner_text("dd[data-field=size]") == "1024 × 1024 pixels"
    assert viewer.page.inner_text("dd[data-field=channels]") == "3"
    assert viewer.page.inner_text("dd[data-field=object]") == info["object_name"]
    filters = [info["header"][f"FILTER{c}"] for c in (1, 2, 3)]
    assert viewer.page.inner_text("dd[data-field=filter]") == ", ".join(filters)
    assert viewer.page.is_hidden("#header")
    viewer.page.click("#show-header")
    text = viewer.page.inner_text("#header-text")
    assert f"NAXIS1  = {info['header']['NAXIS1']}" in text.splitlines()


def test_download_is_the_view_as_jpeg(viewer: Viewer, server: Gunicorn) -> None:
    viewer.open("starfield.fits", "C=1024,768&Z=3")
    box = viewer.map_box()
    href = viewer.page.get_attribute("#download", "href")
    params = dict(params_of(href))
    (x1, y1), (x2, y2) = (map(int, c.split(",")) for c in params["RGN"].split(":"))
    assert params["BIN"] == "1"
    # The region is the view, in displayed pixels (top-left origin, inclusive).
    assert (
        abs((x2 - x1 + 1) - box["width"]) <= 2 and abs((y2 - y1 + 1) - box["height"]) <= 2
    )
    assert abs((x1 + x2) / 2 - 1024) <= 1 and abs((y1 + y2) / 2 - (1536 - 768 + 1)) <= 1
    status, body = fetch(f"{server.url}{href}" if href.startswith("/") else href)
    assert status == 200
    assert Image.open(io.BytesIO(body)).size == (x2 - x1 + 1, y2 - y1 + 1)
    # Zoomed out on the whole image: still the server's limit, binned if need be.
    viewer.button_zoom("out", 2)
    viewer.button_zoom("out", 1)
    viewer.page.wait_for_function(
        "() => new URL(document.getElementById('download').href).searchParams.get('RGN')"
        " === '1,1:2048,1536'"
    )


def test_sky_coordinates_appear_when_val_carries_them(viewer: Viewer) -> None:
    """VAL does not send ra/dec yet; the readout shows them as soon as it does."""

    def with_sky(route: Any) -> None:
        answer = route.fetch().json()
        route.fulfill(json={**answer, "ra": 53.123456789, "dec": -27.5})

    viewer.open("starfield.fits", "C=100,200&Z=5")
    cx, cy = viewer.map_centre()
    viewer.page.mouse.move(cx, cy)
    viewer.page.wait_for_function("() => document.getElementById('readout').dataset.x")
    assert viewer.page.inner_text("#readout-sky") == ""
    viewer.page.route(re.compile(r".*[?&]VAL=.*"), with_sky)
    viewer.page.mouse.move(cx + 8, cy)
    viewer.page.wait_for_function(
        "() => document.getElementById('readout-sky').textContent !== ''"
    )
    assert viewer.page.inner_text("#readout-sky") == "α 53.123457° δ -27.500000°"


def test_reset_puts_back_the_default_cuts(viewer: Viewer) -> None:
    viewer.open("cube.fits", "C=400,400&Z=2&MINMAX=2:1000,2000")
    row = "tr[data-channel='2']"
    assert viewer.page.input_value(f"{row} .min") == "1000"
    assert any(
        ("MINMAX", "2:1000,2000") == p for p in params_of(viewer.drawn_tiles()[0]["src"])
    )
    viewer.page.click(f"{row} .reset")
    viewer.wait_hash("Z", "2")
    viewer.page.wait_for_function("() => !location.hash.includes('MINMAX')")
    viewer.settle()
    info = info_of_url(viewer.base, "cube.fits")
    low, high = info["images"][0]["min_max"][1]
    minmax = [v for n, v in params_of(viewer.drawn_tiles()[0]["src"]) if n == "MINMAX"]
    # Colour mode sends every channel's cuts: channel 2's are the defaults again.
    assert f"2:{low!r},{high!r}" in minmax or f"2:{low},{high}" in minmax, minmax


def test_download_is_binned_to_the_region_limit(browser: Any, library: Library) -> None:
    app = make_app(library, max_region_tiles=4)
    with live_server(app) as url:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.goto(f"{url}{PREFIX}/viewer?FIF=starfield.fits#C=1024,768&Z=3")
        page.wait_for_selector("#viewer[data-ready=true]")
        href = page.get_attribute("#download", "href")
        context.close()
        params = dict(params_of(href))
        (x1, y1), (x2, y2) = (map(int, c.split(",")) for c in params["RGN"].split(":"))

        def tiles(binning: int) -> int:
            """Tiles of 256 the server reads for the region at that binning."""
            level = binning.bit_length() - 1
            cols = ((x2 - 1) >> level) // 256 - ((x1 - 1) >> level) // 256 + 1
            rows = ((y2 - 1) >> level) // 256 - ((y1 - 1) >> level) // 256 + 1
            return cols * rows

        binning = int(params["BIN"])
        assert binning > 1 and tiles(binning) <= 4 < tiles(binning // 2)
        status, body = fetch(f"{url}{href}")
        assert status == 200
        width, height = -(-(x2 - x1 + 1) // binning), -(-(y2 - y1 + 1) // binning)
        assert Image.open(io.BytesIO(body)).size == (width, height)
        finer = href.replace(f"BIN={binning}", f"BIN={binning // 2}")
        assert fetch(f"{url}{finer}")[0] == 400  # what the binning avoided


@pytest.mark.parametrize(
    ("fif", "status", "message"),
    [
        ("notfits.fits", 422, "not a readable FITS file"),
        ("mef.fits[7]", 422, "no HDU number 7"),
    ],
)
def test_an_image_that_cannot_be_shown_says_why(
    viewer: Viewer, fif: str, status: int, message: str
) -> None:
    viewer.page.goto(f"{viewer.base}/viewer?FIF={fif}")
    viewer.page.wait_for_selector("#error:not([hidden])")
    assert message in viewer.page.inner_text("#error")
    assert viewer.page.locator(".iip-tiles").count() == 0
    # The browser logs the failed INFO request itself; nothing else may complain.
    assert viewer.errors == [
        f"Failed to load resource: the server responded with a status of {status} "
        "(UNPROCESSABLE ENTITY)"
    ]
    viewer.errors.clear()


def test_touch_pans_and_pinches(browser: Any, server: Gunicorn) -> None:
    context = browser.new_context(viewport=VIEWPORT, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/viewer?FIF=starfield.fits#C=1024,768&Z=2")
        page.wait_for_selector("#viewer[data-ready=true]")
        cdp = context.new_cdp_session(page)

        def touch(kind: str, *points: tuple[float, float]) -> None:
            touch_points = [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]
            cdp.send(
                "Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points}
            )

        # One finger, 200 screen pixels to the left at zoom 2 (half scale): the view
        # moves 400 image pixels to the right.
        touch("touchStart", (490, 400))
        for step in range(1, 11):
            touch("touchMove", (490 - 20 * step, 400))
            page.wait_for_timeout(15)
        page.wait_for_timeout(150)  # no fling
        touch("touchEnd")
        # The hash is written once the move has settled (a busy machine may settle
        # more than once on the way).
        page.wait_for_function(
            """() => { const [x, y] = new URLSearchParams(location.hash.slice(1))
                         .get('C').split(',').map(Number);
                       return Math.abs(x - 1424) <= 2 && Math.abs(y - 768) <= 2; }"""
        )
        # Two fingers spreading apart: zoom in.
        touch("touchStart", (440, 400), (540, 400))
        for step in range(1, 11):
            touch("touchMove", (440 - 10 * step, 400), (540 + 10 * step, 400))
            page.wait_for_timeout(15)
        touch("touchEnd")
        page.wait_for_function(
            "() => Number(new URLSearchParams(location.hash.slice(1)).get('Z')) > 2"
        )
    finally:
        context.close()


def test_overview_shows_the_view_and_moves_it(viewer: Viewer) -> None:
    viewer.open("starfield.fits", "C=700,1000&Z=3")  # 2048 x 1536, full resolution
    box = viewer.map_box()
    image = viewer.page.locator("#overview-image").bounding_box()
    frame = viewer.page.locator("#overview-view").bounding_box()
    # The rectangle is the view (display pixels, y down) scaled onto the overview.
    left = (700 - 0.5 - box["width"] / 2) / 2048
    top = (1536 - 1000 + 0.5 - box["height"] / 2) / 1536
    assert frame["x"] - image["x"] == pytest.approx(left * image["width"], abs=1.5)
    assert frame["y"] - image["y"] == pytest.approx(top * image["height"], abs=1.5)
    assert frame["width"] == pytest.approx(box["width"] / 2048 * image["width"], abs=1.5)
    assert frame["height"] == pytest.approx(box["height"] / 1536 * image["height"], abs=1.5)
    # A click on the overview centres the view there: here, the image's centre.
    viewer.page.mouse.click(
        image["x"] + image["width"] / 2, image["y"] + image["height"] / 2
    )
    viewer.wait_centre(1024.5, 768.5, 8)
