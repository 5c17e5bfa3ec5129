"""The status page as a person sees it, in Debian's Chromium, fed by synthetic events."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect

from streamer.events import Outcome, StreamLabels
from streamer.sinks.status import StatusStore
from streamer.web.status import StatusSettings, add_status_routes
from tests.support.aio import serve_local
from tests.support.browser import chromium, open_page
from tests.support.status_events import (
    ALPHA,
    BETA,
    check_failed,
    ended,
    play_session,
    play_webrtc_beside,
    segment,
    started,
)

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GAMMA = StreamLabels("gamma", "us-west", "us-west")
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HOSTILE_RENDITION = "<img src=x onerror=window.__pwned=3>"


def feed_history(store: StatusStore) -> None:
    """alpha: three finished sessions and one playing; beta: failed; gamma: not started."""
    now = time.time()
    t = now - 1500
    outcomes: tuple[Outcome, ...] = ("success", "failure", "success")
    for i, outcome in enumerate(outcomes):
        end = play_session(store, ALPHA, f"alpha-{i}", t, seconds=240, end=None)
        if outcome == "failure":
            store.handle(check_failed(ALPHA, f"alpha-{i}", end - 30, kind="segment_latency"))
        kinds = ("segment_latency",) if outcome == "failure" else ()
        store.handle(ended(ALPHA, f"alpha-{i}", end, outcome, 2.2, kinds))
        t = end + 60
    play_session(store, ALPHA, "alpha-live", now - 300, seconds=299, end=None, base_latency=3.5)
    play_webrtc_beside(store, ALPHA, "alpha-live", now - 300, seconds=299)

    store.handle(started(BETA, "beta-1", now - 100))
    store.handle(segment(BETA, "beta-1", now - 90, 4.0, rendition=HOSTILE_RENDITION))
    store.handle(check_failed(BETA, "beta-1", now - 80, kind="startup", detail=HOSTILE))
    store.handle(ended(BETA, "beta-1", now - 70, "failure", None, ("startup",)))
    store.register_stream(GAMMA)


@pytest.fixture
async def page_and_store() -> AsyncIterator[tuple[Page, StatusStore, list[str]]]:
    store = StatusStore()
    feed_history(store)
    app = web.Application()
    add_status_routes(app, store)
    problems: list[str] = []
    async with serve_local(app) as server, chromium() as browser:
        page = await open_page(browser, server.url("/"), problems=problems)
        yield page, store, problems


def row(page: Page, stream: str) -> Locator:
    return page.locator(f'#streams tbody tr[data-stream="{stream}"]')


async def test_status_page_shows_streams_sessions_chart_and_live_updates(
    page_and_store: tuple[Page, StatusStore, list[str]],
) -> None:
    page, store, problems = page_and_store

    # the streams table: every stream, its state and regions
    await expect(page.locator("#streams tbody tr")).to_have_count(3)
    await expect(row(page, "alpha").locator(".badge").first).to_have_text("playing")
    await expect(row(page, "beta").locator(".badge").first).to_have_text("failed")
    await expect(row(page, "gamma").locator(".badge").first).to_have_text("idle")
    await expect(row(page, "alpha")).to_contain_text("eu-west")
    await expect(row(page, "alpha")).to_contain_text("us-east")
    await expect(row(page, "alpha").locator("td").nth(4)).to_have_text(
        re.compile(r"running 5m \d\ds")
    )
    await expect(row(page, "beta")).to_contain_text("failure")

    # alpha's detail (the first stream is selected): sessions, renditions, chart
    await expect(page.locator("#detail-name")).to_have_text("alpha")
    sessions = page.locator("#sessions tbody tr")
    await expect(sessions).to_have_count(4)
    await expect(sessions.nth(0).locator(".badge")).to_have_text("running")
    await expect(sessions.nth(2).locator(".badge")).to_have_text("failure")
    await expect(sessions.nth(2)).to_contain_text("segment_latency")
    await expect(sessions.nth(1)).to_contain_text("2.20 s")
    renditions = page.locator("#renditions tbody tr")
    await expect(renditions).to_have_count(2)
    await expect(renditions.nth(0)).to_contain_text("640x360")
    await expect(renditions.nth(0)).to_contain_text("avc1.64001e, mp4a.40.2 (h264)")
    # WebRTC next to HLS: per-protocol latency (per frame for WebRTC) and freezes.
    hls = page.locator('#protocols tbody tr[data-protocol="hls"]')
    webrtc = page.locator('#protocols tbody tr[data-protocol="webrtc"]')
    await expect(webrtc.locator("td").nth(2)).to_have_text("70 ms per frame")
    await expect(webrtc.locator("td").nth(4)).to_have_text("1")
    await expect(webrtc.locator("td").nth(5)).to_have_text("0.80 s")
    await expect(webrtc.locator("td").nth(6)).to_have_text("0.04 s")
    await expect(hls.locator("td").nth(2)).to_contain_text("per segment")
    await expect(hls.locator("td").nth(4)).to_have_text("0")

    await page.wait_for_function("() => window.__charts && window.__charts.latency")
    chart = await page.evaluate(
        """() => {
            const u = window.__charts.latency;
            return {
                labels: u.series.slice(1).map((s) => s.label),
                points: u.data.slice(1).map((d) => d.filter((v) => v !== null).length),
                xs: u.data[0].length,
                canvas: document.querySelectorAll("#chart canvas").length,
            };
        }"""
    )
    assert chart["labels"] == ["360p mean", "360p max", "144p mean", "144p max"]
    # 3 finished sessions of 4 min and a 5 min one, inside the hour: ~17 min of 10 s buckets
    assert chart["xs"] >= 90
    assert all(n >= 90 for n in chart["points"]), chart
    assert chart["canvas"] == 1
    # The x-axis spans the data (25 min, from the first point to now), not the whole hour.
    x = await chart_x(page)
    assert x["max"] == pytest.approx(time.time(), abs=30)
    assert x["max"] - x["min"] == pytest.approx(1500, abs=30)
    assert x["first_at"] < 0.02 and x["last_at"] > 0.95, x

    # the page follows the store without a reload
    await page.evaluate("() => { window.__marker = 'no reload' }")
    refreshes = await page.evaluate("() => window.__status.refreshes")
    store.handle(ended(ALPHA, "alpha-live", time.time(), "failure", 2.4, ("stall",)))
    await expect(row(page, "alpha").locator(".badge").first).to_have_text("failed")
    await expect(page.locator("#detail-state")).to_have_text("failed")
    await expect(sessions.nth(0).locator(".badge")).to_have_text("failure")
    await expect(sessions.nth(0)).to_contain_text("stall")
    await expect(row(page, "alpha")).to_contain_text("ended")
    assert await page.evaluate("() => window.__marker") == "no reload"
    assert await page.evaluate("() => window.__status.refreshes") > refreshes

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
    assert problems == []


async def chart_x(page: Page) -> dict[str, Any]:
    """uPlot's x scale, and where the first and last points sit (0: left edge, 1: right)."""
    result: dict[str, Any] = await page.evaluate(
        """() => {
            const u = window.__charts.latency;
            const xs = u.data[0];
            const width = u.bbox.width / devicePixelRatio;
            const at = (t) => u.valToPos(t, "x") / width;
            return {
                min: u.scales.x.min,
                max: u.scales.x.max,
                first_at: at(xs[0]),
                last_at: at(xs[xs.length - 1]),
                // uPlot draws the axis on the canvas; these are the tick labels it drew.
                labels: u.axes[0]._values,
            };
        }"""
    )
    return result


