"""The live dashboard in a real browser, against a real daemon and both real layers.

``lambda-rt serve`` runs as a subprocess on the test stack; the speed layer
runs in this process (its ``on_applied`` hook says when each micro-batch is in
Redis); Playwright drives Debian's Chromium. Checked: the page loads with no
console error and no failed request; each headline ``data-value`` equals the
sum of ``GET /query``'s rows for the same range and store (minute and hour)
and an independent pandas computation over the generated events; after more
events are produced the page shows the new exact totals within 2 s of the
speed layer applying them; a page whose stream is cut catches up when it
reconnects, without a reload; with ``serve.token`` set the page asks for the
token, sends it in a header and never in a URL; without the chart library
the chart panels say to run ``make install``. A screenshot is written on
every run (``test-artifacts/``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lambda_rt.testing import oracle_frame
from serving.client import daemon_file
from serving.spec import format_ts
from tests.dashboard.fixtures import (
    PageWatch,
    RunningDaemon,
    artifact_dir,
    chromium,
    start_daemon,
    stop_daemon,
)
from tests.serving.fixtures import generate, produce

MIN_MS = 60_000
TESTIDS = {
    "total-revenue": "revenue",
    "total-orders": "orders",
    "total-events": "events",
    "payment-failures": "payment_failures",
}


def _oracle_totals(
    values: list[bytes], now_ms: int, start_ms: int, end_ms: int, store: int | None
) -> dict[str, int]:
    """The four headline numbers by pandas over the raw events (independent of the engine)."""
    f = oracle_frame(values, now_ms=now_ms)
    f = f[(f["ts"] >= start_ms) & (f["ts"] < end_ms)]
    if store is not None:
        f = f[f["store_id"] == store]
    orders = f[f["event_type"] == "order_placed"]
    return {
        "revenue": int(orders["amount_cents"].astype("int64").sum()),
        "orders": len(orders),
        "events": len(f),
        "payment_failures": int(((f["event_type"] == "payment") & (f["status"] == "failed")).sum()),
    }


def _oracle_payments(values: list[bytes], now_ms: int, start_ms: int, end_ms: int) -> int:
    f = oracle_frame(values, now_ms=now_ms)
    return int(((f["ts"] >= start_ms) & (f["ts"] < end_ms) & (f["event_type"] == "payment")).sum())


def _api_totals(http: httpx.Client, start: str, end: str, store: int | None, gran: str) -> dict[str, int]:
    """The same numbers as the sum of ``GET /query``'s rows (what ``lambda-rt query`` prints)."""
    out = {}
    for metric in TESTIDS.values():
        doc = http.get(
            "/query",
            params={"metric": metric, "by": "store_id", "start": start, "end": end, "granularity": gran},
        ).json()
        out[metric] = sum(r["value"] for r in doc["rows"] if store is None or r["store_id"] == store)
    return out


def _page_values(page: Any) -> dict[str, int]:
    out = {}
    for testid, metric in TESTIDS.items():
        raw = page.get_attribute(f'[data-testid="{testid}"]', "data-value")
        assert raw not in (None, ""), f"{testid} has no data-value"
        out[metric] = int(raw)
    return out


@dataclass
class Applied:
    """Wall-clock times at which the in-process speed layer applied micro-batches."""

    times: list[float]

    def hook(self, _batch: Any) -> None:
        self.times.append(time.time())


def _speed(settings: Any, applied: Applied, idle_s: float) -> threading.Thread:
    from speed_layer.pipeline import run_speed

    t = threading.Thread(
        target=run_speed,
        args=(settings,),
        kwargs={"until_idle_s": idle_s, "handle_signals": False, "on_applied": applied.hook},
        daemon=True,
    )
    t.start()
    return t


