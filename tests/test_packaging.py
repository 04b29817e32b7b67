"""The wheel carries what an installed package needs besides its modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Builds a wheel with pip (build isolation fetches setuptools from the index).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    # Build from a copy, so that the build leaves nothing in the work tree.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.cfg", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "flask_fitstiles",
        source / "flask_fitstiles",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("flask_fitstiles-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_ships_py_typed_and_the_license(wheel_names: set[str]) -> None:
    assert "flask_fitstiles/py.typed" in wheel_names
    # dist-info/licenses/ (PEP 639) or dist-info/ itself, by setuptools version.
    licenses = [n for n in wheel_names if ".dist-info/" in n and n.endswith("/LICENSE")]
    assert licenses, sorted(n for n in wheel_names if "dist-info" in n)
    assert "flask_fitstiles/core/colormaps.py" in wheel_names
    # Nothing of the tests or the work tree rides along.
    assert not any(
        name.startswith(("tests/", "benchmarks/", "example_app/")) for name in wheel_names
    )


def test_wheel_ships_the_static_files_and_the_templates(wheel_names: set[str]) -> None:
    # The pages must work from an installed wheel, not only from the source tree.
    package = ROOT / "flask_fitstiles"
    expected = {
        f"flask_fitstiles/{path.relative_to(package).as_posix()}"
        for folder in ("static", "templates")
        for path in (package / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {
        "flask_fitstiles/templates/fitstiles/viewer.html",
        "flask_fitstiles/templates/fitstiles/index.html",
        "flask_fitstiles/static/viewer.js",
        "flask_fitstiles/static/index.css",
    } <= expected
    assert expected <= wheel_names, sorted(expected - wheel_names)
