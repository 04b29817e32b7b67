"""The OpenAPI document at <prefix>/openapi.json, and schemathesis against a live server.

The live run generates requests from the document itself, schema-valid ones
(positive; some with FIF set to a real image so that tiles, regions, values and
profiles are rendered) and schema-violating ones (negative), sends them to a
werkzeug server on 127.0.0.1, and checks every answer: never a 5xx, a documented
status and content type, a body that matches the documented schema, and a 4xx
for every schema-violating request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flask_fitstiles import __version__
from flask_fitstiles.iip import _PARAMS
from tests.web.servers import live_server
from tests.web.webtools import PREFIX, Library, make_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
IMAGES = ["starfield.fits", "cube.fits", "mosaic.fits", "small.fits", "mef.fits[2]"]
IMAGES += ["notfits.fits", "odd.fits"]


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return dict(response.get_json())


def validator(document: dict[str, Any], name: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def test_document_describes_the_endpoints(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == __version__
    assert document["servers"] == [{"url": PREFIX}]
    assert set(document["paths"]) == {
        "/iip",
        "/images",
        "/",
        "/openapi.json",
        "/stats",
        "/viewer",
    }
    iip = document["paths"]["/iip"]["get"]
    names = {parameter["name"] for parameter in iip["parameters"]}
    assert names == {param.name for param in _PARAMS.values()}
    assert all(parameter["in"] == "query" for parameter in iip["parameters"])
    ok = iip["responses"]["200"]["content"]
    assert set(ok) == {"image/jpeg", "application/json", "text/plain", "text/html"}
    for status in ("400", "404", "422", "503"):
        content = iip["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorModel"}
    assert "Retry-After" in iip["responses"]["503"]["headers"]


def test_document_follows_the_mount(library: Library) -> None:
    app = make_app(library, stats=False, viewer=False)
    from flask_fitstiles import FitsTiles

    FitsTiles(app, name="other", url_prefix="/", data_dir=library.data)
    client = app.test_client()
    first = client.get(f"{PREFIX}/openapi.json").get_json()
    assert first["servers"] == [{"url": PREFIX}] and "/stats" not in first["paths"]
    assert "/viewer" not in first["paths"]
    assert client.get(f"{PREFIX}/stats").status_code == 404
    second = client.get("/openapi.json").get_json()
    assert second["servers"] == [{"url": "/"}] and "/stats" in second["paths"]
    assert "/viewer" in second["paths"]
    scripted = client.get(f"{PREFIX}/openapi.json", base_url="http://localhost/site")
    assert scripted.get_json()["servers"] == [{"url": "/site" + PREFIX}]


@pytest.mark.parametrize(
    ("query", "model"),
    [
        ("FIF=cube.fits&INFO", "TiledModel"),
        ("FIF=mosaic.fits&INFO", "TiledModel"),
        ("FIF=small.fits&VAL=21,11&CHAN=1&CHAN=5", "PixelValueModel"),
        ("FIF=cube.fits&PFL=1,1:30,9", "ProfileModel"),
        ("FIF=nope.fits&INFO", "ErrorModel"),
        ("FIF=small.fits&JTL=x", "ErrorModel"),
        ("FIF=notfits.fits&INFO", "ErrorModel"),
    ],
)
def test_answers_match_their_schemas(
    client: FlaskClient, document: dict[str, Any], query: str, model: str
) -> None:
    body = client.get(f"{PREFIX}/iip?{query}").get_json()
    validator(document, model).validate(body)
    for other in {"TiledModel", "PixelValueModel", "ProfileModel", "ErrorModel"} - {model}:
        assert not validator(document, other).is_valid(body)


def test_listing_and_stats_match_their_schemas(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    client.get(f"{PREFIX}/iip?FIF=small.fits&JTL=0,0")
    images = client.get(f"{PREFIX}/images").get_json()
    assert images
    for image in images:
        validator(document, "ImageEntryModel").validate(image)
    stats = client.get(f"{PREFIX}/stats").get_json()
    validator(document, "StatsModel").validate(stats)
    assert stats["tile_cache"]["entries"] >= 1
    assert any(image["name"] == "small.fits" for image in stats["open_images"])


# -- schemathesis against a live server ----------------------------------------------------


@pytest.fixture
def live_url(library: Library) -> Iterator[str]:
    with live_server(make_app(library)) as url:
        yield url


def with_real_image(case: Case, name: str) -> Case:
    if case.path == "/iip":
        case.query = {**(case.query or {}), "FIF": name}
    return case


@pytest.mark.slow
def test_schemathesis_live(live_url: str) -> None:
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": ["4xx"]}}}
    )
    schema = schemathesis.openapi.from_url(
        f"{live_url}{PREFIX}/openapi.json", config=config
    )
    # The listings (/images, /) run apart: their parameters would otherwise take
    # many of the examples that make /iip render images.
    listings = schema.include(path=["/images", "/"])
    others = schema.exclude(path=["/images", "/"])
    positive = others.as_strategy(GenerationMode.POSITIVE)
    negative = others.as_strategy(GenerationMode.NEGATIVE)
    real = st.builds(
        with_real_image, schema["/iip"]["GET"].as_strategy(), st.sampled_from(IMAGES)
    )
    seen: dict[str, int] = {}

    def call(case: Case) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=30)
        key = f"{case.path} {response.status_code}"
        seen[key] = seen.get(key, 0) + 1

    def examples(count: int) -> Any:
        return settings(
            max_examples=count,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )

    examples(400)(given(st.one_of(positive, real, negative))(call))()
    listing_cases = st.one_of(
        listings.as_strategy(GenerationMode.POSITIVE),
        listings.as_strategy(GenerationMode.NEGATIVE),
    )
    examples(150)(given(listing_cases)(call))()
    # The run reached every endpoint (schemathesis leaves out the document's own
    # path) and really served images.
    assert {key.split()[0] for key in seen} == {"/iip", "/images", "/", "/stats", "/viewer"}
    assert seen.get("/iip 200", 0) >= 20, seen
    assert seen.get("/iip 400", 0) >= 20, seen
    assert seen.get("/images 200", 0) >= 1 and seen.get("/ 200", 0) >= 1, seen
    assert seen.get("/images 400", 0) >= 10 and seen.get("/ 400", 0) >= 10, seen
    stats = json.loads(
        schema["/stats"]["GET"].Case().call(base_url=f"{live_url}{PREFIX}").text
    )
    assert stats["tile_cache"]["misses"] > 0, stats


@pytest.mark.slow
def test_schemathesis_cli_coverage_phase(live_url: str, tmp_path: Path) -> None:
    """The CLI's coverage phase: boundary values and every kind of schema violation.

    Also checks that other methods answer 405 with an ``Allow`` header.
    """
    config = tmp_path / "schemathesis.toml"
    # The viewer's one parameter names an image: a random name only finds 404s.
    config.write_text(
        '[checks.negative_data_rejection]\nexpected-statuses = ["4xx"]\n\n'
        '[[operations]]\ninclude-path = "/viewer"\n'
        'parameters = { "query.FIF" = "small.fits" }\n'
    )
    checks = [check.__name__ for check in CHECKS] + [
        "unsupported_method",
        "allow_header_conformance",
    ]
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{live_url}{PREFIX}/openapi.json",
            "--phases",
            "examples,coverage",
            "--checks",
            ",".join(checks),
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "No issues found" in output and "generated" in output
