"""Serves the HLS output: /hls/<key>/index.m3u8 (master), /hls/<key>/<rendition>/..."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}
# One path component: no "..", no hidden or temp files (".tmp" is not a served suffix).
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HEADERS = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
ROOT = web.AppKey("root", Path)


def hls_app(root: Path) -> web.Application:
    app = web.Application()
    app[ROOT] = root
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/hls/{path:.+}", _hls_file)
    return app


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={"Cache-Control": "no-cache"})


async def _hls_file(request: web.Request) -> web.Response:
    parts = request.match_info["path"].split("/")
    content_type = CONTENT_TYPES.get(Path(parts[-1]).suffix)
    if content_type is None or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise web.HTTPNotFound(headers=_HEADERS)
    root = request.app[ROOT]
    try:
        # Whole-file reads: playlists and segments are small, are renamed into place
        # complete, and may be deleted at any moment (delete_segments).
        body = root.joinpath(*parts).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise web.HTTPNotFound(headers=_HEADERS) from None
    return web.Response(body=body, content_type=content_type, headers=_HEADERS)