def _wait(check: Any, timeout_s: float, what: str, every_s: float = 0.05) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if check():
            return time.time()
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def loaded(isolated: Any) -> Iterator[tuple[Any, RunningDaemon, list[bytes], int]]:
    """A daemon with an hour of events ingested, recomputed up to 30 minutes ago."""
    now_ms = int(time.time() * 1000)
    pairs = generate(4_000, now_ms - 60_000, 3_600_000, seed=5)
    env = dict(isolated.env)
    env.update({"LAMBDA_RT_DASK__PROCESSES": "false", "LAMBDA_RT_BATCH__ALLOWED_LATENESS_S": "1800"})
    daemon = start_daemon(env, daemon_file(isolated.settings))
    try:
        produce(isolated.settings, pairs)
        applied = Applied([])
        _speed(isolated.settings, applied, 5.0).join()
        with httpx.Client(base_url=daemon.url, timeout=300) as http:
            _wait(
                lambda: (
                    http.get("/status").json()["tiers"].get("events_hot", {}).get("rows", 0) >= len(pairs)
                ),
                120,
                "the daemon's ingest",
                every_s=0.5,
            )
            assert http.post("/jobs/recompute").json()["watermark"]
        yield isolated, daemon, [v for _, v in pairs], now_ms
    finally:
        stop_daemon(daemon)


