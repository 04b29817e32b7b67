"""Headless Chromium for the browser tests, the benchmarks and the README's screenshot.

Debian's ``chromium`` package, driven by Playwright; Playwright's own browser
download is never used (``.ci/run`` installs the Debian package when missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Any) -> Any:
    """Start headless Chromium with a Playwright instance; return the browser."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
