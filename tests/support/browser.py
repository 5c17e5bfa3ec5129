"""Look at pages with Debian's Chromium via Playwright.

    async with serve_local(app) as server, chromium() as browser:
        problems: list[str] = []
        page = await open_page(browser, server.url("/"), problems=problems)

No browser is downloaded: Playwright drives the `chromium` found on PATH.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# WebRTC on loopback: Chromium gathers 127.0.0.1 and shows its addresses, not mDNS names.
WEBRTC_LOOPBACK_ARGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@asynccontextmanager
async def chromium(extra_args: list[str] | None = None) -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("the chromium package is not installed")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS + (extra_args or []), headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(
    browser: Browser,
    url: str,
    *,
    width: int = 1400,
    height: int = 1000,
    problems: list[str] | None = None,
) -> Page:
    """A new page (own context) at `url`, loaded.

    With `problems`, console errors and uncaught exceptions (including Content-Security-Policy
    violations) are appended to it as they happen.
    """
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    if problems is not None:

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                problems.append(f"console {message.type}: {message.text}")

        def on_error(error: Error) -> None:
            problems.append(f"page error: {error}")

        page.on("console", on_console)
        page.on("pageerror", on_error)
    await page.goto(url, wait_until="load")
    return page
