"""First screen of the viewer on a prepared 8192^2 image, in headless Chromium.

"First screen" is the page, its INFO request and every tile of the first view
loaded: the moment the viewer sets its ``fitstiles:first-screen`` performance
mark, read with the Performance API (milliseconds from the navigation start).
Each run opens a fresh browser context (empty HTTP cache) and asks for a
slightly different brightness, so that the server renders every tile anew (its
tile cache cannot answer); the image itself is prepared beforehand, untimed.

Run: ``.venv/bin/python benchmarks/viewer_first_screen.py`` (needs /usr/bin/chromium).
Results go to ``bench-data/viewer_first_screen.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import STAR_8K, bench_dir  # noqa: E402
from make_images import MAKERS  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from example_app.samples import write_atomic  # noqa: E402
from tests.web.browsers import launch  # noqa: E402
from tests.web.servers import fetch, gunicorn  # noqa: E402

RUNS = int(os.environ.get("VIEWER_RUNS", "7"))
VIEWPORT = {"width": 1280, "height": 800}
TARGET_MS = 1000.0

FIGURES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const info = resources.find(r => r.name.includes('INFO'));
  const tiles = resources.filter(r => r.name.includes('JTL='));
  const mark = name => performance.getEntriesByName(name)[0].startTime;
  return {
    page: nav.responseEnd,
    dom_content_loaded: nav.domContentLoadedEventEnd,
    info: info.responseEnd,
    tiles: tiles.length,
    last_tile: Math.max(...tiles.map(t => t.responseEnd)),
    first_screen: mark('fitstiles:first-screen'),
  };
}"""


def image_folder() -> Path:
    """Folder holding star8k.fits (the benchmark image, written once)."""
    folder = bench_dir() / "viewer"
    folder.mkdir(exist_ok=True)
    path = folder / STAR_8K
    shared = bench_dir() / "images" / STAR_8K
    if not path.exists():
        if shared.exists():
            os.link(shared, path)
        else:
            print(f"writing {path} ...", flush=True)
            write_atomic(MAKERS[STAR_8K](), path)
    return folder


#: The first views measured: the whole image fitted in the window, and a link
#: straight to full resolution (more tiles, each rendered from level 0).
VIEWS = {"whole image": "", "full resolution": "C=4096,4096&Z=5&"}
KEYS = ["page", "dom_content_loaded", "info", "last_tile", "first_screen"]


def measure(browser: Any, url: str, view: str) -> list[dict[str, Any]]:
    runs = []
    for run in range(RUNS):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        # A new brightness each run: every tile is rendered anew by the server.
        page.goto(f"{url}/viewer?FIF={STAR_8K}#{view}BRT={0.01 * (run + 1):.2f}")
        page.wait_for_function(
            "() => performance.getEntriesByName('fitstiles:first-screen').length",
            timeout=30_000,
        )
        runs.append(page.evaluate(FIGURES))
        context.close()
    return runs


def report(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    print(
        f"\n{name}: {STAR_8K} (8192 x 8192, prepared), {RUNS} runs, "
        f"{VIEWPORT['width']} x {VIEWPORT['height']} window, ms from navigation start"
    )
    print(f"{'run':>6} " + " ".join(f"{k:>18}" for k in KEYS) + "  tiles")
    for i, figures in enumerate(runs, 1):
        row = " ".join(f"{figures[k]:>18.1f}" for k in KEYS)
        print(f"{i:>6} {row}  {figures['tiles']:>5}")
    median = {k: statistics.median(r[k] for r in runs) for k in KEYS}
    worst = max(r["first_screen"] for r in runs)
    print("median " + " ".join(f"{median[k]:>18.1f}" for k in KEYS))
    print(
        f"first screen: median {median['first_screen']:.0f} ms, worst {worst:.0f} ms "
        f"(target {TARGET_MS:.0f} ms)"
    )
    return {"runs": runs, "median": median, "worst": worst}


def main() -> None:
    data = image_folder()
    cache = bench_dir() / "viewer-cache"
    cache.mkdir(exist_ok=True)
    log = bench_dir() / "viewer_first_screen.log"
    results: dict[str, Any] = {}
    with gunicorn(data, cache, log, workers=2, threads=4) as server:
        started = time.perf_counter()
        status, _ = fetch(f"{server.url}/iip?FIF={STAR_8K}&INFO", timeout=600)
        assert status == 200
        print(f"image ready (prepared or loaded) in {time.perf_counter() - started:.1f} s")
        with sync_playwright() as playwright:
            browser = launch(playwright)
            # One untimed page first: the browser's own start-up is not the viewer's.
            measure_once = browser.new_page()
            measure_once.goto(f"{server.url}/viewer?FIF={STAR_8K}")
            measure_once.close()
            for name, view in VIEWS.items():
                results[name] = report(name, measure(browser, server.url, view))
            browser.close()
    out = bench_dir() / "viewer_first_screen.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
