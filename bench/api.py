"""API benchmark: one question through every door, uncached and cached, 1 and 50 clients.

The question (issue #16): revenue by store, hourly, over the last 24 h. Data
goes through the real layers (generated events -> Kafka -> speed layer and
batch ingest -> recompute with the watermark mid-range). Then, in one run:

- in-process: ``QueryEngine.query`` in this process (50 clients: 50 threads);
- HTTP/JSON and HTTP/Arrow: ``GET /query`` on the daemon's FastAPI app;
- GraphQL: ``POST /graphql`` (rows { bucket storeId value } and the coverage);
- gRPC: ``lambda_rt.v1.Analytics/Query``.

The servers run as in ``lambda-rt serve`` (uvicorn and the gRPC server each
on its own thread and loop of this process, over one engine); "uncached" is a
second engine with the result cache off (the in-memory batch copy stays warm,
as in ``bench/query.py``). The clients run in a separate process
(``bench/_api_client.py``, asyncio, one connection per client) so they do not
share the servers' GIL; each decodes the answer to its native form (JSON to
dicts, Arrow to a table, protobuf to a message). Every case has a bounded
request count; p50/p99 are per request, req/s is count / wall time. The load
average is printed around each case: on this shared 2-core machine it
explains most of p99.

Targets: gRPC p99 <= 5 ms with 1 client and <= 50 ms with 50; GraphQL p99 at
most 2x HTTP/JSON's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from bench._stack import bench_stack
from bench.query import EngineBackend
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_all
from lambda_rt.vocabulary import HOUR_MS, MINUTE_MS

TRANSPORTS = ("in-process", "http-json", "http-arrow", "graphql", "grpc")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _slice(settings: Settings) -> Settings:
    tag = "benchapi"
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic": "events-api", "dlq_topic": "events-api.dlq"}),
            "redis": settings.redis.model_copy(update={"key_prefix": tag}),
            "batch": settings.batch.model_copy(update={"allowed_lateness_s": 0}),
            "clickhouse": settings.clickhouse.model_copy(update={"database": tag}),
            "dask": settings.dask.model_copy(update={"processes": False}),
        }
    )


def _load(settings: Settings, events: int, stores: int, now_ms: int) -> Any:
    from batch_layer.ingest import Ingestor
    from batch_layer.recompute import run_recompute
    from speed_layer.pipeline import run_speed

    ensure_topics(settings.kafka)
    gen = EventGenerator(GeneratorConfig(seed=1, stores=stores, end_ms=now_ms - 1000, span_ms=24 * HOUR_MS))
    t0 = time.perf_counter()
    produce_all(settings.kafka, gen.iter_batches(events, 50_000))
    client = open_clickhouse(settings)
    speed = threading.Thread(
        target=run_speed, args=(settings,), kwargs={"until_idle_s": 5.0, "handle_signals": False}
    )
    speed.start()
    Ingestor(settings, client).run(until_idle_s=5.0)
    speed.join()
    wm = now_ms - 12 * HOUR_MS + 23 * MINUTE_MS  # mid-range, mid-hour: both layers serve
    run_recompute(settings, client, now=datetime.fromtimestamp(wm / 1000, tz=UTC))
    print(
        f"loaded {events:,} events ({stores} stores) through both layers in {time.perf_counter() - t0:.1f} s"
    )
    return client


def _serve(settings: Settings, engine: Any) -> tuple[str, str, list[Any]]:
    """HTTP + GraphQL (uvicorn) and gRPC over ``engine``, as the daemon hosts them."""
    import uvicorn

    from lambda_rt.daemon.host import bind_listener
    from serving.api_hosting import graphql_mounter, start_grpc
    from serving.apis import ApiBackend
    from serving.app import create_app

    backend = EngineBackend(engine)
    apis = ApiBackend(query=engine.query, status=backend.status)
    app = create_app(backend, graphql=graphql_mounter(settings, apis, token=None, host="127.0.0.1"))
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    grpc_server = start_grpc(settings, apis, token=None, host="127.0.0.1", port=0)
    return f"http://127.0.0.1:{port}", grpc_server.address, [server, grpc_server]


def _remote(
    transport: str, address: str, clients: int, n: int, q: dict[str, Any]
) -> tuple[list[float], float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._api_client", transport, address, str(clients), str(n), json.dumps(q)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{transport} client failed: {out.stderr[-2000:]}")
    doc = json.loads(out.stdout)
    return doc["ms"], doc["wall_s"]


def _in_process(
    engine: Any, q: dict[str, Any], clients: int, n: int, use_cache: bool
) -> tuple[list[float], float]:
    args = (q["metric"], q["by"], q["start"], q["end"], q["granularity"])
    engine.query(*args, use_cache=use_cache)  # warm

    def one(_: int) -> float:
        t = time.perf_counter()
        engine.query(*args, use_cache=use_cache)
        return (time.perf_counter() - t) * 1000

    t0 = time.perf_counter()
    if clients == 1:
        lat = [one(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(clients) as pool:
            lat = list(pool.map(one, range(n)))
    return lat, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--stores", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=300, help="requests per case with 1 client")
    ap.add_argument("--repeat-concurrent", type=int, default=500, help="requests per case with 50 clients")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--transports", default=",".join(TRANSPORTS), help="a subset, comma-separated")
    args = ap.parse_args(argv)
    from serving.engine import QueryEngine
    from serving.spec import format_ts

    with bench_stack(prefix="lrt-bench-api-") as base:
        settings = _slice(base)
        now_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS
        client = _load(settings, args.events, args.stores, now_ms)
        q = {
            "metric": "revenue",
            "by": "store_id",
            "start": format_ts(now_ms - 24 * HOUR_MS),
            "end": format_ts(now_ms),
            "granularity": "hour",
        }
        cached = QueryEngine(settings, clickhouse=client)
        uncached = QueryEngine(settings, clickhouse=client, cache_entries=0)
        res = cached.query(q["metric"], q["by"], q["start"], q["end"], q["granularity"])
        ranges = [(r["layer"], r["start"], r["end"]) for r in res.coverage.to_dict()["ranges"]]
        print(f"answer: {len(res.frame):,} rows, {res.frame['store_id'].nunique()} stores, ranges {ranges}")
        http = {True: _serve(settings, cached), False: _serve(settings, uncached)}
        engines = {True: cached, False: uncached}
        rows: list[tuple[str, str, int, list[float], float, str]] = []
        for clients, n in ((1, args.repeat), (args.clients, args.repeat_concurrent)):
            for use_cache in (False, True):
                for transport in args.transports.split(","):
                    before = _load_avg()
                    if transport == "in-process":
                        lat, wall = _in_process(engines[use_cache], q, clients, n, use_cache)
                    else:
                        url, grpc_target, _ = http[use_cache]
                        lat, wall = _remote(
                            transport, grpc_target if transport == "grpc" else url, clients, n, q
                        )
                    load = f"{before} -> {_load_avg()}"
                    rows.append((transport, "cached" if use_cache else "uncached", clients, lat, wall, load))
                    print(
                        f"{transport:<11} {'cached' if use_cache else 'uncached':<9} {clients:>3} clients: "
                        f"p50 {statistics.median(lat):8.3f} ms  p99 {_pct(lat, 0.99):8.3f} ms  "
                        f"{len(lat) / wall:8.0f} req/s  (n={len(lat)}, load {load})",
                        flush=True,
                    )
        for _, _, servers in http.values():
            servers[0].should_exit = True
            servers[1].stop()
        cached.close()
        uncached.close()
        print()
        print("| transport | cache | clients | p50 ms | p99 ms | req/s | n | load 1/5/15 before -> after |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for transport, cache, clients, lat, wall, load in rows:
            print(
                f"| {transport} | {cache} | {clients} | {statistics.median(lat):.2f} | {_pct(lat, 0.99):.2f} "
                f"| {len(lat) / wall:.0f} | {len(lat)} | {load} |"
            )
        p99 = {(t, c, k): _pct(lat, 0.99) for t, c, k, lat, _, _ in rows}
        print(f"machine: {os.cpu_count()} cores, load average now {_load_avg()}")
        for cache in ("uncached", "cached") if args.transports == ",".join(TRANSPORTS) else ():
            g1, g50 = p99[("grpc", cache, 1)], p99[("grpc", cache, args.clients)]
            print(
                f"target gRPC {cache}: p99 1 client {g1:.2f} ms (<= 5), "
                f"{args.clients} clients {g50:.2f} ms (<= 50)"
            )
            for k in (1, args.clients):
                ratio = p99[("graphql", cache, k)] / p99[("http-json", cache, k)]
                print(f"target GraphQL {cache} {k} clients: p99 GraphQL / HTTP-JSON {ratio:.2f} (<= 2)")


if __name__ == "__main__":
    main()
