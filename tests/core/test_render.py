from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from PIL import Image

from flask_fitstiles.core import render as render_module
from flask_fitstiles.core.render import (
    colormap_lut,
    encode_jpeg,
    mix_matrix,
    render_jpeg,
    render_tile,
    resize_raster,
)
from flask_fitstiles.errors import BadParameterError

# --- reference formulas, straight from the design, in float64 ----------------------


def ref_scale(x: np.ndarray, lo: float, hi: float, brightness: float, contrast: float):
    factor = contrast / (hi - lo) if hi > lo else 1e30
    with np.errstate(over="ignore", invalid="ignore"):
        v = (x.astype(np.float64) - lo) * factor + 0.01 * contrast * brightness
    return v


def ref_levels(v: np.ndarray, gamma: float, invert: bool) -> np.ndarray:
    v = np.clip(np.nan_to_num(v, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    exponent = 100.0 if gamma < 0.01 else 1.0 / gamma
    out = (255.49 * v**exponent).astype(np.uint8)
    return 255 - out if invert else out


def ref_mono(x, lo, hi, brightness=0.0, contrast=1.0, gamma=2.2, invert=False):
    return ref_levels(ref_scale(x, lo, hi, brightness, contrast), gamma, invert)


def assert_levels_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to one level: the 16-bit gamma table quantises v."""
    assert actual.shape == expected.shape
    assert actual.dtype == np.uint8
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1, f"max difference {diff.max()} at {np.argmax(diff)}"


def ramp(lo: float, hi: float, height: int = 16, width: int = 24) -> np.ndarray:
    """A (1, h, w) float32 ramp running a bit beyond [lo, hi] on both sides."""
    span = hi - lo
    values = np.linspace(lo - 0.2 * span, hi + 0.2 * span, height * width)
    return values.astype(np.float32).reshape(1, height, width)


CUTS = np.array([[100.0, 1100.0]])

# --- mix_matrix ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nchannels", "mix", "expected"),
    [
        (3, None, np.ones((3, 3))),
        (5, (), np.ones((3, 5))),
        (3, ((1, 1, 0, 0), (2, 0, 1, 0), (3, 0, 0, 1)), np.eye(3)),
        (
            5,
            ((1, 1, 0, 0), (3, 0, 1, 0), (5, 0, 0, 1)),
            0.6
            * np.array(
                [
                    [1.0, 0.5, 0.0, 0.0, 0.0],
                    [0.0, 0.5, 1.0, 0.5, 0.0],
                    [0.0, 0.0, 0.0, 0.5, 1.0],
                ]
            ),
        ),
        # unsorted rows, a duplicate (last wins), constant beyond the ends
        (
            5,
            ((4, 0, 0, 1), (2, 1, 0, 0), (3, 9, 9, 9), (3, 0, 1, 0)),
            0.6
            * np.array(
                [
                    [1.0, 1.0, 0.0, 0.0, 0.0],
                    [0.0, 0.0, 1.0, 0.0, 0.0],
                    [0.0, 0.0, 0.0, 1.0, 1.0],
                ]
            ),
        ),
        (2, ((1, 0.2, 0.4, 0.6),), 1.5 * np.array([[0.2, 0.2], [0.4, 0.4], [0.6, 0.6]])),
    ],
)
def test_mix_matrix(nchannels, mix, expected):
    matrix = mix_matrix(nchannels, mix)
    assert matrix.shape == (3, nchannels)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-7)


def test_mix_matrix_needs_a_channel():
    with pytest.raises(ValueError, match="at least one channel"):
        mix_matrix(0, None)


# --- render_tile, mono mode ----------------------------------------------------------

MONO_CASES = [
    # brightness, contrast, gamma, invert
    (0.0, 1.0, 2.2, False),
    (0.0, 1.0, 1.0, False),
    (0.0, 1.0, 0.2, False),
    (0.0, 1.0, 5.0, True),
    (30.0, 1.0, 2.2, False),
    (-40.0, 2.5, 2.2, True),
    (0.0, 0.25, 1.0, False),
    (100.0, 0.0, 2.2, False),
    (0.0, 1000.0, 2.2, False),
]


@pytest.mark.parametrize(("brightness", "contrast", "gamma", "invert"), MONO_CASES)
@pytest.mark.parametrize(("lo", "hi"), [(100.0, 1100.0), (-3e-3, 5e-2), (7.5e4, 7.6e4)])
def test_mono_grey_matches_formula(lo, hi, brightness, contrast, gamma, invert):
    tile = ramp(lo, hi)
    cuts = np.array([[lo, hi]])
    raster = render_tile(
        tile,
        cuts,
        channel=1,
        brightness=brightness,
        contrast=contrast,
        gamma=gamma,
        invert=invert,
    )
    assert raster.shape == (16, 24)
    assert raster.flags.c_contiguous
    expected = ref_mono(tile[0], lo, hi, brightness, contrast, gamma, invert)
    if gamma == 5.0:
        # 1/gamma = 0.2 is steep near 0: compare where the table is fine enough.
        keep = ref_scale(tile[0], lo, hi, brightness, contrast) > 1e-3
        assert_levels_close(raster[keep], expected[keep])
    else:
        assert_levels_close(raster, expected)


@pytest.mark.parametrize(
    ("x", "options", "level"),
    [
        # gamma 1: v = (x - 100) / 1000
        (100.0, {"gamma": 1.0}, 0),
        (600.0, {"gamma": 1.0}, 127),  # 255.49 * 0.5 = 127.7
        (1100.0, {"gamma": 1.0}, 255),
        (5000.0, {"gamma": 1.0}, 255),
        (-5000.0, {"gamma": 1.0}, 0),
        (600.0, {"gamma": 1.0, "invert": True}, 128),
        (350.0, {"gamma": 1.0, "contrast": 2.0}, 127),  # 2 * 0.25
        (600.0, {"gamma": 1.0, "contrast": 2.0}, 255),
        (100.0, {"gamma": 1.0, "brightness": 50.0}, 127),  # offset 0.5
        (600.0, {"gamma": 1.0, "brightness": -50.0}, 0),
        (850.0, {"gamma": 1.0, "brightness": -50.0}, 63),  # 0.75 - 0.5
        (100.0, {"gamma": 1.0, "brightness": 25.0, "contrast": 2.0}, 127),
        # default gamma 2.2: 255.49 * 0.5 ** (1 / 2.2) = 186.6
        (600.0, {}, 186),
        (100.0, {"brightness": 50.0}, 186),
        # gamma below 0.01 means exponent 100
        (600.0, {"gamma": 0.0}, 0),
        (1100.0, {"gamma": 0.0}, 255),
        # blanks and infinities
        (np.nan, {}, 0),
        (np.nan, {"invert": True}, 255),
        (np.nan, {"brightness": 100.0}, 0),
        (np.inf, {}, 255),
        (-np.inf, {}, 0),
        (-np.inf, {"invert": True}, 255),
    ],
)
def test_mono_pixel_values(x, options, level):
    tile = np.full((1, 2, 3), x, dtype=np.float32)
    raster = render_tile(tile, CUTS, channel=1, **options)
    assert_array_equal(raster, np.full((2, 3), level, dtype=np.uint8))


@pytest.mark.parametrize(
    ("x", "level"), [(99.0, 0), (100.0, 0), (100.001, 255), (1e6, 255), (np.nan, 0)]
)
def test_mono_empty_cuts_is_a_step(x, level):
    tile = np.full((1, 1, 4), x, dtype=np.float32)
    for cuts in (np.array([[100.0, 100.0]]), np.array([[100.0, 50.0]])):
        raster = render_tile(tile, cuts, channel=1)
        assert_array_equal(raster, np.full((1, 4), level, dtype=np.uint8))


def test_mono_empty_cuts_keep_the_brightness_offset():
    # At x == min of empty cuts, v is the brightness offset alone (0.4 here).
    tile = np.full((1, 1, 4), 100.0, dtype=np.float32)
    raster = render_tile(tile, np.array([[100.0, 100.0]]), channel=1, brightness=40.0)
    assert_array_equal(raster, ref_mono(tile[0], 100.0, 100.0 + 1e-30, brightness=40.0))
    assert raster[0, 0] == int(255.49 * 0.4 ** (1 / 2.2))


@pytest.mark.parametrize("x", [256.0, 257.0, 513.0, 514.0, 65278.0, 65279.0])
def test_mono_levels_change_where_the_formula_says(x):
    # With gamma 1 and cuts [0, 65535], the scaled value is x / 65535 exactly, and
    # levels 0|1, 1|2 and 253|254 change between these pairs of x: the table is
    # indexed by the nearest value, not the one below.
    tile = np.full((1, 1, 1), x, dtype=np.float32)
    raster = render_tile(tile, np.array([[0.0, 65535.0]]), channel=1, gamma=1.0)
    assert raster[0, 0] == int(255.49 * x / 65535.0)


def decoded(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image)


def test_render_jpeg_is_render_tile_then_encode_jpeg():
    # Same defaults, same pixels: render_jpeg skips the numpy raster, and encodes
    # RGB with equal bands at 4:2:0, which decodes to the same pixels.
    tile, cuts = three_channel_tile(20, 30)
    for settings in ({}, {"channel": 2}, {"channel": 1, "colormap": "hot"}):
        direct = render_jpeg(tile, cuts, 90, **settings)
        through = encode_jpeg(render_tile(tile, cuts, **settings), 90)
        assert_array_equal(decoded(direct), decoded(through), str(settings))
        assert (direct == through) == bool(settings), settings


def test_equal_bands_are_encoded_at_420_with_the_same_pixels():
    # Colour mode with equal weights gives grey RGB: its chroma is 128 everywhere,
    # so 4:2:0 loses nothing and costs less; a real colour mix stays 4:4:4.
    tile, cuts = three_channel_tile(64, 48)
    grey_rgb = render_jpeg(tile, cuts, 95)
    assert jpeg_sampling(grey_rgb) == [(2, 2), (1, 1), (1, 1)]
    raster = render_tile(tile, cuts)
    assert (raster[..., 0] == raster[..., 1]).all() and (
        raster[..., 1] == raster[..., 2]
    ).all()
    assert_array_equal(decoded(grey_rgb), decoded(encode_jpeg(raster, 95)))
    grey_mix = ((1, 0.5, 0.5, 0.5), (3, 0.5, 0.5, 0.5))
    assert jpeg_sampling(render_jpeg(tile, cuts, 95, mix=grey_mix)) == [
        (2, 2),
        (1, 1),
        (1, 1),
    ]
    colour_mix = ((1, 1.0, 0.5, 0.5), (3, 0.5, 0.5, 0.5))
    assert jpeg_sampling(render_jpeg(tile, cuts, 95, mix=colour_mix)) == [(1, 1)] * 3


def test_infinities_times_zero_contrast_are_blank_without_warnings():
    # inf * 0 is NaN: rendered as blank, and no RuntimeWarning (an error here).
    tile = np.array([[[np.inf, -np.inf, 150.0]]], dtype=np.float32)
    raster = render_tile(tile, CUTS, channel=1, contrast=0.0)
    assert_array_equal(raster, np.zeros((1, 3), dtype=np.uint8))
    colour = render_tile(
        np.concatenate([tile, tile]), np.concatenate([CUTS, CUTS]), contrast=0.0
    )
    assert_array_equal(colour, np.zeros((1, 3, 3), dtype=np.uint8))


def test_scaling_is_single_precision():
    # The scaled value of a pixel is computed in float32 (x * factor + offset,
    # both float32), then indexes the table: check every pixel of a random tile
    # against that arithmetic, done here step by step.
    rng = np.random.default_rng(3)
    # Large enough that index rounding at the 255 level changes shows.
    tile = rng.uniform(-50.0, 1200.0, (1, 1024, 1024)).astype(np.float32)
    lo, hi, gamma = 100.0, 1100.0, 2.2
    top = 65535.0
    factor = top / (hi - lo)
    scaled = tile[0] * np.float32(factor) + np.float32(0.5 - lo * factor)
    index = np.clip(scaled, 0.0, top).astype(np.uint16)
    expected = (255.49 * (index / top) ** (1.0 / gamma)).astype(np.uint8)
    assert_array_equal(render_tile(tile, np.array([[lo, hi]]), channel=1), expected)


def test_colour_mode_rounds_to_the_nearest_table_index():
    # As in mono mode: 256.6 / 65535 of the range indexes entry 257 (level 1 at
    # gamma 1), not 256 (level 0).
    tile = np.full((1, 1, 2), 256.6, dtype=np.float32)
    cuts = np.array([[0.0, 65535.0]])
    assert render_tile(tile, cuts, channel=1, gamma=1.0)[0, 0] == 1
    assert_array_equal(render_tile(tile, cuts, gamma=1.0), np.ones((1, 2, 3), np.uint8))


def test_colour_mode_overflow_is_white_without_warnings():
    # Empty cuts give a huge factor: above the cut, float32 overflows to inf.
    tile = np.full((2, 1, 2), 1e38, dtype=np.float32)
    cuts = np.array([[100.0, 100.0], [100.0, 100.0]])
    assert_array_equal(render_tile(tile, cuts), np.full((1, 2, 3), 255, np.uint8))


def test_work_buffers_are_reused_per_thread():
    # The per-tile path allocates nothing once its buffers have grown. A fresh
    # set of buffers, as a new thread has (the module's own have a history).
    scratch = render_module._Scratch()
    first = scratch.get("test", (64, 64), np.float32)
    assert np.shares_memory(first, scratch.get("test", (64, 64), np.float32))
    assert np.shares_memory(first, scratch.get("test", (32, 16), np.uint8))
    grown = scratch.get("test", (128, 128), np.float32)
    assert grown.shape == (128, 128) and not np.shares_memory(first, grown)
    assert np.shares_memory(grown, scratch.get("test", (128, 128), np.float32))
    # The largest kept buffer is reused too; beyond it, a fresh array each time.
    limit = render_module._SCRATCH_MAX_BYTES // 4
    kept = scratch.get("big", (limit,), np.float32)
    assert np.shares_memory(kept, scratch.get("big", (limit,), np.float32))
    over = scratch.get("big", (limit + 1,), np.float32)
    assert not np.shares_memory(over, scratch.get("big", (limit + 1,), np.float32))
    # Other threads get buffers of their own.
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(scratch.get, "test", (64, 64), np.float32).result()
    assert not np.shares_memory(first, other)


def test_mono_blank_pixels_are_black_or_white_when_inverted():
    tile = ramp(100.0, 1100.0)
    tile[0, 3:6, 4:9] = np.nan
    grey = render_tile(tile, CUTS, channel=1)
    assert (grey[3:6, 4:9] == 0).all()
    assert_levels_close(grey, ref_mono(tile[0], 100.0, 1100.0))
    inverted = render_tile(tile, CUTS, channel=1, invert=True)
    assert (inverted[3:6, 4:9] == 255).all()
    assert_array_equal(inverted, 255 - grey)


def two_channel_tile() -> tuple[np.ndarray, np.ndarray]:
    tile = np.concatenate([ramp(0.0, 10.0), ramp(1000.0, 3000.0)])
    cuts = np.array([[0.0, 10.0], [1000.0, 3000.0]])
    return tile, cuts


def test_mono_picks_the_channel():
    tile, cuts = two_channel_tile()
    tile[1] = tile[1][::-1]
    second = render_tile(tile, cuts, channel=2)
    assert_levels_close(second, ref_mono(tile[1], 1000.0, 3000.0))


@pytest.mark.parametrize("channel", [3, 99, 0, -1])
def test_mono_channel_out_of_range_means_channel_1(channel):
    tile, cuts = two_channel_tile()
    tile[1] = 0.0
    assert_array_equal(
        render_tile(tile, cuts, channel=channel), render_tile(tile, cuts, channel=1)
    )


def test_minmax_overrides_only_its_channel():
    tile, cuts = two_channel_tile()
    minmax = ((2, 1500.0, 2500.0),)
    # channel 1 keeps its default cuts
    assert_array_equal(
        render_tile(tile, cuts, channel=1, minmax=minmax),
        render_tile(tile, cuts, channel=1),
    )
    # channel 2 uses the override
    assert_levels_close(
        render_tile(tile, cuts, channel=2, minmax=minmax),
        ref_mono(tile[1], 1500.0, 2500.0),
    )
    # the last row for a channel wins; rows for missing channels are ignored
    rows = ((2, 0.0, 1.0), (7, 0.0, 1.0), (2, 1500.0, 2500.0), (1, 2.0, 4.0))
    assert_levels_close(
        render_tile(tile, cuts, channel=2, minmax=rows), ref_mono(tile[1], 1500.0, 2500.0)
    )
    assert_levels_close(
        render_tile(tile, cuts, channel=1, minmax=rows), ref_mono(tile[0], 2.0, 4.0)
    )


@pytest.mark.parametrize("name", ["jet", "cold", "cool", "hot"])
@pytest.mark.parametrize("invert", [False, True])
def test_mono_colormap_applies_the_table_to_grey_levels(name, invert):
    tile = ramp(100.0, 1100.0, height=5, width=7)  # non-square: width, height order
    tile[0, 0, :2] = np.nan
    grey = render_tile(tile, CUTS, channel=1, invert=invert)
    coloured = render_tile(tile, CUTS, channel=1, colormap=name, invert=invert)
    lut = colormap_lut(name)
    assert lut is not None
    assert coloured.shape == (5, 7, 3)
    assert coloured.dtype == np.uint8
    assert coloured.flags.c_contiguous
    assert_array_equal(coloured, lut[grey])
    assert_array_equal(coloured[0, 0], lut[255 if invert else 0])


def test_unknown_colormap_is_rejected_in_both_modes():
    tile = ramp(100.0, 1100.0)
    with pytest.raises(BadParameterError, match="unknown colormap"):
        render_tile(tile, CUTS, channel=1, colormap="gray")
    with pytest.raises(BadParameterError, match="unknown colormap"):
        render_tile(tile, CUTS, colormap="gray")


@pytest.mark.parametrize(
    ("tile_shape", "cuts_shape"), [((4, 4), (1, 2)), ((1, 4, 4), (2, 2)), ((2, 3, 3), (2,))]
)
def test_render_rejects_bad_shapes(tile_shape, cuts_shape):
    with pytest.raises(ValueError, match="must"):
        render_tile(np.zeros(tile_shape, np.float32), np.zeros(cuts_shape), channel=1)


# --- render_tile, colour mode --------------------------------------------------------


def three_channel_tile(height: int = 6, width: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    cuts = np.array([[0.0, 1.0], [10.0, 30.0], [-5.0, 5.0]])
    tile = np.stack(
        [
            rng.uniform(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo), (height, width))
            for lo, hi in cuts
        ]
    ).astype(np.float32)
    return tile, cuts


def ref_colour(tile, cuts, mix=None, brightness=0.0, contrast=1.0, gamma=2.2, invert=False):
    scaled = np.stack(
        [
            ref_scale(plane, lo, hi, brightness, contrast)
            for plane, (lo, hi) in zip(tile, cuts, strict=True)
        ]
    )
    scaled = np.nan_to_num(scaled, nan=0.0)
    rgb = np.einsum("kc,chw->hwk", mix_matrix(len(tile), mix).astype(np.float64), scaled)
    return ref_levels(rgb, gamma, invert)


COLOUR_CASES = [
    (None, 0.0, 1.0, 2.2, False),
    (((1, 1, 0, 0), (2, 0, 1, 0), (3, 0, 0, 1)), 0.0, 1.0, 2.2, False),
    (((1, 1, 0, 0), (2, 0, 1, 0), (3, 0, 0, 1)), 20.0, 0.8, 1.0, True),
    (((1, 0.2, 0.3, 1.0), (3, 1.0, 0.5, 0.0)), -10.0, 2.0, 1.6, False),
    (((2, 0, 1, 0),), 0.0, 1.0, 2.2, True),
]


@pytest.mark.parametrize(("mix", "brightness", "contrast", "gamma", "invert"), COLOUR_CASES)
def test_colour_matches_formula(mix, brightness, contrast, gamma, invert):
    tile, cuts = three_channel_tile()
    options = {
        "brightness": brightness,
        "contrast": contrast,
        "gamma": gamma,
        "invert": invert,
    }
    raster = render_tile(tile, cuts, mix=mix, **options)
    assert raster.shape == (6, 10, 3)
    assert raster.flags.c_contiguous
    assert_levels_close(raster, ref_colour(tile, cuts, mix, **options))


def test_colour_pure_red_mix_puts_signal_in_red_only():
    tile, cuts = three_channel_tile()
    mix = ((1, 1.0, 0.0, 0.0), (2, 1.0, 0.0, 0.0), (3, 1.0, 0.0, 0.0))
    raster = render_tile(tile, cuts, mix=mix)
    assert raster[..., 0].max() == 255
    assert raster[..., 0].min() < raster[..., 0].max()
    assert (raster[..., 1:] == 0).all()


def test_colour_is_not_clipped_before_mixing():
    # v1 = 3 (far above its cuts) and v2 = -2.5 (far below) partly cancel in the mix:
    # (3 - 2.5) * 3 / 2 = 0.75, where clipping first would give 1.5 -> 255.
    tile = np.array([[[3.0]], [[-2.5]]], dtype=np.float32)
    cuts = np.array([[0.0, 1.0], [0.0, 1.0]])
    mix = ((1, 1.0, 1.0, 1.0), (2, 1.0, 1.0, 1.0))
    raster = render_tile(tile, cuts, mix=mix, gamma=1.0)
    assert_array_equal(raster, np.full((1, 1, 3), 191, dtype=np.uint8))  # 255.49 * 0.75
    # without a mix every weight is 1: 3 - 2.5 = 0.5
    raster = render_tile(tile, cuts, gamma=1.0)
    assert_array_equal(raster, np.full((1, 1, 3), 127, dtype=np.uint8))


def test_colour_blank_channel_contributes_nothing():
    tile, cuts = three_channel_tile()
    mix = ((1, 1, 0, 0), (2, 0, 1, 0), (3, 0, 0, 1))
    tile[1, 2:4, 3:7] = np.nan
    raster = render_tile(tile, cuts, mix=mix)
    assert (raster[2:4, 3:7, 1] == 0).all()
    assert_levels_close(raster, ref_colour(tile, cuts, mix))
    assert (raster[..., 0] > 0).any()


def test_colour_minmax_overrides_only_its_channel():
    tile, cuts = three_channel_tile()
    mix = ((1, 1, 0, 0), (2, 0, 1, 0), (3, 0, 0, 1))
    minmax = ((2, 15.0, 20.0),)
    plain = render_tile(tile, cuts, mix=mix)
    overridden = render_tile(tile, cuts, mix=mix, minmax=minmax)
    assert_array_equal(overridden[..., [0, 2]], plain[..., [0, 2]])
    assert (overridden[..., 1] != plain[..., 1]).any()
    new_cuts = cuts.copy()
    new_cuts[1] = (15.0, 20.0)
    assert_levels_close(overridden, ref_colour(tile, new_cuts, mix))


def test_colour_single_channel_and_many_channels():
    rng = np.random.default_rng(3)
    one = rng.uniform(-1, 2, (1, 4, 5)).astype(np.float32)
    cuts = np.array([[0.0, 1.0]])
    assert_levels_close(render_tile(one, cuts), ref_colour(one, cuts))
    many = rng.uniform(-1, 2, (7, 4, 5)).astype(np.float32)
    cuts = np.tile([[0.0, 1.0]], (7, 1))
    mix = ((1, 1, 0, 0), (4, 0, 1, 0), (7, 0, 0, 1))
    assert_levels_close(render_tile(many, cuts, mix=mix), ref_colour(many, cuts, mix))


# --- inputs are never modified; strided read-only views ------------------------------


def read_only_flipped(tile: np.ndarray) -> np.ndarray:
    base = tile.copy()
    base.flags.writeable = False
    view = base[:, ::-1, :]
    assert view.strides[1] < 0
    return view


RENDER_OPTIONS = [
    {"channel": 1},
    {"channel": 2, "colormap": "jet", "invert": True},
    {"channel": 3, "minmax": ((3, -1.0, 1.0),), "brightness": 10.0},
    {},
    {"mix": ((1, 1, 0, 0), (3, 0, 0, 1)), "contrast": 3.0},
]


@pytest.mark.parametrize("options", RENDER_OPTIONS)
def test_inputs_are_unchanged(options):
    tile, cuts = three_channel_tile()
    tile[0, 0, 0] = np.nan
    tile_before, cuts_before = tile.copy(), cuts.copy()
    render_tile(tile, cuts, **options)
    assert_array_equal(tile, tile_before)
    assert_array_equal(cuts, cuts_before)


@pytest.mark.parametrize("options", RENDER_OPTIONS)
def test_negative_stride_read_only_view(options):
    tile, cuts = three_channel_tile()
    tile[1, 1, 2] = np.nan
    view = read_only_flipped(tile)
    cuts.flags.writeable = False
    before = np.array(view)
    raster = render_tile(view, cuts, **options)
    assert_array_equal(view, before)
    assert_array_equal(raster, render_tile(np.ascontiguousarray(view), cuts, **options))


def test_read_only_memory_map(tmp_path):
    tile, cuts = three_channel_tile()
    path = tmp_path / "tile.f32"
    tile.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=tile.shape)
    view = mapped[:, ::-1, ::2]
    for options in RENDER_OPTIONS:
        raster = render_tile(view, cuts, **options)
        assert_array_equal(raster, render_tile(np.array(view), cuts, **options))
    assert_array_equal(np.fromfile(path, dtype=np.float32).reshape(tile.shape), tile)
    del mapped


@pytest.mark.parametrize("options", RENDER_OPTIONS)
def test_large_region_matches_tiles(options):
    # A region far larger than a tile (beyond the per-thread work buffers) renders
    # exactly as its tiles do.
    rng = np.random.default_rng(13)
    region = rng.normal(0.0, 1.0, (3, 1100, 1000)).astype(np.float32)
    cuts = np.tile([[-1.0, 2.0]], (3, 1))
    raster = render_tile(region, cuts, **options)
    for y, x in [(0, 0), (256, 512), (1024, 768)]:
        tile = region[:, y : y + 256, x : x + 256]
        assert_array_equal(
            raster[y : y + 256, x : x + 256], render_tile(tile, cuts, **options)
        )


def test_renders_in_parallel_threads():
    rng = np.random.default_rng(11)
    jobs = []
    for shape in [(3, 256, 256), (3, 17, 256), (3, 256, 5), (1, 64, 64)]:
        tile = rng.normal(0.0, 1.0, shape).astype(np.float32)
        cuts = np.tile([[-1.0, 2.0]], (shape[0], 1))
        for options in RENDER_OPTIONS:
            jobs.append((tile, cuts, options))
    expected = [render_tile(t, c, **o) for t, c, o in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            results = list(
                pool.map(lambda job: render_tile(job[0], job[1], **job[2]), jobs)
            )
            for result, reference in zip(results, expected, strict=True):
                assert_array_equal(result, reference)


# --- encode_jpeg ---------------------------------------------------------------------


def smooth_raster(height: int, width: int, bands: int | None) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    # at most one level per pixel: smooth, so that JPEG at quality 100 keeps it
    grey = (20 + (x + y) // 3).astype(np.uint8)
    if bands is None:
        return grey
    return np.ascontiguousarray(np.stack([grey, 255 - grey, grey // 2], axis=-1))


@pytest.mark.parametrize(
    ("bands", "mode"),
    [(None, "L"), (3, "RGB")],
)
@pytest.mark.parametrize(("height", "width"), [(32, 48), (256, 256), (7, 3)])
def test_encode_jpeg_decodes_to_the_raster(bands, mode, height, width):
    raster = smooth_raster(height, width, bands)
    jpeg = encode_jpeg(raster, 100)
    assert jpeg[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        assert image.mode == mode
        assert image.size == (width, height)
        decoded = np.asarray(image)
    assert np.abs(decoded.astype(int) - raster.astype(int)).max() <= 4


def test_encode_jpeg_quality_changes_the_size():
    rng = np.random.default_rng(5)
    raster = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    sizes = [len(encode_jpeg(raster, quality)) for quality in (0, 50, 95, 100)]
    assert sizes == sorted(sizes)
    assert sizes[0] < sizes[-1]


def test_encode_jpeg_of_rendered_tiles():
    tile, cuts = three_channel_tile(20, 30)
    for options, mode in [
        ({"channel": 1}, "L"),
        ({"channel": 1, "colormap": "hot"}, "RGB"),
    ]:
        with Image.open(
            io.BytesIO(encode_jpeg(render_tile(tile, cuts, **options), 95))
        ) as im:
            assert (im.mode, im.size) == (mode, (30, 20))
    with Image.open(io.BytesIO(encode_jpeg(render_tile(tile, cuts), 95))) as im:
        assert (im.mode, im.size) == ("RGB", (30, 20))


def jpeg_sampling(jpeg: bytes) -> list[tuple[int, int]]:
    """(horizontal, vertical) sampling factors of each component, from the SOF."""
    with Image.open(io.BytesIO(jpeg)) as image:
        return [(h, v) for _, h, v, _ in image.layer]


def test_colour_jpegs_keep_full_chroma_resolution():
    # 4:4:4: every component sampled 1 x 1 (4:2:0 gives 2 x 2 for luma).
    tile, cuts = three_channel_tile(20, 30)
    mix = ((1, 1.0, 0.0, 0.0), (2, 0.0, 1.0, 0.0), (3, 0.0, 0.0, 1.0))
    for jpeg in (
        render_jpeg(tile, cuts, 95, channel=1, colormap="jet"),
        render_jpeg(tile, cuts, 95, mix=mix),
        encode_jpeg(smooth_raster(16, 16, 3), 90),
    ):
        assert jpeg_sampling(jpeg) == [(1, 1)] * 3
    assert jpeg_sampling(render_jpeg(tile, cuts, 95, channel=1)) == [(1, 1)]


def test_colour_jpegs_keep_one_pixel_colours():
    # A star one pixel wide: a red pixel on blue. Chroma over 2 x 2 pixels would
    # leave it a quarter as red.
    raster = np.zeros((16, 16, 3), np.uint8)
    raster[..., 2] = 200
    raster[7, 9] = (255, 0, 0)
    with Image.open(io.BytesIO(encode_jpeg(raster, 100))) as image:
        decoded = np.asarray(image).astype(int)
    assert np.abs(decoded - raster.astype(int)).max() <= 8


def test_encode_jpeg_accepts_a_strided_raster():
    raster = smooth_raster(40, 60, None)[::-1, ::2]
    with Image.open(io.BytesIO(encode_jpeg(raster, 100))) as image:
        assert image.size == (30, 40)
        assert np.abs(np.asarray(image).astype(int) - raster.astype(int)).max() <= 4


@pytest.mark.parametrize("quality", [-1, 101])
def test_encode_jpeg_rejects_bad_quality(quality):
    with pytest.raises(BadParameterError, match="quality") as info:
        encode_jpeg(smooth_raster(8, 8, None), quality)
    assert info.value.loc == ("query", "QLT")


@pytest.mark.parametrize(
    "raster",
    [
        np.zeros((8, 8), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8,), np.uint8),
    ],
)
def test_encode_jpeg_rejects_bad_rasters(raster):
    with pytest.raises(ValueError, match="raster"):
        encode_jpeg(raster, 90)


# --- resize_raster -------------------------------------------------------------------


@pytest.mark.parametrize("bands", [None, 3])
def test_resize_raster_averages_blocks(bands):
    # Shrinking by whole factors averages each block (area averaging, not an
    # interpolation): regions at a binning that is not a power of two.
    rng = np.random.default_rng(11)
    shape = (12, 18) if bands is None else (12, 18, bands)
    raster = rng.integers(0, 256, shape, dtype=np.uint8)
    out = resize_raster(raster, (4, 6))
    assert out.shape == ((4, 6) if bands is None else (4, 6, bands))
    assert out.dtype == np.uint8
    blocks = raster.reshape(4, 3, 6, 3, *shape[2:]).mean(axis=(1, 3))
    assert np.abs(out - blocks).max() <= 1.0  # (Pillow rounds in fixed point)
