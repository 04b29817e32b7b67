"""Fixtures of the web tests: a data folder with the samples and purpose-made files.

The library (data folder, a folder outside it, a cache folder) is made once per
session: the samples take a moment to write and to prepare. Tests that need a
pristine cache or change files use ``fresh_library`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.webtools import Library, make_app, make_library


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's FITSTILES_* variables out of the tests."""
    for name in list(os.environ):
        if name.startswith("FITSTILES_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Session-wide library: samples, purpose-made files and a shared cache."""
    return make_library(tmp_path_factory.mktemp("library"))


@pytest.fixture
def fresh_library(tmp_path: Path, library: Library) -> Library:
    """A library of this test alone, with an empty cache (samples hard-linked)."""
    return make_library(tmp_path / "fresh", samples=library.data)


@pytest.fixture
def app(library: Library) -> Flask:
    """The test app over the session library."""
    return make_app(library)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """Test client of ``app``."""
    with app.test_client() as client:
        yield client
