"""The viewer page and its files, through the Flask test client (no browser).

What the page does in a browser is in ``test_web_viewer_browser.py``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_fitstiles import FitsTiles
from flask_fitstiles.viewer import CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.web.webtools import PREFIX, Library, make_app

# The page's own JavaScript and CSS (Leaflet excluded) must stay small.
OWN_WEIGHT_LIMIT = 100_000


class _Page(HTMLParser):
    """Collect the URLs a page loads, its inline scripts and styles, and <main>'s data."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.main: dict[str, str | None] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("script", "link") and (attributes.get("src") or attributes.get("href")):
            self.urls.append(str(attributes.get("src") or attributes.get("href")))
        if tag == "script" and not attributes.get("src"):
            self.inline.append("script")
        if (
            tag == "style"
            or "style" in attributes
            or any(a.startswith("on") for a in attributes)
        ):
            self.inline.append(tag)
        if tag == "main":
            self.main = attributes


def get_file(client: FlaskClient, url: str) -> TestResponse:
    """GET a static file and close the answer (it holds the open file)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_page_loads_only_files_of_its_mount(client: FlaskClient, library: Library) -> None:
    response = client.get(f"{PREFIX}/viewer?FIF=starfield.fits")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    page = parse(response.get_data(as_text=True))
    assert page.inline == []
    assert page.main["data-iip"] == f"{PREFIX}/iip"
    assert page.main["data-fif"] == "starfield.fits"
    assert page.main["data-max-region-tiles"] == "1024"
    assert {url.split("?")[0] for url in page.urls} == {
        f"{PREFIX}/viewer/leaflet/leaflet.css",
        f"{PREFIX}/viewer/leaflet/leaflet.js",
        *(
            f"{PREFIX}/viewer/static/{name}"
            for name in (
                "favicon.svg",
                "viewer.css",
                "viewer.js",
                "iip.js",
                "state.js",
                "panel.js",
                "tools.js",
            )
        ),
    }
    for url in page.urls:
        loaded = get_file(client, url)
        assert loaded.status_code == 200, url
        assert loaded.headers["X-Content-Type-Options"] == "nosniff"
        if url.endswith(".js"):
            assert loaded.mimetype in ("text/javascript", "application/javascript"), url


def test_every_module_import_is_served(client: FlaskClient) -> None:
    """The ES modules import each other by relative URL: each must be a file here."""
    for path in STATIC_DIR.glob("*.js"):
        for name in re.findall(r'^import .* from "\./([^"]+)";', path.read_text(), re.M):
            assert (STATIC_DIR / name).is_file(), (path.name, name)
            assert get_file(client, f"{PREFIX}/viewer/static/{name}").status_code == 200


def test_leaflet_comes_from_the_installed_package(client: FlaskClient) -> None:
    from xstatic.pkg import leaflet

    served = get_file(client, f"{PREFIX}/viewer/leaflet/leaflet.js").get_data()
    assert served == (Path(leaflet.BASE_DIR) / "leaflet.js").read_bytes()
    png = get_file(client, f"{PREFIX}/viewer/leaflet/images/layers.png")
    assert png.mimetype == "image/png"


def test_image_names_as_in_iip(client: FlaskClient) -> None:
    """[N] and sub-folders are accepted; the name reaches the page escaped."""
    response = client.get(f"{PREFIX}/viewer?FIF=mef.fits[2]")
    assert response.status_code == 200
    assert parse(response.get_data(as_text=True)).main["data-fif"] == "mef.fits[2]"
    response = client.get(f"{PREFIX}/viewer?fif=sub/deep.fits")
    assert parse(response.get_data(as_text=True)).main["data-fif"] == "sub/deep.fits"


@pytest.mark.parametrize(
    "fif",
    [
        "nope.fits",
        "../outside/outside.fits",
        "/etc/passwd",
        "link_out.fits",
        ".hidden.fits",
        "notes.txt",
        "a.fits[x]",
        "",
        '"><script>alert(1)</script>.fits',
    ],
)
def test_bad_names_get_the_iip_errors(
    client: FlaskClient, library: Library, fif: str
) -> None:
    query = f"FIF={quote(fif)}"
    page = client.get(f"{PREFIX}/viewer?{query}")
    info = client.get(f"{PREFIX}/iip?{query}&INFO")
    assert page.status_code == info.status_code
    assert page.status_code in (400, 404)
    assert page.mimetype == "application/json"
    assert page.get_json() == info.get_json()
    body = page.get_data(as_text=True)
    assert str(library.root) not in body


def test_missing_fif_is_a_400(client: FlaskClient) -> None:
    response = client.get(f"{PREFIX}/viewer")
    assert response.status_code == 400
    assert response.get_json()["detail"][0]["loc"] == ["query", "FIF"]


def json_404s(client: FlaskClient, library: Library, *urls: str) -> list[str]:
    """GET each URL, check it is a JSON 404 that shows no path; return the messages."""
    messages = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "application/json"
        assert str(library.root) not in response.get_data(as_text=True)
        messages.append(response.get_json()["detail"][0]["msg"])
    return messages


def test_unknown_static_file_is_a_json_404(client: FlaskClient, library: Library) -> None:
    json_404s(
        client,
        library,
        f"{PREFIX}/viewer/static/nope.js",
        f"{PREFIX}/viewer/static/../viewer.py",
        f"{PREFIX}/viewer/static/%2e%2e/viewer.py",
        f"{PREFIX}/viewer/leaflet/../../__init__.py",
    )
    assert client.post(f"{PREFIX}/viewer/static/viewer.js").status_code in (404, 405)


@pytest.mark.parametrize("value", [False, "0", "off"])
def test_setting_turns_the_viewer_off(library: Library, value: object) -> None:
    client = make_app(library, viewer=value).test_client()
    messages = json_404s(
        client,
        library,
        f"{PREFIX}/viewer?FIF=starfield.fits",
        f"{PREFIX}/viewer/static/viewer.js",
        f"{PREFIX}/viewer/leaflet/leaflet.js",
    )
    assert all("FITSTILES_VIEWER" in message for message in messages)
    assert client.get(f"{PREFIX}/iip?FIF=starfield.fits&INFO").status_code == 200


def test_setting_is_validated(library: Library) -> None:
    app = Flask("viewer_setting")
    app.config["FITSTILES_VIEWER"] = "maybe"
    with pytest.raises(ValueError, match="FITSTILES_VIEWER must be true or false"):
        FitsTiles(app, data_dir=library.data, cache_dir=library.cache)


def test_two_mounts_and_a_script_root(library: Library) -> None:
    app = make_app(library)
    FitsTiles(app, name="second", url_prefix="/second", data_dir=library.data, viewer=False)
    FitsTiles(app, name="third", url_prefix="/", data_dir=library.data)
    client = app.test_client()
    first = parse(client.get(f"{PREFIX}/viewer?FIF=small.fits").get_data(as_text=True))
    assert first.main["data-iip"] == f"{PREFIX}/iip"
    assert client.get("/second/viewer?FIF=small.fits").status_code == 404
    third = parse(client.get("/viewer?FIF=small.fits").get_data(as_text=True))
    assert third.main["data-iip"] == "/iip"
    assert all(url.startswith("/viewer/") for url in third.urls)
    scripted = client.get(
        f"{PREFIX}/viewer?FIF=small.fits", base_url="http://localhost/site"
    )
    page = parse(scripted.get_data(as_text=True))
    assert page.main["data-iip"] == f"/site{PREFIX}/iip"
    assert all(url.startswith(f"/site{PREFIX}/viewer/") for url in page.urls)


def test_own_javascript_and_css_weigh_under_100_kb() -> None:
    own = [p for p in STATIC_DIR.iterdir() if p.suffix in (".js", ".css")]
    assert {p.suffix for p in own} == {".js", ".css"}
    total = sum(p.stat().st_size for p in own)
    assert total < OWN_WEIGHT_LIMIT, f"{total} bytes"
