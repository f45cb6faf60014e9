"""The dashboard's pure parts: URL ranges, bucket layers and holes, live rates, the page, the routes.

No service is needed: the app is built without an engine (as ``python -m
serving.app`` does), which the data routes answer with 503.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.dashboard.page import render_page
from serving.dashboard.snapshot import _layer_of, _series
from serving.dashboard.source import LiveSampler
from serving.dashboard.view_range import RangeKey, parse_range, resolve
from serving.errors import InvalidQueryError
from serving.result import Coverage, Hole, LayerRange, SpeedFreshness

MIN = 60_000


def test_a_range_is_aligned_to_whole_minutes() -> None:
    key = parse_range("2026-12-05T10:00:30Z", "2026-12-05T11:00:01Z", "7")
    assert key.start_ms % MIN == 0 and key.end_ms is not None and key.end_ms % MIN == 0
    vr = resolve(key)
    assert (vr.end_ms - vr.start_ms) == 61 * MIN and vr.store_id == 7 and vr.granularity == "minute"
    assert not vr.rolling


def test_the_default_is_the_last_hour_rolling_with_the_current_minute() -> None:
    key = parse_range(None, "", None)
    assert key == RangeKey(None, None, None) and key.rolling
    now = 1_800_000_000_123
    vr = resolve(key, now)
    assert vr.start_ms <= now - 59 * MIN and vr.start_ms > now - 61 * MIN
    assert vr.end_ms > now and vr.end_ms - vr.start_ms == 60 * MIN and vr.rolling


@pytest.mark.parametrize(
    ("span_h", "gran"), [(1, "minute"), (6, "minute"), (7, "hour"), (14 * 24, "hour"), (15 * 24, "day")]
)
def test_the_chart_granularity_follows_the_length(span_h: int, gran: str) -> None:
    key = RangeKey(0, span_h * 3_600_000, None)
    assert resolve(key).granularity == gran


@pytest.mark.parametrize(
    ("start", "end", "store", "message"),
    [
        ("yesterday", None, None, "cannot parse start"),
        ("2026-12-05T11:00:00Z", "2026-12-05T10:00:00Z", None, "is not after"),
        (None, None, "abc", "not an integer"),
        (None, None, "0", "1 or more"),
        ("2026-01-01T00:00:00Z", "2026-12-01T00:00:00Z", None, "longer than 92 days"),
    ],
)
def test_a_bad_range_is_one_clear_error(
    start: str | None, end: str | None, store: str | None, message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        parse_range(start, end, store)


def test_a_hole_is_a_gap_never_a_zero() -> None:
    import pandas as pd

    cov = Coverage(
        batch_through_ms=2 * MIN,
        exact=False,
        ranges=(LayerRange("batch", 0, 2 * MIN), LayerRange("speed", 2 * MIN, 5 * MIN)),
        holes=(Hole(3 * MIN, 4 * MIN, "speed view lost"),),
        speed=SpeedFreshness(),
    )
    grid = [i * MIN for i in range(5)]
    layers = [_layer_of(cov, b, b + MIN) for b in grid]
    assert layers == ["batch", "batch", "speed", "hole", "speed"]
    frame = pd.DataFrame(
        {"bucket": pd.to_datetime([0, 3 * MIN], unit="ms", utc=True), "store_id": [1, 1], "value": [5, 9]}
    )
    assert _series(frame, grid, layers) == [5, 0, 0, None, 0]
    # an hour bucket cut by the watermark was served by both layers
    assert _layer_of(cov, 0, 5 * MIN) == "hole"
    assert _layer_of(Coverage(None, True, cov.ranges, (), SpeedFreshness()), 0, 5 * MIN) == "mixed"


def test_live_rates_come_from_the_cumulative_counter() -> None:
    s = LiveSampler(min_gap_s=0.5)
    s.sample({"events": 100, "max_event_ts": 9_000, "last_applied_ms": 9_500}, now_ms=10_000)
    s.sample({"events": 150}, now_ms=10_200)  # too soon: not a second sample
    s.sample({"events": 400, "max_event_ts": 11_000, "last_applied_ms": 11_900}, now_ms=12_000)
    series = s.series(now_ms=12_000)
    assert series["t"] == [10_000, 12_000]
    assert series["events_per_s"] == [None, 150.0]
    assert series["lag_s"] == [1.0, 1.0] and series["since_apply_s"] == [0.5, 0.1]


def test_the_page_carries_the_numbers_and_escapes_the_embedded_snapshot() -> None:
    snap = {
        "headline": {
            "revenue": 123456,
            "orders": 7,
            "events": 70,
            "payment_failures": 1,
            "failure_rate": 0.25,
        },
        "range": {"start": "a", "end": "b"},
        "funnel": {"rows": [{"campaign_id": "</script><script>alert(1)</script>"}]},
    }
    html = render_page(snap, auth_required=False, plotly_url="/p.js")
    assert 'data-testid="total-revenue" data-value="123456">$1,234.56<' in html
    assert 'data-testid="failure-rate" data-ratio="0.25">25.00%<' in html
    assert html.count("data-value=") == 4, "only the four integer headlines carry data-value"
    assert "</script><script>alert(1)" not in html
    shell = render_page(None, auth_required=True, plotly_url="/p.js")
    assert 'data-auth="token"' in shell and 'data-testid="total-events" data-value=""' in shell


def test_routes_without_an_engine_and_with_a_token() -> None:
    client = TestClient(create_app())
    page = client.get("/dashboard")
    assert page.status_code == 200 and "plotly-basic-" in page.text
    src = page.text.split('<script id="plotly-js" src="')[1].split('"')[0]
    js = client.get(src)  # plotly.js's basic bundle from node_modules/ (make install)
    assert js.status_code == 200 and len(js.content) > 500_000 and "plotly.js (basic" in js.text[:500]
    assert js.text.startswith("//# allFunctionsCalledOnLoad\n"), "V8 compiles it while it streams in"
    assert js.headers["content-encoding"] == "gzip" and "immutable" in js.headers["cache-control"]
    plain = client.get(src, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == js.content
    assert client.get("/dashboard/static/plotly-basic-0.0.1.min.js").status_code == 404
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/../app.py").status_code == 404
    assert client.get("/dashboard/static/nope.js").status_code == 404
    assert client.get("/dashboard/api/snapshot").status_code == 503
    assert client.get("/dashboard?start=nope").status_code == 422
    locked = TestClient(create_app(token="s3cret"))
    assert locked.get("/dashboard").status_code == 200, "the page itself asks for the token"
    assert locked.get("/dashboard/api/stream").status_code == 401
    assert (
        locked.get("/dashboard/api/snapshot", headers={"Authorization": "Bearer s3cret"}).status_code == 503
    )


def test_without_the_chart_library_the_page_says_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.dashboard.routes as routes

    monkeypatch.setattr(routes, "chart_lib", lambda: None)
    client = TestClient(create_app())
    page = client.get("/dashboard")
    assert page.status_code == 200, "numbers and tables are still served"
    src = page.text.split('<script id="plotly-js" src="')[1].split('"')[0]
    js = client.get(src)
    assert js.status_code == 404 and "make install" in js.json()["detail"]
