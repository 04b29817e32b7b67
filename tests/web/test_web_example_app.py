"""The example app: samples written once, served at the site root."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from example_app import create_app, ensure_samples

SAMPLE_NAMES = ["cube.fits", "mosaic.fits", "starfield.fits"]


def test_example_app_serves_the_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FITSTILES_CACHE_DIR", str(tmp_path / "cache"))
    app = create_app(samples_dir=tmp_path / "samples")
    client = app.test_client()
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.fits")) == SAMPLE_NAMES
    page = client.get("/").get_data(as_text=True)
    for name in SAMPLE_NAMES:
        assert f"/iip?FIF={name}&amp;INFO" in page
    images = client.get("/images").get_json()
    assert [image["name"] for image in images] == SAMPLE_NAMES
    info = client.get("/iip?FIF=cube.fits&INFO").get_json()
    assert info["channels"] == 3
    tile = client.get("/iip?FIF=mosaic.fits&JTL=0,0")
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg"


def test_example_app_uses_the_configured_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "mine"
    data.mkdir()
    monkeypatch.setenv("FITSTILES_DATA_DIR", str(data))
    monkeypatch.setenv("FITSTILES_CACHE_DIR", str(tmp_path / "cache"))
    app = create_app(samples_dir=tmp_path / "samples")
    assert not (tmp_path / "samples").exists()
    assert app.test_client().get("/images").get_json() == []


def test_samples_are_written_once(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    errors: list[BaseException] = []

    def write() -> None:
        try:
            ensure_samples(folder)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.fits")}
    assert sorted(stamps) == SAMPLE_NAMES
    ensure_samples(folder)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.fits")} == stamps
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
