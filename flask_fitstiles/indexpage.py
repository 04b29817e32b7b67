"""The index page: what the ``fitstiles/index.html`` template shows of a folder page.

Links are built for the mount that routes the request (its prefix, and the
script root of the site): folders link to their own listing, images to the
viewer (``<prefix>/viewer?FIF=<name>``), prepared images show their coarsest
tile as a thumbnail. Nothing here reads the disk: the page comes from the
registry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from flask import request, url_for

from .browse import DEFAULT_LIMIT, ListingQuery, encode_cursor
from .core.listing import FolderPage

__all__ = ["index_context"]


def index_context(
    query: ListingQuery, page: FolderPage, viewer_enabled: bool = True
) -> dict[str, Any]:
    """Return the labels and links of the index page of one page of a folder.

    Call it while handling the request (it builds URLs with ``url_for`` for the
    mount that routed the request).

    Parameters
    ----------
    query : ListingQuery
        The parsed query of the page.
    page : FolderPage
        The page of the folder.
    viewer_enabled : bool, optional
        Whether the mount serves the viewer (else names link to INFO).

    Returns
    -------
    context : dict
        The variables of the ``fitstiles/index.html`` template.
    """
    blueprint = request.blueprint
    index_url = url_for(f"{blueprint}.index")
    iip_url = url_for(f"{blueprint}.iip")
    # Names link to the viewer, or to the image's information where the site
    # turned the viewer off (FITSTILES_VIEWER).
    viewer_url = url_for(f"{blueprint}.viewer") if viewer_enabled else None
    # A limit the visitor chose follows them from page to page and folder to folder.
    extra = {"limit": str(query.limit)} if query.limit != DEFAULT_LIMIT else {}

    def listing(folder: str, **more: str) -> str:
        params = {**({"dir": folder} if folder else {}), **extra, **more}
        return f"{index_url}?{urlencode(params)}" if params else index_url

    def image_url(base: str, name: str, command: str) -> str:
        return f"{base}?FIF={quote(name, safe='/')}{command}"

    parts = page.dir.split("/") if page.dir else []
    crumbs = [{"label": "data folder", "url": listing("")}] + [
        {"label": part, "url": listing("/".join(parts[: i + 1]))}
        for i, part in enumerate(parts)
    ]
    images = [
        {
            "label": image.name.rpartition("/")[2],
            "size": _human_size(image.size),
            "prepared": image.prepared,
            "viewer_url": (
                image_url(viewer_url, image.name, "")
                if viewer_url
                else image_url(iip_url, image.name, "&INFO")
            ),
            "info_url": image_url(iip_url, image.name, "&INFO"),
            # The coarsest tile: only for prepared images, which it does not prepare.
            "thumb_url": (
                image_url(iip_url, image.name, "&JTL=0,0") if image.prepared else None
            ),
        }
        for image in page.images
    ]
    next_url = None
    if page.next_position is not None:
        next_url = listing(page.dir, cursor=encode_cursor(page.dir, page.next_position))
    return {
        "title": f"FITS images: {page.dir or 'data folder'}",
        "css_url": url_for(f"{blueprint}.static", filename="index.css"),
        # Else the browser asks the site for /favicon.ico, which it may not have.
        "icon_url": url_for(f"{blueprint}.static", filename="favicon.svg"),
        "crumbs": crumbs,
        "parent_url": listing(page.parent) if page.parent is not None else None,
        "folders": [
            {"label": name.rpartition("/")[2], "url": listing(name)}
            for name in page.folders
        ],
        "images": images,
        "first_url": listing(page.dir) if query.after is not None else None,
        "next_url": next_url,
        "iip_url": iip_url,
        "json_url": url_for(f"{blueprint}.images"),
    }


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
