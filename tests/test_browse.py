"""The listing query (dir, limit, cursor) and its opaque cursors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_fitstiles.browse import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ListingQuery,
    decode_cursor,
    encode_cursor,
    parse_listing_query,
)
from flask_fitstiles.core.listing import FOLDER, IMAGE
from flask_fitstiles.errors import BadParameterError

names = st.text(min_size=1, max_size=80).filter(lambda n: "/" not in n and "\0" not in n)


@given(folder=st.text(max_size=80), kind=st.sampled_from([FOLDER, IMAGE]), name=names)
def test_cursor_round_trip(folder: str, kind: int, name: str) -> None:
    cursor = encode_cursor(folder, (kind, name))
    assert cursor.isascii() and set(cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert decode_cursor(folder, cursor) == (kind, name)


@given(st.text(max_size=200))
def test_any_string_is_a_cursor_or_a_400(text: str) -> None:
    try:
        decode_cursor("", text)
    except BadParameterError as error:
        assert error.loc == ("query", "cursor") and error.status == 400


def test_query_defaults_and_paged_flag() -> None:
    assert parse_listing_query([]) == ListingQuery("", DEFAULT_LIMIT, None, False)
    assert parse_listing_query([("_", "123"), ("DIR", "x")]).paged is False
    assert parse_listing_query([("dir", "")]).paged is True
    query = parse_listing_query([("dir", "a/b"), ("limit", str(MAX_LIMIT))])
    assert query == ListingQuery("a/b", MAX_LIMIT, None, True)
    cursor = encode_cursor("a", (IMAGE, "x.fits"))
    assert parse_listing_query([("dir", "a"), ("cursor", cursor)]).after == (
        IMAGE,
        "x.fits",
    )


@pytest.mark.parametrize(
    ("items", "where"),
    [
        ([("dir", ".."), ("dir", "ok")], "dir"),  # every value is checked
        ([("limit", "5"), ("limit", "0")], "limit"),
        ([("dir", "x" * 1001)], "dir"),
        ([("cursor", encode_cursor("a", (IMAGE, "x.fits")))], "cursor"),  # other folder
    ],
)
def test_query_errors(items: list[tuple[str, str]], where: str) -> None:
    with pytest.raises(BadParameterError) as error:
        parse_listing_query(items)
    assert error.value.loc == ("query", where)
