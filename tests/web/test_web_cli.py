"""``flask fitstiles list`` and ``flask fitstiles prepare``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from flask import Flask

from flask_fitstiles import FitsTiles
from tests.web.webtools import Library, make_app


def test_list(library: Library) -> None:
    result = make_app(library).test_cli_runner().invoke(args=["fitstiles", "list"])
    assert result.exit_code == 0, result.output
    assert "fitstiles (/fits)" in result.output
    assert "sub/deep.fits" in result.output and "link_out" not in result.output


def test_prepare_named_images(fresh_library: Library) -> None:
    app = make_app(fresh_library)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["fitstiles", "prepare", "small.fits", "mef.fits[2]"])
    assert result.exit_code == 0, result.output
    assert "small.fits: prepared in" in result.output
    assert "mef.fits[2]: prepared in" in result.output
    assert "(50 x 40, 1 channel(s)" in result.output
    result = runner.invoke(args=["fitstiles", "prepare", "small.fits"])
    assert "small.fits: already prepared" in result.output
    listing = runner.invoke(args=["fitstiles", "list"]).output
    assert "small.fits  " in listing and "prepared" in listing


def test_prepare_reports_failures(fresh_library: Library) -> None:
    runner = make_app(fresh_library).test_cli_runner()
    result = runner.invoke(
        args=["fitstiles", "prepare", "nope.fits", "notfits.fits", "../x"]
    )
    assert result.exit_code == 1
    assert "nope.fits: no image" in result.output
    assert "notfits.fits:" in result.output
    assert str(fresh_library.root) not in result.output


def test_prepare_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.fits", "b.fits"):
        fits.PrimaryHDU(np.ones((30, 40), dtype=np.float32)).writeto(data / name)
    app = Flask("cli")
    FitsTiles(app, data_dir=data, cache_dir=tmp_path / "cache")
    result = app.test_cli_runner().invoke(args=["fitstiles", "prepare"])
    assert result.exit_code == 0, result.output
    assert result.output.count("prepared in") == 2


def test_several_mounts(library: Library, tmp_path: Path) -> None:
    app = make_app(library)
    FitsTiles(
        app, name="other", url_prefix="/other", data_dir=library.data, cache_dir=tmp_path
    )
    runner = app.test_cli_runner()
    result = runner.invoke(args=["fitstiles", "prepare", "small.fits"])
    assert result.exit_code != 0 and "--mount" in result.output
    result = runner.invoke(args=["fitstiles", "prepare", "--mount", "other", "small.fits"])
    assert result.exit_code == 0 and "prepared in" in result.output
    result = runner.invoke(args=["fitstiles", "list", "-m", "nope"])
    assert result.exit_code != 0 and "fitstiles, other" in result.output


def test_prepare_warns_about_the_disk_budget(fresh_library: Library) -> None:
    app = make_app(fresh_library, max_cached_images=1)
    result = app.test_cli_runner().invoke(
        args=["fitstiles", "prepare", "small.fits", "scaled.fits"]
    )
    assert result.exit_code == 0, result.output
    assert "keeps at most 1 prepared images" in result.output
    assert result.output.count("prepared in") == 2
    pickles = [name for name in os.listdir(fresh_library.cache) if name.endswith(".pkl")]
    assert len(pickles) == 1 and pickles[0].startswith("scaled.fits-")
    result = app.test_cli_runner().invoke(args=["fitstiles", "prepare", "small.fits"])
    assert "keeps at most" not in result.output
