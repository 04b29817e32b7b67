"""``flask fitstiles ...`` commands: list the images, prepare them ahead of time.

Preparing ahead of time (e.g. in a deployment script, before gunicorn starts)
means that no visitor ever waits for an image to be prepared::

    flask --app example_app:create_app fitstiles prepare
    flask --app example_app:create_app fitstiles list
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .errors import FitsTilesError
from .iip import split_fif

if TYPE_CHECKING:
    from .extension import FitsTilesState

__all__ = ["register_cli"]

fitstiles_cli = AppGroup("fitstiles", help="Serve FITS images as tiles: list, prepare.")


def _mounts(mount: str | None) -> list[FitsTilesState]:
    """Return the FitsTiles mounts of the current app, or the one named ``mount``."""
    mounts: dict[str, FitsTilesState] = current_app.extensions.get("fitstiles", {})
    if not mounts:
        raise click.UsageError(
            "this app has no FitsTiles extension; did you call init_app?"
        )
    if mount is None:
        return list(mounts.values())
    if mount not in mounts:
        raise click.UsageError(
            f"no FitsTiles mount named {mount!r}; the mounts are {', '.join(mounts)}"
        )
    return [mounts[mount]]


_MOUNT_OPTION = click.option(
    "--mount",
    "-m",
    default=None,
    help="Name of the FitsTiles mount (default: every mount).",
)


@fitstiles_cli.command("list")
@_MOUNT_OPTION
def list_command(mount: str | None) -> None:
    """List the FITS images of the data folder(s) and whether they are prepared."""
    for state in _mounts(mount):
        images = state.registry.list_images()
        click.echo(
            f"{state.name} ({state.url_prefix or '/'}): {len(images)} image(s) "
            f"in {state.settings.data_dir}"
        )
        for image in images:
            status = "prepared" if image["prepared"] else "not prepared"
            click.echo(f"  {image['name']}  {image['size']} bytes  {status}")


@fitstiles_cli.command("prepare")
@click.argument("names", nargs=-1)
@_MOUNT_OPTION
def prepare_command(names: tuple[str, ...], mount: str | None) -> None:
    """Prepare images ahead of time (NAMES relative to the data folder; default: all).

    A name may end with [N] to prepare HDU N alone.
    """
    states = _mounts(mount)
    if names and len(states) > 1:
        raise click.UsageError(
            "this app has several FitsTiles mounts "
            f"({', '.join(state.name for state in states)}); choose one with --mount"
        )
    failed = 0
    for state in states:
        registry = state.registry
        wanted = names or tuple(image["name"] for image in registry.list_images())
        budget = registry.max_cached_images
        if budget and len(wanted) > budget:
            click.echo(
                f"{state.name}: the cache folder keeps at most {budget} prepared images "
                f"(FITSTILES_MAX_CACHED_IMAGES); preparing {len(wanted)} removes the least "
                "recently used ones again, and those are prepared again on demand",
                err=True,
            )
        for name in wanted:
            started = time.perf_counter()
            try:
                fif, extnum = split_fif(name)
                path = registry.resolve(fif)
                already = registry.is_prepared(path, extnum)
                tiled = registry.get(path, extnum)
            except FitsTilesError as error:
                failed += 1
                click.echo(f"{name}: {error.msg}", err=True)
                continue
            seconds = time.perf_counter() - started
            width, height = tiled.shape[2], tiled.shape[1]
            what = "already prepared" if already else f"prepared in {seconds:.2f} s"
            click.echo(
                f"{name}: {what} ({width} x {height}, {tiled.nchannels} channel(s), "
                f"{tiled.nlevels} levels)"
            )
    if failed:
        raise click.exceptions.Exit(1)


def register_cli(app: Flask) -> None:
    """Add the ``fitstiles`` command group to ``app`` (once, whatever the mounts).

    Parameters
    ----------
    app : flask.Flask
        The application.
    """
    if "fitstiles" not in app.cli.commands:
        app.cli.add_command(fitstiles_cli)
