"""The Flask extension: ``FitsTiles(app=None).init_app(app)``.

Settings come from ``app.config`` keys prefixed ``FITSTILES_`` (read with
``setdefault``, so the app's config shows the values in use); a key missing
from the config is taken from the environment variable of the same name, else
from the built-in default. Keyword options given to :class:`FitsTiles`
(lower-case names without the prefix, e.g. ``data_dir=...``) override both for
that mount only, so one app can mount the service twice over two folders::

    FitsTiles(app, url_prefix="/survey", name="survey", data_dir="/data/survey")
    FitsTiles(app, url_prefix="/archive", name="archive", data_dir="/data/archive")

Everything is validated once, at :meth:`FitsTiles.init_app`; per-app state lives
in ``app.extensions["fitstiles"][name]`` as a :class:`FitsTilesState`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from .blueprint import make_blueprint
from .cli import register_cli
from .core.registry import ImageRegistry
from .tiled import get_cache_dir

__all__ = ["FitsTiles", "FitsTilesSettings", "FitsTilesState", "get_state"]

EXTENSION_KEY = "fitstiles"
CONFIG_PREFIX = "FITSTILES_"
DEFAULT_URL_PREFIX = "/fitstiles"


@dataclass(frozen=True, slots=True)
class FitsTilesSettings:
    """The validated settings of one mount of the service.

    Parameters
    ----------
    data_dir : pathlib.Path
        Folder of the served FITS images (FITSTILES_DATA_DIR).
    cache_dir : pathlib.Path
        Folder of the prepared images (FITSTILES_CACHE_DIR).
    tile_size : tuple[int, int]
        Tile width and height in pixels (FITSTILES_TILE_SIZE).
    brightness : float
        Default relative brightness, in [-100, 100].
    contrast : float
        Default relative contrast, in [0, 1000].
    color_saturation : float
        Default colour saturation, in [0, 100].
    gamma : float
        Default display gamma, in [0.2, 5].
    quality : int
        Default JPEG quality, in [0, 100].
    max_region_tiles : int
        Most tiles one region (RGN) request may cover.
    tile_cache_bytes : int
        Size bound of the per-process cache of encoded tiles (0: no cache).
    max_open_images : int
        Most images kept open per process.
    prepare_wait : float
        Seconds a request waits for another process preparing the same image.
    nthreads : int or None
        Compute threads for preparing an image (None: one per CPU).
    service_type : str
        ``type`` of the INFO answer (the VisiOmatic client wants ``visiomatic``).
    tile_max_age : int
        ``max-age`` of the ``Cache-Control`` header of tiles, in seconds.
    max_cached_images : int
        Most prepared images kept in the cache folder (0: no limit).
    viewer : bool
        Whether the viewer page (``viewer?FIF=...``) and its files are served
        (else they are a JSON 404), for sites that bring their own client.
    stats : bool
        Whether the ``stats`` endpoint answers (else it is a 404).
    index : bool
        Whether the index page (``GET <prefix>/``) answers (else it is a JSON
        404), for sites that bring their own client.
    secret_key : str or bytes or None
        Key that signs the prepared pickles (None: a random key kept in the
        cache folder); never shown in reprs or messages.
    """

    data_dir: Path
    cache_dir: Path
    tile_size: tuple[int, int]
    brightness: float
    contrast: float
    color_saturation: float
    gamma: float
    quality: int
    max_region_tiles: int
    tile_cache_bytes: int
    max_open_images: int
    prepare_wait: float
    nthreads: int | None
    service_type: str
    tile_max_age: int
    max_cached_images: int = 0
    viewer: bool = True
    stats: bool = True
    index: bool = True
    secret_key: str | bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class FitsTilesState:
    """What one mount keeps in ``app.extensions["fitstiles"][name]``.

    Parameters
    ----------
    name : str
        Name of the mount, also the name of its blueprint.
    url_prefix : str
        URL prefix of the endpoints ("" for the site root).
    settings : FitsTilesSettings
        Validated settings.
    registry : ImageRegistry
        The images of the data folder.
    """

    name: str
    url_prefix: str
    settings: FitsTilesSettings
    registry: ImageRegistry


# -- settings parsing --------------------------------------------------------------------


class _SettingError(ValueError):
    """A setting has a wrong type or value; the message says which and what is expected."""


def _number(value: Any, kind: type[int] | type[float], key: str, expected: str) -> float:
    if isinstance(value, bool):
        raise _SettingError(f"{key} must be {expected}, got {value!r}")
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise _SettingError(f"{key} must be {expected}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int if kind is int else (int, float)):
        raise _SettingError(f"{key} must be {expected}, got {value!r}")
    if not math.isfinite(value):
        raise _SettingError(f"{key} must be {expected}, got {value!r}")
    return value


def _int_in(low: int, high: float) -> Callable[[Any, str], int]:
    if math.isinf(high):
        expected = f"an integer >= {low}"
    else:
        expected = f"an integer in [{low}, {high}]"

    def parse(value: Any, key: str) -> int:
        number = int(_number(value, int, key, expected))
        if not low <= number <= high:
            raise _SettingError(f"{key} must be {expected}, got {value!r}")
        return number

    return parse


def _float_in(low: float, high: float) -> Callable[[Any, str], float]:
    if math.isinf(high):
        expected = f"a number >= {low:g}"
    else:
        expected = f"a number in [{low:g}, {high:g}]"

    def parse(value: Any, key: str) -> float:
        number = float(_number(value, float, key, expected))
        if not low <= number <= high:
            raise _SettingError(f"{key} must be {expected}, got {value!r}")
        return number

    return parse


def _tile_size(value: Any, key: str) -> tuple[int, int]:
    side = _int_in(16, 4096)
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise _SettingError(
                f"{key} must be one integer or [width, height], got {value!r}"
            )
        return side(value[0], key), side(value[1], key)
    size = side(value, key)
    return size, size


def _nthreads(value: Any, key: str) -> int | None:
    if value is None or value == "":
        return None
    return _int_in(0, 4096)(value, key) or None


def _service_type(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _SettingError(f"{key} must be a non-empty string, got {value!r}")
    return value.strip()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _SettingError(f"{key} must be true or false (or 1/0, yes/no), got {value!r}")


def _secret(value: Any, key: str) -> str | bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes):
        raise _SettingError(f"{key} must be a string (its value is not shown)")
    return value


def _signing_key(configured: str | bytes | None, app: Flask) -> str | bytes | None:
    """Return the pickle-signing key: FITSTILES_SECRET_KEY, else the app's SECRET_KEY.

    None leaves it to the random key kept in the cache folder. An app's
    SECRET_KEY must be the same in every worker (a key made at random in each
    worker would make them reject each other's pickles and prepare again).
    """
    if configured is not None:
        return configured
    secret = app.config.get("SECRET_KEY")
    return secret if isinstance(secret, str | bytes) and secret else None


def _folder(value: Any, key: str) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise _SettingError(f"{key} must be a folder path, got {value!r}")
    return Path(os.path.abspath(os.path.expanduser(os.fspath(value))))


# name -> (default, parser). Read-only; never mutated.
_SETTINGS: Mapping[str, tuple[Any, Callable[[Any, str], Any]]] = {
    "data_dir": (None, _folder),
    "cache_dir": (None, _folder),
    "tile_size": (256, _tile_size),
    "brightness": (0.0, _float_in(-100.0, 100.0)),
    "contrast": (1.0, _float_in(0.0, 1000.0)),
    "color_saturation": (1.5, _float_in(0.0, 100.0)),
    "gamma": (2.2, _float_in(0.2, 5.0)),
    "quality": (95, _int_in(0, 100)),
    "max_region_tiles": (1024, _int_in(1, math.inf)),
    "tile_cache_bytes": (256 << 20, _int_in(0, math.inf)),
    "max_open_images": (32, _int_in(1, math.inf)),
    "prepare_wait": (60.0, _float_in(0.0, 86400.0)),
    "nthreads": (None, _nthreads),
    "service_type": ("visiomatic", _service_type),
    "tile_max_age": (600, _int_in(0, math.inf)),
    "max_cached_images": (0, _int_in(0, math.inf)),
    "viewer": (True, _flag),
    "stats": (True, _flag),
    "index": (True, _flag),
    "secret_key": (None, _secret),
}


def _read_settings(config: Any, options: Mapping[str, Any]) -> FitsTilesSettings:
    """Merge options, app config, environment and defaults, and validate them."""
    values: dict[str, Any] = {}
    for name, (default, parse) in _SETTINGS.items():
        key = CONFIG_PREFIX + name.upper()
        if name in options:
            raw = options[name]
        else:
            raw = config.setdefault(key, os.environ.get(key, default))
        try:
            values[name] = parse(raw, key)
        except _SettingError as error:
            source = f"the {name}= option" if name in options else f"app.config[{key!r}]"
            raise ValueError(
                f"{error} (from {source}); fix the setting and restart"
            ) from None
    data_dir = values["data_dir"]
    if data_dir is None:
        raise ValueError(
            "FitsTiles needs a data folder: set app.config['FITSTILES_DATA_DIR'] (or the "
            "FITSTILES_DATA_DIR environment variable), or pass data_dir=... to FitsTiles"
        )
    if not data_dir.is_dir():
        raise ValueError(
            f"the FITSTILES_DATA_DIR folder {data_dir} does not exist or is not a folder; "
            "create it or point the setting at the folder of your FITS images"
        )
    try:
        values["cache_dir"] = Path(get_cache_dir(values["cache_dir"]))
    except OSError as error:
        raise ValueError(
            f"cannot create the FITSTILES_CACHE_DIR folder ({error}); "
            "point the setting at a writable folder"
        ) from None
    return FitsTilesSettings(**values)


def _normalize_prefix(url_prefix: str) -> str:
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    return prefix


# -- the extension -----------------------------------------------------------------------


class FitsTiles:
    """Flask extension that serves a folder of FITS images as IIP tiles and JSON.

    Parameters
    ----------
    app : flask.Flask, optional
        Application to set up now; otherwise call :meth:`init_app` later.
    url_prefix : str, optional
        Where the endpoints are mounted ("" for the site root); by default
        ``app.config["FITSTILES_URL_PREFIX"]``, else ``/fitstiles``.
    name : str, optional
        Name of this mount and of its blueprint; mounting the service twice in
        one app needs two names.
    **options
        Settings for this mount that override the app config: the lower-case
        names of the FITSTILES_* keys (``data_dir``, ``cache_dir``,
        ``tile_size``, ...).

    Raises
    ------
    TypeError
        If an option is not a known setting.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        url_prefix: str | None = None,
        name: str = EXTENSION_KEY,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(_SETTINGS))
        if unknown:
            raise TypeError(
                f"unknown FitsTiles option(s) {', '.join(unknown)}; "
                f"the options are {', '.join(_SETTINGS)}"
            )
        if not name or "." in name:
            raise ValueError(f"name must be a non-empty name without dots, got {name!r}")
        self.name = name
        self.url_prefix = url_prefix
        self.options = dict(options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the settings, register the blueprint and the CLI on ``app``.

        Parameters
        ----------
        app : flask.Flask
            The application.

        Raises
        ------
        RuntimeError
            If a mount of the same name or at the same URL prefix is already
            registered on ``app``.
        ValueError
            If a setting is invalid or the data folder does not exist.
        """
        mounts: dict[str, FitsTilesState] = app.extensions.setdefault(EXTENSION_KEY, {})
        if self.name in mounts:
            raise RuntimeError(
                f"a FitsTiles extension named {self.name!r} is already registered on this "
                "app; to serve a second folder, create FitsTiles(name='another-name', "
                "url_prefix='/another-prefix', data_dir=...)"
            )
        if self.url_prefix is None:
            prefix = app.config.setdefault(
                CONFIG_PREFIX + "URL_PREFIX",
                os.environ.get(CONFIG_PREFIX + "URL_PREFIX", DEFAULT_URL_PREFIX),
            )
        else:
            prefix = self.url_prefix
        if not isinstance(prefix, str):
            raise ValueError(f"url_prefix must be a string, got {prefix!r}")
        prefix = _normalize_prefix(prefix)
        for other in mounts.values():
            if other.url_prefix == prefix:
                raise RuntimeError(
                    f"FitsTiles {other.name!r} is already mounted at url_prefix "
                    f"{prefix!r}; give FitsTiles {self.name!r} another url_prefix"
                )
        settings = _read_settings(app.config, self.options)
        registry = ImageRegistry(
            settings.data_dir,
            settings.cache_dir,
            tile_size=(settings.tile_size[1], settings.tile_size[0]),
            brightness=settings.brightness,
            contrast=settings.contrast,
            color_saturation=settings.color_saturation,
            gamma=settings.gamma,
            quality=settings.quality,
            max_region_tiles=settings.max_region_tiles,
            max_open_images=settings.max_open_images,
            tile_cache_bytes=settings.tile_cache_bytes,
            prepare_wait=settings.prepare_wait,
            nthreads=settings.nthreads,
            secret_key=_signing_key(settings.secret_key, app),
            max_cached_images=settings.max_cached_images,
        )
        app.register_blueprint(make_blueprint(self.name), url_prefix=prefix)
        mounts[self.name] = FitsTilesState(self.name, prefix, settings, registry)
        register_cli(app)

    def get_state(self, app: Flask | None = None) -> FitsTilesState:
        """Return this mount's state on ``app`` (default: the current app).

        Parameters
        ----------
        app : flask.Flask, optional
            Application; the current one by default.

        Returns
        -------
        state : FitsTilesState
            Settings and registry of this mount.
        """
        return get_state(self.name, app)


def get_state(name: str = EXTENSION_KEY, app: Flask | None = None) -> FitsTilesState:
    """Return the state of the FitsTiles mount ``name`` on ``app``.

    Parameters
    ----------
    name : str, optional
        Name of the mount.
    app : flask.Flask, optional
        Application; the current one by default.

    Returns
    -------
    state : FitsTilesState
        Settings and registry of the mount.

    Raises
    ------
    RuntimeError
        If no such mount is registered on the app.
    """
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    mounts = app.extensions.get(EXTENSION_KEY, {})
    try:
        state: FitsTilesState = mounts[name]
    except KeyError:
        raise RuntimeError(
            f"no FitsTiles extension named {name!r} on app {app.name!r}; "
            "did you call init_app?"
        ) from None
    return state