def test_dashboard_shows_exact_live_totals(loaded: tuple[Any, RunningDaemon, list[bytes], int]) -> None:
    isolated, daemon, values, now_ms = loaded
    start_ms = now_ms // MIN_MS * MIN_MS - 90 * MIN_MS
    end_ms = now_ms // MIN_MS * MIN_MS + 10 * MIN_MS  # ahead of now: events produced later land in it
    start, end = format_ts(start_ms), format_ts(end_ms)
    http = httpx.Client(base_url=daemon.url, timeout=60)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        watch = PageWatch()
        watch.attach(page)
        # the numbers are in the page when the network goes idle (the live stream opens after)
        page.goto(f"{daemon.url}/dashboard?start={start}&end={end}", wait_until="networkidle", timeout=20_000)
        assert _page_values(page) == _oracle_totals(values, now_ms, start_ms, end_ms, None)
        page.wait_for_function(
            "window.lambdaDashboard && window.lambdaDashboard.connected && window.lambdaDashboard.chartsAt",
            timeout=15_000,
        )

        # 1. the headline equals the query API (minute and hour rows) and the oracle
        shown = _page_values(page)
        assert shown == _api_totals(http, start, end, None, "minute")
        assert shown == _oracle_totals(values, now_ms, start_ms, end_ms, None)
        payments = _oracle_payments(values, now_ms, start_ms, end_ms)
        rate = page.get_attribute('[data-testid="failure-rate"]', "data-ratio")
        assert rate is not None and float(rate) == shown["payment_failures"] / payments
        hour_start, hour_end = (
            format_ts(start_ms // 3_600_000 * 3_600_000),
            format_ts(-(-end_ms // 3_600_000) * 3_600_000),
        )
        assert _api_totals(http, hour_start, hour_end, None, "hour") == _oracle_totals(
            values, now_ms, start_ms // 3_600_000 * 3_600_000, -(-end_ms // 3_600_000) * 3_600_000, None
        )
        # both layers are on the page, and the watermark is drawn
        snap = page.evaluate("window.lambdaDashboard.last")
        assert {"batch", "speed"} <= set(snap["series"]["layer"]), snap["coverage"]
        assert snap["coverage"]["batch_through_ms"] is not None
        assert page.locator("#chart-revenue .shapelayer path").count() >= 1, "the watermark line is drawn"
        assert page.text_content('[data-testid="campaign-funnel"]').strip() == "no campaigns yet"
        assert page.text_content('[data-testid="alerts"]').strip() == "no alerts yet"

        # 2. a store filter applies to the headline
        store = snap["top_stores"][0]["store_id"]
        page_store = browser.new_page()
        page_store.goto(f"{daemon.url}/dashboard?start={start}&end={end}&store_id={store}")
        assert _page_values(page_store) == _api_totals(http, start, end, store, "minute")
        assert _page_values(page_store) == _oracle_totals(values, now_ms, start_ms, end_ms, store)
        page_store.close()

        # 3. more events: the page shows the new exact totals within 2 s of the speed layer applying them
        applied = Applied([])
        speed = _speed(isolated.settings, applied, 12.0)
        time.sleep(4.0)  # the consumer group joins
        t_now = int(time.time() * 1000)
        more = generate(500, t_now, 20_000, seed=6)
        produce(isolated.settings, more)
        values2 = values + [v for _, v in more]
        expected = _oracle_totals(values2, t_now, start_ms, end_ms, None)
        assert expected["events"] > shown["events"]
        changed_at = _wait(lambda: _page_values(page) == expected, 30, f"the page to show {expected}")
        assert applied.times, "the speed layer applied the new events"
        delay = changed_at - applied.times[-1]
        assert delay <= 2.0, f"the page changed {delay:.2f} s after the speed layer applied the events"
        assert _page_values(page) == _api_totals(http, start, end, None, "minute")
        load_errors = list(watch.errors), list(watch.failed)
        assert load_errors == ([], []), load_errors

        # 4. the stream is cut and new events arrive meanwhile: the page catches up on reconnecting
        page.route("**/dashboard/api/stream*", lambda route: route.abort())
        page.evaluate("window.lambdaDashboard.reconnect()")
        page.wait_for_function("!window.lambdaDashboard.connected", timeout=5_000)
        t_now = int(time.time() * 1000)
        extra = generate(300, t_now, 10_000, seed=7)
        produce(isolated.settings, extra)
        expected3 = _oracle_totals(values2 + [v for _, v in extra], t_now, start_ms, end_ms, None)
        _wait(lambda: _api_totals(http, start, end, None, "minute") == expected3, 20, "the speed layer")
        assert _page_values(page) == expected, "no stream, no update"
        page.unroute("**/dashboard/api/stream*")
        _wait(lambda: _page_values(page) == expected3, 10, "the reconnected page to catch up")
        page.screenshot(path=str(artifact_dir() / "dashboard.png"), full_page=True)
        speed.join(timeout=60)
        page.close()
    http.close()


def test_with_a_token_the_page_asks_for_it_and_keeps_it_out_of_urls(isolated: Any) -> None:
    token = "dash-test-token-5c1e"
    env = {**isolated.env, "LAMBDA_RT_SERVE__TOKEN": token}
    daemon = start_daemon(env, daemon_file(isolated.settings))
    try:
        anonymous = httpx.get(f"{daemon.url}/dashboard/api/snapshot", timeout=30)
        assert anonymous.status_code == 401
        html = httpx.get(f"{daemon.url}/dashboard", timeout=30)
        assert html.status_code == 200 and 'data-value=""' in html.text, "no data in the page without a token"
        with chromium() as browser:
            page = browser.new_page()
            watch = PageWatch()
            watch.attach(page)
            page.goto(f"{daemon.url}/dashboard")
            page.wait_for_selector("#token-form:not([hidden])", timeout=10_000)
            page.fill("#token", "wrong")
            page.click("#token-form button")
            page.wait_for_function("document.getElementById('token-note').textContent.includes('refused')")
            page.fill("#token", token)
            page.click("#token-form button")
            page.wait_for_function("window.lambdaDashboard.connected", timeout=15_000)
            assert page.get_attribute('[data-testid="total-events"]', "data-value") == "0"
            # no speed layer ever ran on this slice: the speed range is a hole, drawn as one, never as 0
            snap = page.evaluate("window.lambdaDashboard.last")
            assert set(snap["series"]["layer"]) == {"hole"} and set(snap["series"]["revenue"]) == {None}
            assert page.get_attribute("#complete-flag", "data-complete") == "false"
            assert "hole" in page.text_content('[data-testid="coverage"]')
            # kept for the session: a reload does not ask again
            page.reload()
            page.wait_for_function("window.lambdaDashboard.connected", timeout=15_000)
            assert page.is_hidden("#token-form")
            assert not [u for u in watch.urls if token in u], "the token must never be in a URL"
            # without the chart library (node_modules/ not installed) the chart panels say what to run
            bare = browser.new_page()
            bare.route("**/dashboard/static/plotly-basic-*", lambda route: route.fulfill(status=404))
            bare.goto(f"{daemon.url}/dashboard")
            bare.wait_for_function("window.lambdaDashboard.chartsMissing === true", timeout=10_000)
            assert bare.locator(".chart .empty").count() == 4
            assert "make install" in bare.text_content("#chart-revenue")
            bare.close()
            # SIGTERM with a dashboard connected: its stream ends, the daemon stops cleanly and soon
            t0 = time.monotonic()
            stop_daemon(daemon)
            assert time.monotonic() - t0 < 15, "an open dashboard stream held the daemon's stop"
            page.close()
    finally:
        if daemon.proc.poll() is None:
            stop_daemon(daemon)
