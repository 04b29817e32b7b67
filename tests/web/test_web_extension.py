"""The FitsTiles extension: settings, mounts, the init_app pattern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from flask import Flask

from flask_fitstiles import FitsTiles
from flask_fitstiles.extension import get_state
from tests.web.webtools import Library, make_app


def write_folder(folder: Path, names: list[str], value: float) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        fits.PrimaryHDU(np.full((40, 60), value, dtype=np.float32)).writeto(folder / name)
    return folder


def test_two_mounts_serve_their_own_folders(tmp_path: Path) -> None:
    first = write_folder(tmp_path / "survey", ["a.fits", "both.fits"], 1.0)
    second = write_folder(tmp_path / "archive", ["b.fits", "both.fits"], 2.0)
    app = Flask("two")
    FitsTiles(
        app, url_prefix="/survey", name="survey", data_dir=first, cache_dir=tmp_path / "c"
    )
    FitsTiles(
        app,
        url_prefix="/archive",
        name="archive",
        data_dir=second,
        cache_dir=tmp_path / "c",
    )
    client = app.test_client()

    def names(prefix: str) -> list[str]:
        return [image["name"] for image in client.get(f"{prefix}/images").get_json()]

    assert names("/survey") == ["a.fits", "both.fits"]
    assert names("/archive") == ["b.fits", "both.fits"]
    assert client.get("/survey/iip?FIF=a.fits&INFO").status_code == 200
    assert client.get("/survey/iip?FIF=b.fits&INFO").status_code == 404
    assert client.get("/archive/iip?FIF=b.fits&INFO").status_code == 200
    assert client.get("/archive/iip?FIF=a.fits&INFO").status_code == 404
    # Same name, different folders, different pixels.
    assert client.get("/survey/iip?FIF=both.fits&VAL=1,1").get_json()["values"] == [1.0]
    assert client.get("/archive/iip?FIF=both.fits&VAL=1,1").get_json()["values"] == [2.0]
    assert set(app.extensions["fitstiles"]) == {"survey", "archive"}
    survey, archive = get_state("survey", app), get_state("archive", app)
    assert survey.registry is not archive.registry
    assert survey.settings.data_dir == first


def test_registering_twice_says_what_to_do(library: Library) -> None:
    app = make_app(library)
    with pytest.raises(RuntimeError, match="already registered.*name="):
        FitsTiles(app, url_prefix="/other", data_dir=library.data)
    with pytest.raises(RuntimeError, match="another url_prefix"):
        FitsTiles(app, url_prefix="/fits/", name="second", data_dir=library.data)


def test_init_app_pattern(library: Library) -> None:
    ext = FitsTiles(data_dir=library.data, cache_dir=library.cache)
    apps = [Flask("one"), Flask("two")]
    for app in apps:
        ext.init_app(app)
    states = [ext.get_state(app) for app in apps]
    assert states[0].registry is not states[1].registry
    assert states[0].url_prefix == "/fitstiles"  # the default mount point
    client = apps[1].test_client()
    assert client.get("/fitstiles/iip?FIF=small.fits&INFO").status_code == 200
    with apps[0].app_context():
        assert ext.get_state() is states[0]


def test_state_helper_without_init_app() -> None:
    with pytest.raises(RuntimeError, match="did you call init_app"):
        FitsTiles().get_state(Flask("bare"))
    with pytest.raises(RuntimeError, match="did you call init_app"):
        get_state("fitstiles", Flask("bare"))


def test_settings_are_read_with_setdefault(library: Library) -> None:
    app = Flask("config")
    app.config["FITSTILES_DATA_DIR"] = str(library.data)
    app.config["FITSTILES_CACHE_DIR"] = str(library.cache)
    app.config["FITSTILES_QUALITY"] = 50
    FitsTiles(app, url_prefix="")
    assert app.config["FITSTILES_TILE_SIZE"] == 256
    assert app.config["FITSTILES_GAMMA"] == 2.2
    assert app.config["FITSTILES_MAX_OPEN_IMAGES"] == 32
    info = app.test_client().get("/iip?FIF=small.fits&INFO").get_json()
    assert info["quality"] == 50


def test_options_override_the_config_for_their_mount(
    library: Library, tmp_path: Path
) -> None:
    app = Flask("override")
    app.config.update(FITSTILES_DATA_DIR=library.data, FITSTILES_CACHE_DIR=tmp_path)
    app.config["FITSTILES_GAMMA"] = 1.0
    FitsTiles(app, url_prefix="/a", name="a")
    # Another tile size needs another cache folder (the prepared files differ).
    FitsTiles(
        app, url_prefix="/b", name="b", gamma=3.0, tile_size=128, cache_dir=tmp_path / "b"
    )
    client = app.test_client()
    a = client.get("/a/iip?FIF=starfield.fits&INFO").get_json()
    b = client.get("/b/iip?FIF=starfield.fits&INFO").get_json()
    assert (a["gamma"], a["tile_size"]) == (1.0, [256, 256])
    assert (b["gamma"], b["tile_size"]) == (3.0, [128, 128])
    assert b["tile_levels"] == a["tile_levels"] + 1
    assert app.config["FITSTILES_GAMMA"] == 1.0


def test_environment_fills_missing_config(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FITSTILES_DATA_DIR", str(library.data))
    monkeypatch.setenv("FITSTILES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FITSTILES_TILE_SIZE", "128,64")  # with its own cache folder
    monkeypatch.setenv("FITSTILES_CONTRAST", "2.5")
    monkeypatch.setenv("FITSTILES_SERVICE_TYPE", "visiomatic")
    app = Flask("env")
    app.config["FITSTILES_CONTRAST"] = 3.0  # the config wins over the environment
    FitsTiles(app)
    info = app.test_client().get("/fitstiles/iip?FIF=small.fits&INFO").get_json()
    assert info["tile_size"] == [128, 64]
    assert info["contrast"] == 3.0
    assert (tmp_path / "cache").is_dir()


def test_data_dir_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FITSTILES_DATA_DIR"):
        FitsTiles(Flask("none"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        FitsTiles(Flask("missing"), data_dir=tmp_path / "missing", cache_dir=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        FitsTiles(Flask("file"), data_dir=tmp_path / "file", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("option", "value", "key"),
    [
        ("tile_size", 0, "FITSTILES_TILE_SIZE"),
        ("tile_size", [256, 256, 3], "FITSTILES_TILE_SIZE"),
        ("tile_size", "big", "FITSTILES_TILE_SIZE"),
        ("quality", 101, "FITSTILES_QUALITY"),
        ("quality", 9.5, "FITSTILES_QUALITY"),
        ("gamma", "abc", "FITSTILES_GAMMA"),
        ("gamma", 0.0, "FITSTILES_GAMMA"),
        ("brightness", True, "FITSTILES_BRIGHTNESS"),
        ("contrast", float("nan"), "FITSTILES_CONTRAST"),
        ("tile_cache_bytes", -1, "FITSTILES_TILE_CACHE_BYTES"),
        ("max_open_images", 0, "FITSTILES_MAX_OPEN_IMAGES"),
        ("max_region_tiles", 0, "FITSTILES_MAX_REGION_TILES"),
        ("prepare_wait", -1, "FITSTILES_PREPARE_WAIT"),
        ("nthreads", -2, "FITSTILES_NTHREADS"),
        ("service_type", "", "FITSTILES_SERVICE_TYPE"),
        ("data_dir", 42, "FITSTILES_DATA_DIR"),
    ],
)
def test_invalid_settings(library: Library, option: str, value: Any, key: str) -> None:
    options: dict[str, Any] = {"data_dir": library.data, "cache_dir": library.cache}
    options[option] = value
    with pytest.raises(ValueError, match=key):
        FitsTiles(Flask("bad"), **options)


def test_invalid_config_value_names_its_key(library: Library) -> None:
    app = Flask("badconfig")
    app.config["FITSTILES_QUALITY"] = "excellent"
    with pytest.raises(ValueError, match=r"app.config\['FITSTILES_QUALITY'\]"):
        FitsTiles(app, data_dir=library.data, cache_dir=library.cache)


def test_unknown_option() -> None:
    with pytest.raises(TypeError, match="unknown FitsTiles option.*data_folder"):
        FitsTiles(data_folder="/tmp")


def test_site_keeps_its_own_routes(library: Library) -> None:
    app = Flask("site")

    @app.route("/")
    def home() -> str:
        return "my site"

    FitsTiles(app, data_dir=library.data, cache_dir=library.cache)
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "my site"
    assert client.get("/nope").status_code == 404  # the site's own 404 (HTML)
    assert client.get("/nope").mimetype == "text/html"
    assert client.get("/fitstiles/").status_code == 200
    assert client.get("/fitstiles/iip?FIF=small.fits&INFO").status_code == 200


def test_request_never_changes_shared_state(client: Any, app: Flask) -> None:
    registry = app.extensions["fitstiles"]["fitstiles"].registry
    before = client.get("/fits/iip?FIF=cube.fits&INFO").get_json()
    tiled = registry.open("cube.fits")
    cuts = tiled.minmax.copy()
    for query in (
        "JTL=0,0&MINMAX=1:0,10&MINMAX=2:5,6&MIX=1:1,0,0&BRT=10&CNT=5&GAM=1&QLT=10",
        "JTL=0,0&CHAN=2&MINMAX=2:0,1&CMP=jet&INV",
        "RGN=1,1:100,100&BIN=2&MINMAX=1:0,1",
    ):
        assert client.get(f"/fits/iip?FIF=cube.fits&{query}").status_code == 200
    assert np.array_equal(tiled.minmax, cuts)
    assert client.get("/fits/iip?FIF=cube.fits&INFO").get_json() == before


@pytest.mark.parametrize(
    ("app_secret", "option", "signing"),
    [
        ("app-secret", None, "app-secret"),  # the app's SECRET_KEY signs
        ("app-secret", "own-key", "own-key"),  # FITSTILES_SECRET_KEY wins
        (None, None, None),  # the random key of the cache folder
    ],
)
def test_pickle_signing_key(
    fresh_library: Library, app_secret: str | None, option: str | None, signing: str | None
) -> None:
    from flask_fitstiles.tiled import get_prepared

    app = Flask("signing")
    if app_secret is not None:
        app.config["SECRET_KEY"] = app_secret
    options: dict[str, Any] = {
        "data_dir": fresh_library.data,
        "cache_dir": fresh_library.cache,
    }
    if option is not None:
        options["secret_key"] = option
    FitsTiles(app, url_prefix="/t", **options)
    assert app.test_client().get("/t/iip?FIF=cube.fits&INFO").status_code == 200
    image = fresh_library.data / "cube.fits"
    assert get_prepared(image, fresh_library.cache, secret_key=signing) is not None
    for other in ("app-secret", "own-key"):
        if other != signing:
            assert get_prepared(image, fresh_library.cache, secret_key=other) is None
