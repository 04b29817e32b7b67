"""Take the README's screenshot of the viewer (docs/viewer.png) in headless Chromium.

Run from the repository root: ``.venv/bin/python docs/screenshot.py``. It serves the
example app's sample images with werkzeug on 127.0.0.1 and needs /usr/bin/chromium.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from flask import Flask
from PIL import Image
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from example_app import ensure_samples  # noqa: E402
from flask_fitstiles import FitsTiles  # noqa: E402
from tests.web.browsers import launch  # noqa: E402
from tests.web.servers import live_server  # noqa: E402


def main() -> None:
    """Serve the samples, open the cube with a profile drawn, save the screenshot."""
    data = ensure_samples(REPO / "example_app" / "data")
    with tempfile.TemporaryDirectory() as cache:
        app = Flask("screenshot")
        FitsTiles(app, url_prefix="", data_dir=data, cache_dir=cache)
        with live_server(app) as url, sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(f"{url}/viewer?FIF=cube.fits#C=560,470&Z=2")
            page.wait_for_selector("#viewer[data-ready=true]")
            page.click("#profile-tool")
            page.mouse.click(300, 420)
            page.mouse.click(620, 300)
            page.wait_for_selector("#profile-plot svg")
            page.mouse.move(640, 520)
            page.wait_for_function(
                "() => document.getElementById('map').dataset.tilesPending === '0'"
                " && document.getElementById('readout').dataset.x"
            )
            page.wait_for_timeout(300)
            png = page.screenshot()
            browser.close()
    # 256 colours halve the file and still show the image well.
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(REPO / "docs" / "viewer.png", optimize=True)


if __name__ == "__main__":
    main()
