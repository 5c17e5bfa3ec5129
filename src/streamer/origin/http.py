"""Serves the HLS output: /hls/<key>/index.m3u8 (master), /hls/<key>/<rendition>/...; and
the LL-HLS output beside it, /hls/<key>/ll/index.m3u8, with blocking playlist reloads and
preload-hinted parts held until they exist (origin/llhls_http.py)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from streamer.origin.llhls import DELTA_PLAYLIST, PLAYLIST
from streamer.origin.llhls_http import BlockingRequestError, LiveUpdates, error_response

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
}
# One path component: no "..", no hidden or temp files (".tmp" is not a served suffix).
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HEADERS = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
ROOT = web.AppKey("root", Path)
UPDATES = web.AppKey("updates", LiveUpdates)


def hls_app(root: Path, updates: LiveUpdates | None = None) -> web.Application:
    app = web.Application()
    app[ROOT] = root
    if updates is not None:
        app[UPDATES] = updates
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
    path = request.app[ROOT].joinpath(*parts)
    updates = request.app.get(UPDATES)
    if updates is not None and updates.state(path.parent) is not None:
        try:
            path = await _live(updates, path, request)
        except BlockingRequestError as exc:
            return error_response(exc, _HEADERS)
    try:
        # Whole-file reads: playlists and segments are small, are renamed into place
        # complete, and may be deleted at any moment (delete_segments).
        body = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise web.HTTPNotFound(headers=_HEADERS) from None
    return web.Response(body=body, content_type=content_type, headers=_HEADERS)


async def _live(updates: LiveUpdates, path: Path, request: web.Request) -> Path:
    """The file to answer with from a live LL-HLS rendition, once it may be answered."""
    if path.name == PLAYLIST:
        await updates.hold_playlist(path.parent, request.query)
        if request.query.get("_HLS_skip") in ("YES", "v2"):
            return path.with_name(DELTA_PLAYLIST)
    elif path.suffix == ".m4s":
        await updates.hold_part(path.parent, path.name)  # when it is the hinted part
    return path
