"""The example app, with the preparation of images stalled at a chosen stage.

For the crash tests: with ``FITSTILES_TEST_STALL`` set to ``frame``, ``levels`` or
``pickle``, a worker that prepares an image writes that file under its temporary
name (the frame and the levels complete but with garbage at their start, so
that using them would show), creates the file named by
``FITSTILES_TEST_STALL_FLAG`` and sleeps, waiting to be killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flask import Flask

from example_app import create_app as create_example_app
from flask_fitstiles import tiled
from flask_fitstiles.core import pyramid

GARBAGE = b"\x7f\x7f\x7f\x7f" * 4096


def _stall() -> None:
    Path(os.environ["FITSTILES_TEST_STALL_FLAG"]).touch()
    time.sleep(600)


def _install(stage: str) -> None:
    if stage == "frame":
        write_frame = tiled.write_frame

        def stalled_frame(images: Any, shape: Any, fd: int, *args: Any, **kw: Any) -> Any:
            write_frame(images, shape, fd, *args, **kw)
            os.pwrite(fd, GARBAGE, 0)
            _stall()

        tiled.write_frame = stalled_frame  # type: ignore[assignment]
    elif stage == "levels":
        build_levels = pyramid.build_levels

        def stalled_levels(data_fd: int, tiles_fd: int, *args: Any, **kw: Any) -> Any:
            build_levels(data_fd, tiles_fd, *args, **kw)
            os.pwrite(tiles_fd, GARBAGE, 0)
            _stall()

        pyramid.build_levels = stalled_levels  # type: ignore[assignment]
    elif stage == "pickle":
        dumps_signed = tiled.dumps_signed

        def stalled_pickle(obj: Any, key: bytes) -> bytes:
            dumps_signed(obj, key)
            _stall()
            raise AssertionError("unreachable")

        tiled.dumps_signed = stalled_pickle  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown stage {stage!r}")


def create_app() -> Flask:
    """Return the example app; preparations stall if FITSTILES_TEST_STALL says so."""
    stage = os.environ.get("FITSTILES_TEST_STALL")
    if stage:
        _install(stage)
    return create_example_app()
