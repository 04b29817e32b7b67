"""Tests of the IIP query parser (pure, no Flask)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_fitstiles.errors import BadParameterError
from flask_fitstiles.iip import (
    MAX_REPEATS,
    MAX_VALUE_LENGTH,
    IIPRequest,
    parse_iip_query,
    split_fif,
)


def parse(query: str) -> IIPRequest:
    """Parse ``"A=1&B"``-style text (no URL decoding: the tests give decoded text)."""
    items = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        items.append((name, value))
    return parse_iip_query(items)


def test_defaults() -> None:
    request = parse_iip_query([])
    assert request == IIPRequest()
    assert request.fif is None
    assert request.extnum is None
    assert request.info is False
    assert request.obj is False
    assert request.tile is None
    assert request.channels == ()
    assert request.channel is None
    assert request.minmax == ()
    assert request.mix == ()
    assert request.colormap == "grey"
    assert request.invert is False
    assert request.brightness is None
    assert request.contrast is None
    assert request.gamma is None
    assert request.quality is None
    assert request.region is None
    assert request.binning == 1
    assert request.value is None
    assert request.profile is None


def test_frozen() -> None:
    request = parse("FIF=a.fits")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.fif = "b.fits"  # type: ignore[misc]


GOOD = [
    # (query, field, expected)
    ("FIF=a.fits", "fif", "a.fits"),
    ("FIF=a.fits", "extnum", None),
    ("FIF=dir/sub/a.fits.fz", "fif", "dir/sub/a.fits.fz"),
    ("FIF=dir/a.fits[2]", "fif", "dir/a.fits"),
    ("FIF=dir/a.fits[2]", "extnum", 2),
    ("FIF=a.fits[0]", "extnum", 0),
    ("FIF=a.fits[ 3 ]", "extnum", 3),
    ("FIF= a b.fits ", "fif", " a b.fits "),
    ("FIF=a[1].fits", "fif", "a[1].fits"),
    ("FIF=a[1].fits", "extnum", None),
    ("INFO", "info", True),
    ("INFO=", "info", True),
    ("INFO=0", "info", True),
    ("obj=IIP,1.0", "obj", True),
    ("OBJ", "obj", True),
    ("obj=IIP,1.0&obj=Max-size&obj=Resolution-number", "obj", True),
    ("JTL=0,0", "tile", (0, 0)),
    ("JTL=3,17", "tile", (3, 17)),
    ("JTL= 3 , 17 ", "tile", (3, 17)),
    ("JTL=+3,017", "tile", (3, 17)),
    ("CHAN=1", "channels", (1,)),
    ("CHAN=1", "channel", 1),
    ("CHAN=3&CHAN=1&CHAN=2", "channels", (3, 1, 2)),
    ("CHAN=3&CHAN=1&CHAN=2", "channel", 3),
    ("CHAN= 2 ", "channels", (2,)),
    ("MINMAX=1:0,100", "minmax", ((1, 0.0, 100.0),)),
    ("MINMAX=2147483647:0,1", "minmax", ((2147483647, 0.0, 1.0),)),
    ("MIX=2147483647:0,1,2", "mix", ((2147483647, 0.0, 1.0, 2.0),)),
    ("MINMAX=1:-1.5e3,2.5E-1", "minmax", ((1, -1500.0, 0.25),)),
    ("MINMAX=2: .5 , 7. ", "minmax", ((2, 0.5, 7.0),)),
    ("MINMAX=1:0,1&MINMAX=2:3,4", "minmax", ((1, 0.0, 1.0), (2, 3.0, 4.0))),
    ("MIX=1:1,0,0", "mix", ((1, 1.0, 0.0, 0.0),)),
    ("MIX=1:1,0,0&MIX=2:0,0.5,-1", "mix", ((1, 1.0, 0.0, 0.0), (2, 0.0, 0.5, -1.0))),
    ("CMP=grey", "colormap", "grey"),
    ("CMP=JET", "colormap", "jet"),
    ("CMP=Cold", "colormap", "cold"),
    ("CMP=cool", "colormap", "cool"),
    ("CMP= hot ", "colormap", "hot"),
    ("INV", "invert", True),
    ("INV=1", "invert", True),
    ("BRT=0", "brightness", 0.0),
    ("BRT=-100", "brightness", -100.0),
    ("BRT=100", "brightness", 100.0),
    ("BRT=12.5", "brightness", 12.5),
    ("CNT=0", "contrast", 0.0),
    ("CNT=1", "contrast", 1.0),
    ("CNT=1000", "contrast", 1000.0),
    ("CNT=1e3", "contrast", 1000.0),
    ("GAM=0.2", "gamma", 0.2),
    ("GAM=2.2", "gamma", 2.2),
    ("GAM=5", "gamma", 5.0),
    ("GAM= 1 ", "gamma", 1.0),
    ("QLT=0", "quality", 0),
    ("QLT=95", "quality", 95),
    ("QLT=100", "quality", 100),
    ("RGN=1,2:30,40", "region", ((1, 2), (30, 40))),
    ("RGN=-5,-6:30,40", "region", ((-5, -6), (30, 40))),
    ("RGN= 1 , 2 : 3 , 4 ", "region", ((1, 2), (3, 4))),
    ("BIN=1", "binning", 1),
    ("BIN=16", "binning", 16),
    ("BIN=65536", "binning", 65536),
    ("VAL=10,20", "value", (10, 20)),
    ("VAL=-1,0", "value", (-1, 0)),
    ("PFL=1,2:300,400", "profile", ((1, 2), (300, 400))),
    ("PFL=300,400:1,2", "profile", ((300, 400), (1, 2))),
]


@pytest.mark.parametrize(("query", "field", "expected"), GOOD)
def test_good_values(query: str, field: str, expected: object) -> None:
    assert getattr(parse(query), field) == expected


TOO_LONG = "1" * (MAX_VALUE_LENGTH + 1)

BAD = [
    # (query, canonical name, text the message must contain)
    ("FIF=", "FIF", "''"),
    ("FIF=a.fits[x]", "FIF", "'a.fits[x]'"),
    ("FIF=a.fits[-1]", "FIF", "'a.fits[-1]'"),
    ("FIF=a.fits[]", "FIF", "'a.fits[]'"),
    ("FIF=a.fits[1.5]", "FIF", "'a.fits[1.5]'"),
    ("FIF=a.fits[٣]", "FIF", "'a.fits[٣]'"),
    ("FIF=a.fits[99999999999]", "FIF", "'a.fits[99999999999]'"),
    ("FIF=[2]", "FIF", "'[2]'"),
    ("FIF=a.fits]", "FIF", "'a.fits]'"),
    ("JTL=abc", "JTL", "'abc'"),
    ("JTL=", "JTL", "''"),
    ("JTL=1", "JTL", "'1'"),
    ("JTL=1,2,3", "JTL", "'1,2,3'"),
    ("JTL=1.5,3", "JTL", "'1.5,3'"),
    ("JTL=-1,3", "JTL", "'-1,3'"),
    ("JTL=1,-3", "JTL", "'1,-3'"),
    ("JTL=1,2147483648", "JTL", "'1,2147483648'"),
    ("JTL=٣,1", "JTL", "'٣,1'"),
    ("JTL=1_0,1", "JTL", "'1_0,1'"),
    ("CHAN=0", "CHAN", "'0'"),
    ("CHAN=-1", "CHAN", "'-1'"),
    ("CHAN=", "CHAN", "''"),
    ("CHAN=x", "CHAN", "'x'"),
    ("CHAN=1.0", "CHAN", "'1.0'"),
    ("CHAN=1&CHAN=٢", "CHAN", "'٢'"),
    ("MINMAX=garbage", "MINMAX", "'garbage'"),
    ("MINMAX=", "MINMAX", "''"),
    ("MINMAX=1:0", "MINMAX", "'1:0'"),
    ("MINMAX=0:0,1", "MINMAX", "'0:0,1'"),
    ("MINMAX=1:nan,1", "MINMAX", "'1:nan,1'"),
    ("MINMAX=1:0,inf", "MINMAX", "'1:0,inf'"),
    ("MINMAX=1:0,1e999", "MINMAX", "'1:0,1e999'"),
    ("MINMAX=1:0,1:2", "MINMAX", "'1:0,1:2'"),
    ("MINMAX=1.5:0,1", "MINMAX", "'1.5:0,1'"),
    ("MIX=1:1,0", "MIX", "'1:1,0'"),
    ("MIX=garbage", "MIX", "'garbage'"),
    ("MIX=0:1,0,0", "MIX", "'0:1,0,0'"),
    ("MIX=1:1,0,nan", "MIX", "'1:1,0,nan'"),
    ("MIX=1:-inf,0,0", "MIX", "'1:-inf,0,0'"),
    ("CMP=rainbow", "CMP", "'rainbow'"),
    ("CMP=", "CMP", "''"),
    ("CMP=gray", "CMP", "'gray'"),
    ("BRT=101", "BRT", "'101'"),
    ("BRT=-100.5", "BRT", "'-100.5'"),
    ("BRT=", "BRT", "''"),
    ("BRT=nan", "BRT", "'nan'"),
    ("BRT=inf", "BRT", "'inf'"),
    ("CNT=-1", "CNT", "'-1'"),
    ("CNT=1001", "CNT", "'1001'"),
    ("CNT=Infinity", "CNT", "'Infinity'"),
    ("CNT=1e999", "CNT", "'1e999'"),
    ("GAM=0", "GAM", "'0'"),
    ("GAM=0.19", "GAM", "'0.19'"),
    ("GAM=5.01", "GAM", "'5.01'"),
    ("GAM=NaN", "GAM", "'NaN'"),
    ("GAM=٢", "GAM", "'٢'"),
    ("GAM=2_2", "GAM", "'2_2'"),
    ("QLT=101", "QLT", "'101'"),
    ("QLT=-1", "QLT", "'-1'"),
    ("QLT=95.5", "QLT", "'95.5'"),
    ("QLT=", "QLT", "''"),
    ("QLT=٩٥", "QLT", "'٩٥'"),
    ("RGN=1,2:3", "RGN", "'1,2:3'"),
    ("RGN=1,2,3,4", "RGN", "'1,2,3,4'"),
    ("RGN=1.5,2:3,4", "RGN", "'1.5,2:3,4'"),
    ("RGN=", "RGN", "''"),
    ("RGN=1,2:3,2147483648", "RGN", "'1,2:3,2147483648'"),
    ("BIN=0", "BIN", "'0'"),
    ("BIN=-2", "BIN", "'-2'"),
    ("BIN=65537", "BIN", "'65537'"),
    ("BIN=2.0", "BIN", "'2.0'"),
    ("BIN=", "BIN", "''"),
    ("VAL=1", "VAL", "'1'"),
    ("VAL=1,2,3", "VAL", "'1,2,3'"),
    ("VAL=a,b", "VAL", "'a,b'"),
    ("VAL=1.5,2", "VAL", "'1.5,2'"),
    ("VAL=", "VAL", "''"),
    ("VAL=-2147483648,0", "VAL", "'-2147483648,0'"),
    ("PFL=1,2:3", "PFL", "'1,2:3'"),
    ("PFL=1,2;3,4", "PFL", "'1,2;3,4'"),
    ("PFL=", "PFL", "''"),
    ("PFL=x1,y1:x2,y2", "PFL", "'x1,y1:x2,y2'"),
    # Channel numbers stop below 2**31, as every integer of the protocol.
    ("MINMAX=2147483648:1,2", "MINMAX", "'2147483648:1,2'"),
    ("MIX=2147483648:1,2,3", "MIX", "'2147483648:1,2,3'"),
    ("CHAN=2147483648", "CHAN", "'2147483648'"),
]


@pytest.mark.parametrize(("query", "name", "shown"), BAD)
def test_bad_values(query: str, name: str, shown: str) -> None:
    with pytest.raises(BadParameterError) as info:
        parse(query)
    error = info.value
    assert error.loc == ("query", name)
    assert error.status == 400
    assert error.msg.startswith(f"{name} must be ")
    assert shown in error.msg


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("GAM=0", "GAM must be a number between 0.2 and 5, got '0'"),
        ("JTL=abc", "JTL must be 'level,tile' with two non-negative integers, got 'abc'"),
        ("CMP=rainbow", "CMP must be one of grey, jet, cold, cool, hot, got 'rainbow'"),
        ("QLT=101", "QLT must be an integer between 0 and 100, got '101'"),
        ("BIN=0", "BIN must be an integer between 1 and 65536, got '0'"),
        ("BRT=x", "BRT must be a number between -100 and 100, got 'x'"),
        ("CNT=-1", "CNT must be a number between 0 and 1000, got '-1'"),
        ("CHAN=0", "CHAN must be a channel number, an integer >= 1, got '0'"),
        (
            "MINMAX=1:2",
            "MINMAX must be 'channel:min,max' with an integer channel >= 1 and two "
            "finite numbers, got '1:2'",
        ),
        (
            "MIX=1:2,3",
            "MIX must be 'channel:r,g,b' with an integer channel >= 1 and three "
            "finite numbers, got '1:2,3'",
        ),
        ("VAL=1", "VAL must be 'x,y' with two integers (|v| < 2**31), got '1'"),
        (
            "RGN=1,2",
            "RGN must be 'x1,y1:x2,y2' with four integers (|v| < 2**31), got '1,2'",
        ),
        (
            "PFL=1,2",
            "PFL must be 'x1,y1:x2,y2' with four integers (|v| < 2**31), got '1,2'",
        ),
        (
            "FIF=a.fits[x]",
            "FIF must be an image name, optionally followed by '[N]' with N an HDU "
            "number >= 0, got 'a.fits[x]'",
        ),
    ],
)
def test_messages(query: str, message: str) -> None:
    with pytest.raises(BadParameterError) as info:
        parse(query)
    assert info.value.msg == message
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name",
    ["FIF", "JTL", "CHAN", "MINMAX", "MIX", "CMP", "BRT", "GAM", "RGN", "VAL", "PFL"],
)
def test_too_long_values(name: str) -> None:
    with pytest.raises(BadParameterError) as info:
        parse_iip_query([(name.lower(), TOO_LONG)])
    assert info.value.loc == ("query", name)
    # The length and a 20-character prefix of the value, not all of it.
    assert info.value.msg == (
        f"{name} must be at most {MAX_VALUE_LENGTH} characters long, got "
        f"{len(TOO_LONG)} characters starting with {TOO_LONG[:20]!r}"
    )


def test_longest_accepted_value() -> None:
    padded = " " * (MAX_VALUE_LENGTH - 2) + "95"
    assert parse_iip_query([("QLT", padded)]).quality == 95


def test_too_long_flag_values_are_ignored() -> None:
    assert parse_iip_query([("INFO", TOO_LONG), ("obj", TOO_LONG)]).info


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [("CHAN", "1", "channels"), ("MINMAX", "1:0,1", "minmax"), ("MIX", "1:1,1,1", "mix")],
)
def test_too_many_repeats(name: str, value: str, field: str) -> None:
    request = parse_iip_query([(name, value)] * MAX_REPEATS)
    assert len(getattr(request, field)) == MAX_REPEATS
    with pytest.raises(BadParameterError) as info:
        parse_iip_query([(name, value)] * (MAX_REPEATS + 1))
    assert info.value.loc == ("query", name)
    assert str(MAX_REPEATS) in info.value.msg


@pytest.mark.parametrize("name", ["fif", "FIF", "Fif", "fIf"])
def test_names_are_case_insensitive(name: str) -> None:
    assert parse_iip_query([(name, "a.fits")]).fif == "a.fits"


def test_case_insensitive_everywhere() -> None:
    request = parse(
        "fif=a.fits[1]&info&OBJ=IIP,1.0&jtl=2,3&chan=2&minmax=2:0,1&mix=1:1,0,0&cmp=Hot"
        "&inv&brt=1&cnt=2&gam=3&qlt=4&rgn=1,2:3,4&bin=2&val=5,6&pfl=7,8:9,10"
    )
    assert request == IIPRequest(
        fif="a.fits",
        extnum=1,
        info=True,
        obj=True,
        tile=(2, 3),
        channels=(2,),
        minmax=((2, 0.0, 1.0),),
        mix=((1, 1.0, 0.0, 0.0),),
        colormap="hot",
        invert=True,
        brightness=1.0,
        contrast=2.0,
        gamma=3.0,
        quality=4,
        region=((1, 2), (3, 4)),
        binning=2,
        value=(5, 6),
        profile=((7, 8), (9, 10)),
    )


def test_error_location_is_canonical_whatever_the_case() -> None:
    with pytest.raises(BadParameterError) as info:
        parse("jtl=x")
    assert info.value.loc == ("query", "JTL")
    with pytest.raises(BadParameterError) as info:
        parse("Obj=x&chan=0")
    assert info.value.loc == ("query", "CHAN")


@pytest.mark.parametrize(
    ("query", "field", "expected"),
    [
        ("FIF=a.fits&FIF=b.fits[3]", "fif", "b.fits"),
        ("FIF=a.fits[2]&FIF=b.fits", "extnum", None),
        ("JTL=1,2&jtl=3,4", "tile", (3, 4)),
        ("CMP=jet&cmp=cool", "colormap", "cool"),
        ("GAM=1&GAM=2", "gamma", 2.0),
        ("QLT=10&QLT=20", "quality", 20),
        ("BIN=4&BIN=2", "binning", 2),
        ("VAL=1,1&VAL=2,2", "value", (2, 2)),
    ],
)
def test_last_value_wins(query: str, field: str, expected: object) -> None:
    assert getattr(parse(query), field) == expected


def test_earlier_bad_value_is_still_refused() -> None:
    with pytest.raises(BadParameterError) as info:
        parse("QLT=999&QLT=90")
    assert info.value.loc == ("query", "QLT")


def test_unknown_parameters_are_ignored() -> None:
    request = parse("_=1712345678&FIF=a.fits&foo=bar&JTLX=1&&=x&CHAN2=0")
    assert request == IIPRequest(fif="a.fits")


def test_typical_visiomatic_tile_request() -> None:
    request = parse(
        "FIF=deep/field.fits&obj=IIP,1.0&GAM=2.2&CNT=1&BRT=0&QLT=95"
        "&MINMAX=1:-0.5,120.25&CMP=grey&JTL=4,37"
    )
    assert request.fif == "deep/field.fits"
    assert request.tile == (4, 37)
    assert request.minmax == ((1, -0.5, 120.25),)
    assert request.channel is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.fits", ("a.fits", None)),
        ("dir/a.fits[2]", ("dir/a.fits", 2)),
        ("dir/a.fits[0]", ("dir/a.fits", 0)),
        ("a b[1]c.fits", ("a b[1]c.fits", None)),
        ("a.fits[1][2]", ("a.fits[1]", 2)),
        ("a.fits[", ("a.fits[", None)),  # only a trailing "]" announces an HDU number
    ],
)
def test_split_fif(value: str, expected: tuple[str, int | None]) -> None:
    assert split_fif(value) == expected


@pytest.mark.parametrize("value", ["", "a.fits[x]", "a.fits[-1]", "a.fits[1]]", "]", "[1]"])
def test_split_fif_errors(value: str) -> None:
    with pytest.raises(BadParameterError) as info:
        split_fif(value)
    assert info.value.loc == ("query", "FIF")
    assert info.value.msg == (
        "FIF must be an image name, optionally followed by '[N]' with N an HDU "
        f"number >= 0, got {value!r}"
    )


def test_split_fif_length() -> None:
    # Called alone (the viewer does), it checks the length itself.
    longest = "a" * (MAX_VALUE_LENGTH - 8) + ".fits[1]"
    assert split_fif(longest) == (longest[:-3], 1)
    with pytest.raises(BadParameterError) as info:
        split_fif(longest + "]")
    assert info.value.loc == ("query", "FIF")
    assert info.value.msg == (
        f"FIF must be at most {MAX_VALUE_LENGTH} characters long, got "
        f"{MAX_VALUE_LENGTH + 1} characters starting with 'aaaaaaaaaaaaaaaaaaaa'"
    )


NAMES = st.sampled_from(
    ["FIF", "info", "obj", "JTL", "chan", "MINMAX", "mix", "Cmp", "INV", "BRT", "CNT"]
    + ["GAM", "QLT", "RGN", "BIN", "VAL", "PFL", "_"]
)
VALUES = st.one_of(
    st.text(),
    st.text(alphabet="0123456789+-.,:eE []naif٣ ", max_size=30),
    st.sampled_from(["nan", "inf", "1e999", "1,2", "1:0,1", "1:1,0,0", "1,2:3,4", "a[1]"]),
)


@given(st.lists(st.tuples(st.one_of(NAMES, st.text()), VALUES), max_size=12))
def test_fuzz_only_bad_parameter_error(items: list[tuple[str, str]]) -> None:
    try:
        request = parse_iip_query(items)
    except BadParameterError as error:
        assert error.loc[0] == "query"
        assert error.msg
    else:
        assert isinstance(request, IIPRequest)
        assert request.colormap in ("grey", "jet", "cold", "cool", "hot")
        assert 1 <= request.binning <= 65536
        assert all(c >= 1 for c in request.channels)
