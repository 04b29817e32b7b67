"""Calibration app for ``run.py``: bare Flask answering a fixed 32 KiB JPEG-sized body.

Run under gunicorn with the example app's settings, it measures what the HTTP
stack alone (gunicorn, Flask, the loopback, wrk) costs per request on this
machine right now: the ceiling of any tile throughput.
"""

from __future__ import annotations

from flask import Flask, Response

BODY = bytes(range(256)) * 128  # 32 KiB, about one tile


def create_app() -> Flask:
    """Return a Flask app whose ``/iip`` answers ``BODY`` to any query."""
    app = Flask(__name__)

    @app.get("/iip")
    def iip() -> Response:
        return Response(BODY, mimetype="image/jpeg")

    return app
