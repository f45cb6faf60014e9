"""Speed-layer test helpers: read the speed view back from Redis, compare with the oracle.

``speed_view`` turns the Redis keys (``speed_layer.keys``) into per-metric
pandas frames at minute granularity, in the same shape as the oracle's, so
tests compare every metric with ``lambda_rt.testing``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pandas as pd
import redis

from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.testing import oracle_frame, oracle_metrics
from lambda_rt.vocabulary import ADDITIVE_METRICS


def _hash_frames(client: redis.Redis, prefix: str, gran: str) -> dict[str, pd.DataFrame]:
    """Every additive metric's hash fields under ``prefix`` at ``gran`` as frames."""
    rows: dict[str, list[tuple[int, str, int]]] = {}
    for key in client.scan_iter(match=f"{prefix}:agg:{gran}:*", count=1000):
        _, _, _, bucket, metric = key.decode().split(":")
        if metric.startswith("campaign_"):  # by campaign, not by store: campaign_view()
            continue
        for f, v in client.hgetall(key).items():
            rows.setdefault(metric, []).append((int(bucket), f.decode(), int(v)))
    frames: dict[str, pd.DataFrame] = {}
    for metric, data in rows.items():
        df = pd.DataFrame(data, columns=["bucket_s", "field", "value"])
        parts = df["field"].str.split(":", expand=True)
        df["store_id"] = parts[0].astype("int64")
        if metric == "events":
            df["event_type"] = parts[1]
        elif metric == "inventory_delta":
            df["product_id"] = parts[1].astype("int64")
        frames[metric] = df.drop(columns=["field"])
    return frames


def speed_view(settings: Settings, gran: str = "m") -> dict[str, pd.DataFrame]:
    """The additive metrics in Redis for ``settings.redis.key_prefix``."""
    client = make_redis(settings.redis)
    try:
        return _hash_frames(client, settings.redis.key_prefix, gran)
    finally:
        client.close()


def now_ms() -> int:
    return int(time.time() * 1000)


MetricSeries = dict[str, pd.Series]


_BY: dict[str, list[str]] = {
    "events": ["store_id", "event_type"],
    "inventory_delta": ["store_id", "product_id"],
}


def oracle_view(values: Sequence[bytes], now: int, granularity: str = "minute") -> MetricSeries:
    """Every additive metric of ``values`` per ``lambda_rt.testing`` (the independent oracle)."""
    frame = oracle_frame(values, now_ms=now)
    out: MetricSeries = {}
    for metric in ADDITIVE_METRICS:
        by = _BY.get(metric, ["store_id"])
        df = oracle_metrics(frame, metric, by=by, granularity=granularity)
        df["bucket_s"] = (df["bucket"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        out[metric] = _norm(df.set_index(["bucket_s", *by])["value"])
    return out


def _norm(s: pd.Series) -> pd.Series:
    s = s.astype("int64")
    s = s[s != 0] if len(s) else s
    return s.sort_index()


def view_metrics(settings: Settings, gran: str = "m") -> MetricSeries:
    """The speed view's additive metrics, keyed like :func:`expected_metrics`."""
    frames = speed_view(settings, gran)
    out: MetricSeries = {}
    for metric in ADDITIVE_METRICS:
        cols = ["bucket_s", *_BY.get(metric, ["store_id"])]
        df = frames.get(metric)
        if df is None:
            out[metric] = pd.Series([], dtype="int64")
            continue
        out[metric] = _norm(df.groupby(cols)["value"].sum())
    return out


def assert_metrics_equal(got: MetricSeries, want: MetricSeries) -> None:
    """Every additive metric equal, bucket by bucket (a readable diff on failure)."""
    for metric, w in want.items():
        g = got.get(metric, pd.Series([], dtype="int64"))
        if len(w) == 0 and len(g) == 0:
            continue
        joined = pd.concat([g.rename("got"), w.rename("want")], axis=1).fillna(0)
        diff = joined[joined["got"] != joined["want"]]
        assert diff.empty, f"{metric}: {len(diff)} buckets differ, e.g.\n{diff.head(10)}"
        assert int(g.sum()) == int(w.sum()), metric


def campaign_view(settings: Settings, gran: str = "m") -> MetricSeries:
    """The speed view's ``events``/``orders``/``revenue`` by (bucket_s, campaign_id, event_type).

    ``orders`` and ``revenue`` carry ``event_type`` ``order_placed``.
    """
    client = make_redis(settings.redis)
    rows: dict[str, list[tuple[int, str, str, int]]] = {"events": [], "orders": [], "revenue": []}
    try:
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:agg:{gran}:*:campaign_*", count=1000):
            _, _, _, bucket, metric = key.decode().split(":")
            for f, v in client.hgetall(key).items():
                name = metric.removeprefix("campaign_")
                if name == "events":
                    event_type, _, campaign = f.decode().partition(":")
                else:
                    event_type, campaign = "order_placed", f.decode()
                rows[name].append((int(bucket), campaign, event_type, int(v)))
    finally:
        client.close()
    cols = ["bucket_s", "campaign_id", "event_type"]
    return {
        m: _norm(pd.DataFrame(r, columns=[*cols, "value"]).groupby(cols)["value"].sum())
        if r
        else pd.Series([], dtype="int64")
        for m, r in rows.items()
    }


def oracle_campaign_view(values: Sequence[bytes], now: int, granularity: str = "minute") -> MetricSeries:
    """``events``/``orders``/``revenue`` by (bucket_s, campaign_id, event_type), independently."""
    frame = oracle_frame(values, now_ms=now)
    out: MetricSeries = {}
    for metric in ("events", "orders", "revenue"):
        df = oracle_metrics(frame, metric, by=["event_type", "campaign_id"], granularity=granularity)
        df["bucket_s"] = (df["bucket"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        out[metric] = _norm(df.set_index(["bucket_s", "campaign_id", "event_type"])["value"])
    return out