@pytest.mark.parametrize(
    ("minutes", "span_minutes"),
    [(2, 5), (12, 12), (75, 60)],
    ids=["two-minutes", "twelve-minutes", "more-than-the-hour"],
)
async def test_chart_x_axis_follows_the_data(minutes: int, span_minutes: int) -> None:
    """A few minutes of data fill the chart instead of its right edge: from the first point
    to now, at least 5 minutes wide, at most the hour."""
    store = StatusStore()
    now = time.time()
    play_session(store, ALPHA, "live", now - minutes * 60, seconds=minutes * 60 - 1, end=None)
    app = web.Application()
    add_status_routes(app, store)
    problems: list[str] = []
    async with serve_local(app) as server, chromium() as browser:
        page = await open_page(browser, server.url("/"), problems=problems)
        await page.wait_for_function("() => window.__charts && window.__charts.latency")
        x = await chart_x(page)
        assert x["max"] == pytest.approx(now, abs=30)
        assert x["max"] - x["min"] == pytest.approx(span_minutes * 60, abs=25), x
        assert x["last_at"] > 0.95, x  # now is at the right edge
        if minutes >= 5:
            assert x["first_at"] < 0.03, x  # the data start at the left edge
        else:
            # Less than the minimum span: the data take their share, right-aligned.
            assert x["first_at"] == pytest.approx(1 - minutes / span_minutes, abs=0.05), x
        # Readable ticks: several 24-hour clock times (as elsewhere on the page), none repeated.
        labels = x["labels"]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), x
        assert all(re.fullmatch(r"\d{2}:\d{2}", t) for t in labels), labels
        heading = "last hour" if span_minutes == 60 else f"last {span_minutes} min"
        await expect(page.locator(".chart-box h3")).to_have_text(f"Segment latency, {heading}")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator("#detail").screenshot(
            path=str(ARTIFACTS / f"status-chart-{minutes}min.png")
        )
    assert problems == []


