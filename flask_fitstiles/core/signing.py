"""Signed pickles: a pickle in the cache folder is only unpickled if its HMAC verifies.

Unpickling runs arbitrary code, so a cache folder that someone else could write to
must not be trusted blindly. Every pickle carries an HMAC-SHA256 of its bytes; the
key comes from the caller (FITSTILES_SECRET_KEY or the app's SECRET_KEY), else from
a random key kept in the cache folder with mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pickle
import secrets
from typing import Any

__all__ = [
    "KEY_FILENAME",
    "dumps_signed",
    "find_secret_key",
    "get_secret_key",
    "loads_signed",
    "sign_text",
]

KEY_FILENAME = ".fitstiles-key"
_MAGIC = b"FITSTILES-PICKLE-1\n"
_DIGEST_SIZE = hashlib.sha256().digest_size
_KEY_BYTES = 32


def get_secret_key(cache_dir: str, secret_key: str | bytes | None = None) -> bytes:
    """Return the signing key.

    Parameters
    ----------
    cache_dir : str
        Cache folder, where a random key is kept when no key is given.
    secret_key : str or bytes, optional
        Explicit key; None means FITSTILES_SECRET_KEY from the environment,
        else the key file of the cache folder (created on first use).

    Returns
    -------
    key : bytes
        Key bytes.
    """
    explicit = _explicit_key(secret_key)
    if explicit is not None:
        return explicit
    path = os.path.join(cache_dir, KEY_FILENAME)
    try:
        key = _read_key_file(path)
        damaged = True
    except FileNotFoundError:
        damaged = False
    else:
        if key is not None:
            return key
    # No key file, or one too short to be one of ours (damaged, or written by
    # hand). A new key is written aside first. With no key file, it is linked into
    # place: of concurrent creators exactly one wins and every process reads that
    # one. A damaged file is replaced instead, so that pickles are never signed
    # with a weak key.
    aside = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if damaged:
            os.replace(aside, path)
        else:
            os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):  # gone if it replaced the file
            os.unlink(aside)
    with open(path, "rb") as f:
        return f.read()


def find_secret_key(cache_dir: str, secret_key: str | bytes | None = None) -> bytes | None:
    """Return the signing key if there is one already; never create it.

    Parameters
    ----------
    cache_dir : str
        Cache folder, where a random key is kept when no key is given.
    secret_key : str or bytes, optional
        Explicit key; None means FITSTILES_SECRET_KEY from the environment,
        else the key file of the cache folder.

    Returns
    -------
    key : bytes or None
        Key bytes; None if no key is given and the cache folder has no key
        file yet (then nothing in it was signed).
    """
    explicit = _explicit_key(secret_key)
    if explicit is not None:
        return explicit
    try:
        return _read_key_file(os.path.join(cache_dir, KEY_FILENAME))
    except OSError:
        return None


def _explicit_key(secret_key: str | bytes | None) -> bytes | None:
    """Return the given key, else FITSTILES_SECRET_KEY, as bytes; None if neither."""
    if secret_key is None:
        secret_key = os.environ.get("FITSTILES_SECRET_KEY") or None
    if secret_key is None:
        return None
    return secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)


def _read_key_file(path: str) -> bytes | None:
    """Return the key in a key file, None if it is too short to be a key."""
    with open(path, "rb") as f:
        key = f.read()
    return key if len(key) >= _KEY_BYTES else None


def sign_text(text: str, key: bytes) -> str:
    """Return a short HMAC of a text (for small plain-text records such as stamps).

    Parameters
    ----------
    text : str
        The text.
    key : bytes
        Signing key.

    Returns
    -------
    mac : str
        32 hexadecimal digits (128 bits of HMAC-SHA256).
    """
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def dumps_signed(obj: Any, key: bytes) -> bytes:
    """Pickle an object and prefix the bytes with their HMAC.

    Parameters
    ----------
    obj : Any
        Object to pickle.
    key : bytes
        Signing key.

    Returns
    -------
    blob : bytes
        Magic line, HMAC-SHA256 digest, pickle.
    """
    payload = pickle.dumps(obj, protocol=5)
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return _MAGIC + digest + payload


def loads_signed(blob: bytes, key: bytes) -> Any:
    """Unpickle signed bytes, only if their HMAC verifies.

    Parameters
    ----------
    blob : bytes
        Bytes made by :func:`dumps_signed`.
    key : bytes
        Signing key.

    Returns
    -------
    obj : Any
        The unpickled object.

    Raises
    ------
    ValueError
        If the bytes are not a signed pickle or the signature does not verify
        (nothing is unpickled then).
    """
    if not blob.startswith(_MAGIC):
        raise ValueError("not a signed pickle")
    start = len(_MAGIC)
    digest = blob[start : start + _DIGEST_SIZE]
    payload = blob[start + _DIGEST_SIZE :]
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(digest, expected):
        raise ValueError("the pickle's signature does not verify")
    return pickle.loads(payload)
