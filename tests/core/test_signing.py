"""Signed pickles: only verified pickles are unpickled; key and folder modes."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from flask_fitstiles import tiled
from flask_fitstiles.core import signing
from flask_fitstiles.tiled import Tiled, pickledTiled


class Trap:
    """Unpickling this creates a marker file: proof that untrusted bytes ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_round_trip_and_tampering() -> None:
    key = b"k" * 32
    blob = signing.dumps_signed({"a": 1}, key)
    assert signing.loads_signed(blob, key) == {"a": 1}
    with pytest.raises(ValueError, match="^the pickle's signature does not verify$"):
        signing.loads_signed(blob, b"x" * 32)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ValueError, match="^the pickle's signature does not verify$"):
        signing.loads_signed(tampered, key)
    with pytest.raises(ValueError, match="^not a signed pickle$"):
        signing.loads_signed(pickle.dumps({"a": 1}), key)


def test_key_file_and_folder_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FITSTILES_SECRET_KEY", raising=False)
    folder = tiled.get_cache_dir(tmp_path / "new-cache")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    key = signing.get_secret_key(folder)
    assert len(key) == 32
    path = Path(folder) / signing.KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.get_secret_key(folder) == key  # kept, not made anew
    # Reading the key writes nothing (a read-only cache folder works).
    with monkeypatch.context() as patch:
        patch.setattr(os, "open", lambda *args, **kwargs: pytest.fail("wrote a file"))
        assert signing.get_secret_key(folder) == key
    assert signing.get_secret_key(folder, "explicit") == b"explicit"
    monkeypatch.setenv("FITSTILES_SECRET_KEY", "from-env")
    assert signing.get_secret_key(folder) == b"from-env"


@pytest.mark.parametrize("content", [b"", b"short", b"k" * 31])
def test_damaged_key_file_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    monkeypatch.delenv("FITSTILES_SECRET_KEY", raising=False)
    folder = tiled.get_cache_dir(tmp_path / "cache")
    path = Path(folder) / signing.KEY_FILENAME
    path.write_bytes(content)
    key = signing.get_secret_key(folder)
    assert len(key) == 32 and key != content
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.get_secret_key(folder) == key
    assert [p.name for p in Path(folder).iterdir()] == [signing.KEY_FILENAME]


def test_of_two_first_creators_the_first_key_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process creates the key file between our look and our link: its
    # key is the one, and ours is dropped (every process must sign alike).
    monkeypatch.delenv("FITSTILES_SECRET_KEY", raising=False)
    folder = tiled.get_cache_dir(tmp_path / "cache")
    path = Path(folder) / signing.KEY_FILENAME
    theirs = b"t" * 32
    real_open = os.open

    def open_after_the_other(name: str, *args: object, **kwargs: object) -> int:
        if ".tmp-" in str(name) and not path.exists():
            path.write_bytes(theirs)
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_after_the_other)
    assert signing.get_secret_key(folder) == theirs
    assert path.read_bytes() == theirs
    assert [p.name for p in Path(folder).iterdir()] == [signing.KEY_FILENAME]


@pytest.mark.parametrize("forge", ["plain", "wrong-key"])
def test_unverified_pickle_is_never_unpickled(
    forge: str,
    prime_image: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FITSTILES_SECRET_KEY", raising=False)
    pickledTiled(prime_image, cache_dir=cache_dir)
    marker = tmp_path / "pwned"
    payload = Trap(str(marker))
    blob = (
        pickle.dumps(payload)
        if forge == "plain"
        else signing.dumps_signed(payload, b"attacker key, not the server's")
    )
    Path(tiled.get_object_filename(prime_image, cache_dir)).write_bytes(blob)
    built = []
    original = Tiled.make_tiles

    def counting(self: Tiled) -> None:
        built.append(1)
        original(self)

    monkeypatch.setattr(Tiled, "make_tiles", counting)
    again = pickledTiled(prime_image, cache_dir=cache_dir)
    assert not marker.exists()
    assert built == [1]  # prepared again instead
    assert again.get_pixel_values((1,), (1, 1)).values[0] is not None
    # The new pickle verifies: no third preparation.
    pickledTiled(prime_image, cache_dir=cache_dir)
    assert built == [1]


def test_key_change_means_preparing_again(
    prime_image: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pickledTiled(prime_image, cache_dir=cache_dir, secret_key="one")
    assert tiled.get_prepared(prime_image, cache_dir, secret_key="one") is not None
    assert tiled.get_prepared(prime_image, cache_dir, secret_key="two") is None