async def test_page_polls_when_the_live_feed_is_full() -> None:
    store = StatusStore()
    feed_history(store)
    app = web.Application()
    add_status_routes(app, store, StatusSettings(max_sse_clients=1))
    async with serve_local(app) as server, chromium() as browser:
        first = await open_page(browser, server.url("/"))
        await expect(first.locator("#feed")).to_have_attribute("data-state", "live")
        second = await open_page(browser, server.url("/"))
        # Refused with 503: the second page says so, shows everything, and polls.
        await expect(second.locator("#feed")).to_have_attribute("data-state", "polling")
        await expect(second.locator("#feed")).to_have_text("refreshing every 30 s")
        await expect(second.locator("#streams tbody tr")).to_have_count(3)
        await expect(second.locator("#detail-name")).to_have_text("alpha")
        await expect(first.locator("#feed")).to_have_attribute("data-state", "live")


async def test_hostile_text_is_shown_literally_and_never_runs(
    page_and_store: tuple[Page, StatusStore, list[str]],
) -> None:
    page, _, problems = page_and_store
    await row(page, "beta").locator("a").click()
    await expect(page.locator("#detail-name")).to_have_text("beta")

    errors = page.locator("#errors tbody tr")
    await expect(errors).to_have_count(1)
    await expect(errors.nth(0).locator("td").nth(3)).to_have_text(HOSTILE)
    await expect(errors.nth(0).locator("td").nth(1)).to_have_text("startup")
    rendition = page.locator("#renditions tbody tr").nth(0).locator("td").nth(0)
    await expect(rendition).to_have_text(HOSTILE_RENDITION)
    await page.wait_for_function("() => window.__charts && window.__charts.latency")
    await expect(page.locator(".u-legend")).to_contain_text(HOSTILE_RENDITION + " mean")

    # nothing it carried became markup or ran
    assert await page.evaluate("() => window.__pwned") is None
    assert await page.locator("main img").count() == 0
    assert await page.locator("script").count() == 2  # uPlot and app.js
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "status-page-hostile.png"), full_page=True)
    assert problems == []
