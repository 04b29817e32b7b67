"""The mono-mode colormaps equal the reference server's, which are OpenCV's."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from flask_fitstiles.core import colormaps
from flask_fitstiles.core.colormaps import COLORMAP_NAMES, colormap_lut, colormap_palette
from flask_fitstiles.errors import BadParameterError

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is a test dependency")

# The reference server's table of names (VisiOmatic 3.0.7): "cold" is COOL too.
OPENCV_MAPS = {
    "jet": cv2.COLORMAP_JET,
    "hot": cv2.COLORMAP_HOT,
    "cool": cv2.COLORMAP_COOL,
    "cold": cv2.COLORMAP_COOL,
}


def opencv_table(colormap: int) -> np.ndarray:
    """OpenCV's (256, 3) table in R, G, B order, by colouring every grey level."""
    levels = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return cv2.cvtColor(cv2.applyColorMap(levels, colormap), cv2.COLOR_BGR2RGB)[:, 0, :]


@pytest.mark.parametrize("name", sorted(OPENCV_MAPS))
def test_every_entry_equals_opencv(name: str) -> None:
    lut = colormap_lut(name)
    assert lut is not None
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert_array_equal(lut, opencv_table(OPENCV_MAPS[name]))
    # Built again from the definitions, in this process (the module's tables
    # were built at import; mutation testing changes code after that).
    rebuilt = colormaps._build_luts()[name]
    assert rebuilt.dtype == np.uint8 and not rebuilt.flags.writeable
    assert_array_equal(rebuilt, opencv_table(OPENCV_MAPS[name]))


@pytest.mark.parametrize(
    ("name", "level", "rgb"),
    [
        # The entries that differed from the reference before these tables.
        ("jet", 192, (255, 124, 0)),
        ("hot", 192, (255, 225, 0)),
        ("hot", 64, (160, 0, 0)),
        # Ends of each ramp.
        ("jet", 0, (0, 0, 128)),
        ("jet", 255, (128, 0, 0)),
        ("hot", 0, (0, 0, 0)),
        ("hot", 255, (255, 255, 255)),
        ("cool", 0, (0, 255, 255)),
        ("cool", 255, (255, 0, 255)),
    ],
)
def test_known_entries(name: str, level: int, rgb: tuple[int, int, int]) -> None:
    lut = colormap_lut(name)
    assert lut is not None
    assert tuple(int(v) for v in lut[level]) == rgb


def test_tables_are_built_once_and_read_only() -> None:
    assert set(COLORMAP_NAMES) == {"grey", "jet", "cold", "cool", "hot"}
    assert colormap_lut("grey") is None and colormap_palette("grey") is None
    for name in COLORMAP_NAMES[1:]:
        lut = colormap_lut(name)
        assert lut is not None
        assert lut is colormap_lut(name)
        assert not lut.flags.writeable
        with pytest.raises(ValueError):
            lut[0, 0] = 1
        assert colormap_palette(name) == lut.tobytes()
    assert colormap_lut("cold") is colormap_lut("cool")


@pytest.mark.parametrize("lookup", [colormap_lut, colormap_palette])
def test_unknown_name(lookup) -> None:  # type: ignore[no-untyped-def]
    names = "grey, jet, cold, cool, hot"
    with pytest.raises(
        ValueError, match=f"^unknown colormap 'viridis'; use one of {names}$"
    ):
        lookup("viridis")
    with pytest.raises(BadParameterError) as info:
        lookup("Jet")
    assert info.value.loc == ("query", "CMP")
