"""Serving benchmark: query latency, in-process and over HTTP, uncached and cached.

Scenario (issue #5): 1,000 stores x 24 h at hourly granularity, the batch
watermark in the middle of the range (mid-hour, so one hour is composed from
batch and speed minutes). Data goes through the real layers: generated events
-> Kafka -> speed layer (Redis) and batch ingest (chDB) -> recompute. Then
``revenue by store_id`` over the 24 h is asked repeatedly:

- in-process, uncached (``use_cache=False``) and cached;
- over HTTP (the daemon's FastAPI app under uvicorn, in a thread of this
  process, through ``serving.HttpClient``), uncached and cached.

Prints p50/p99 per case; the last lines are ratios against the in-process
uncached baseline measured in the same run. Targets: p99 <= 20 ms uncached
in-process, <= 1 ms cached.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.speed import bench_stack
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.kafka import ensure_topics, make_producer
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_batches

HOUR_MS = 3_600_000


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _slice(settings: Settings) -> Settings:
    tag = "benchq"
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic": "events-q", "dlq_topic": "events-q.dlq"}),
            "redis": settings.redis.model_copy(update={"key_prefix": tag}),
            "batch": settings.batch.model_copy(update={"allowed_lateness_s": 0}),
            "clickhouse": settings.clickhouse.model_copy(update={"database": tag}),
            "dask": settings.dask.model_copy(update={"processes": False}),
        }
    )


def _load(settings: Settings, events: int, now_ms: int) -> Any:
    from batch_layer.ingest import Ingestor
    from batch_layer.recompute import run_recompute
    from speed_layer.pipeline import run_speed

    ensure_topics(settings.kafka)
    gen = EventGenerator(GeneratorConfig(seed=1, stores=1000, end_ms=now_ms - 1000, span_ms=24 * HOUR_MS))
    t0 = time.perf_counter()
    produce_batches(make_producer(settings.kafka), settings.kafka.topic, gen.iter_batches(events, 50_000))
    client = open_clickhouse(settings)
    speed = threading.Thread(
        target=run_speed, args=(settings,), kwargs={"until_idle_s": 5.0, "handle_signals": False}
    )
    speed.start()
    Ingestor(settings, client).run(until_idle_s=5.0)
    speed.join()
    wm = now_ms - 12 * HOUR_MS + 23 * 60_000  # mid-range, mid-hour
    run_recompute(settings, client, now=datetime.fromtimestamp(wm / 1000, tz=UTC))
    print(f"loaded {events:,} events through both layers in {time.perf_counter() - t0:.1f} s")
    return client


def _time(fn: Any, n: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _serve(backend: Any) -> tuple[str, Any]:
    import uvicorn

    from serving.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backend), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


class _Backend:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def query(self, metric: str, by: Any, start: Any, end: Any, gran: str, strict: bool) -> dict[str, Any]:
        return dict(self.engine.query(metric, by, start, end, gran, strict=strict).to_dict())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args(argv)
    from serving import HttpClient
    from serving.engine import QueryEngine
    from serving.spec import format_ts

    with bench_stack() as base:
        settings = _slice(base)
        now_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS
        client = _load(settings, args.events, now_ms)
        q = ("revenue", "store_id", format_ts(now_ms - 24 * HOUR_MS), format_ts(now_ms), "hour")
        engine = QueryEngine(settings, clickhouse=client)
        nocache = QueryEngine(settings, clickhouse=client, cache_entries=0)
        res = engine.query(*q)
        cov = res.coverage.to_dict()
        print(
            f"answer: {len(res.frame):,} rows, {res.frame['store_id'].nunique()} stores, "
            f"ranges {[(r['layer'], r['start'], r['end']) for r in cov['ranges']]}"
        )
        results: dict[str, list[float]] = {}
        results["in-process uncached"] = _time(lambda: engine.query(*q, use_cache=False), args.repeat)
        results["in-process cached"] = _time(lambda: engine.query(*q), args.repeat * 5)
        url_c, srv_c = _serve(_Backend(engine))
        url_u, srv_u = _serve(_Backend(nocache))
        http_c, http_u = HttpClient(url_c), HttpClient(url_u)
        results["HTTP uncached"] = _time(lambda: http_u.query_result(*q), args.repeat)
        results["HTTP cached"] = _time(lambda: http_c.query_result(*q), args.repeat * 2)
        for s in (srv_c, srv_u):
            s.should_exit = True
        print(f"{'case':<22} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
        for name, xs in results.items():
            print(f"{name:<22} {statistics.median(xs):8.3f} {_pct(xs, 0.99):8.3f} {len(xs):6d}")
        base_p50 = statistics.median(results["in-process uncached"])
        print(
            f"targets: p99 uncached in-process {_pct(results['in-process uncached'], 0.99):.2f} ms (<= 20), "
            f"p99 cached in-process {_pct(results['in-process cached'], 0.99):.3f} ms (<= 1)"
        )
        for name, xs in results.items():
            if name != "in-process uncached":
                print(f"ratio p50 {name} / in-process uncached: {statistics.median(xs) / base_p50:.3f}")
        engine.close()
        nocache.close()


if __name__ == "__main__":
    main()
