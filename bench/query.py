"""Serving benchmark: query latency, in-process and over HTTP, uncached and cached.

Scenario (issue #5): 1,000 stores x 24 h at hourly granularity, the batch
watermark in the middle of the range (mid-hour, so one hour is composed from
batch and speed minutes). Data goes through the real layers: generated events
-> Kafka -> speed layer (Redis) and batch ingest (chDB) -> recompute. Then
``revenue by store_id`` over the 24 h is asked repeatedly:

- in-process, uncached (``use_cache=False``: no result cache; the in-memory
  batch copy, :mod:`serving.batch_copy`, is warm) and cached;
- in-process, the first query after a batch commit: the copy is cold (one
  chDB load of the day chunks), simulated by dropping the copy, and measured
  after real recomputes too (few samples: a recompute takes seconds);
- in-process after the speed layer moved (the result cache misses, the batch
  rows come from the warm batch copy: the live-dashboard case);
- over HTTP (the daemon's FastAPI app under uvicorn, in a thread of this
  process, through ``serving.HttpClient``, which asks for Arrow IPC rather
  than JSON rows), uncached and cached.

Then the uncached path per component (batch state, speed state, the batch rows
from the warm copy and, for comparison, from one chDB query, the one Redis
pipeline, the numpy merge, JSON encode and decode), so a
missed target shows where the time goes. The load average (``os.getloadavg``)
is printed around every case: on a shared machine it explains most of p99.

Prints p50/p99 per case; the last lines are ratios against the in-process
uncached baseline measured in the same run. Targets: p99 <= 20 ms uncached
in-process, <= 1 ms cached.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench._stack import bench_stack
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_all
from lambda_rt.vocabulary import HOUR_MS, MINUTE_MS


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
    produce_all(settings.kafka, gen.iter_batches(events, 50_000))
    client = open_clickhouse(settings)
    speed = threading.Thread(
        target=run_speed, args=(settings,), kwargs={"until_idle_s": 5.0, "handle_signals": False}
    )
    speed.start()
    Ingestor(settings, client).run(until_idle_s=5.0)
    speed.join()
    wm = now_ms - 12 * HOUR_MS + 23 * MINUTE_MS  # mid-range, mid-hour
    run_recompute(settings, client, now=datetime.fromtimestamp(wm / 1000, tz=UTC))
    print(f"loaded {events:,} events through both layers in {time.perf_counter() - t0:.1f} s")
    return client


def _after_recompute(
    settings: Settings, client: Any, engine: Any, q: tuple[str, ...], wm_ms: int, n: int
) -> list[float]:
    """The first uncached query after each of ``n`` real recomputes (same watermark)."""
    from batch_layer.recompute import run_recompute

    out, cpu = [], []
    for _ in range(n):
        run_recompute(settings, client, now=datetime.fromtimestamp(wm_ms / 1000, tz=UTC))
        c, t = time.process_time(), time.perf_counter()
        engine.query(*q, use_cache=False)
        out.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    CPU["in-process after recompute"] = cpu
    return out


def _load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


CPU: dict[str, list[float]] = {}
"""CPU time of this process per call (all its threads, chDB's included), by case."""


def _time(fn: Any, n: int, name: str = "") -> list[float]:
    fn()  # warm
    out, cpu = [], []
    for _ in range(n):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    CPU[name] = cpu
    return out


def _serve(backend: Any) -> tuple[str, Any]:
    import uvicorn

    from lambda_rt.daemon.host import bind_listener
    from serving.app import create_app

    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backend), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


class EngineBackend:
    """What ``serving.app`` calls, over one engine (as the daemon's); the API benches share it."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def query(
        self, metric: str, by: Any, start: Any, end: Any, gran: str, strict: bool, fmt: str = "json"
    ) -> bytes:
        result = self.engine.query(metric, by, start, end, gran, strict=strict)
        return bytes(result.to_arrow_ipc() if fmt == "arrow" else result.to_json())

    def status(self) -> dict[str, Any]:
        return {}


def _components(
    engine: Any, q: tuple[str, ...], n: int, results: dict[str, list[float]], loads: dict[str, str]
) -> None:
    """The uncached path, one component at a time (same calls the engine makes)."""
    from serving import batch_view, speed_view
    from serving.engine import _merge
    from serving.result import QueryResult
    from serving.spec import make_spec

    spec = make_spec(*q)
    prep = engine.prepare(spec)
    bp = [p for p in prep.plan.pieces if p.layer == "batch"]
    sp = [p for p in prep.plan.pieces if p.layer == "speed"]
    parts = [batch_view.read_batch_pieces(engine.clickhouse, bp, spec.metric, spec.by, spec.width_ms)]
    parts += speed_view.read_speed_pieces(engine.redis, engine.keys, sp, spec.metric, spec.by)
    res = engine.query(*q, use_cache=False)
    doc = res.to_dict()
    ipc = res.to_arrow_ipc()
    steps: list[tuple[str, Any]] = [
        ("  batch state (stat)", engine.batch_state.state),
        ("  speed state (1 round trip)", lambda: speed_view.read_speed_snapshot(engine.redis, engine.keys)),
        (
            "  batch read (warm copy)",
            lambda: engine.batch_copy.read(prep.batch.token, bp, spec.metric, spec.by),
        ),
        (
            "  batch read (1 chDB query)",
            lambda: batch_view.read_batch_pieces(engine.clickhouse, bp, spec.metric, spec.by, spec.width_ms),
        ),
        (
            "  speed read (1 pipeline)",
            lambda: speed_view.read_speed_pieces(engine.redis, engine.keys, sp, spec.metric, spec.by),
        ),
        ("  merge (numpy)", lambda: _merge(parts, spec)),
        ("  JSON encode (uncached)", lambda: QueryResult(*vars_of(res)).to_json()),
        ("  JSON rows -> DataFrame", lambda: QueryResult.from_dict(doc, spec.by)),
        ("  Arrow IPC encode (uncached)", lambda: QueryResult(*vars_of(res)).to_arrow_ipc()),
        (
            "  Arrow IPC -> DataFrame",
            lambda: QueryResult.from_arrow_ipc(ipc, spec.metric, spec.granularity, spec.by),
        ),
    ]
    for name, fn in steps:
        before = _load_avg()
        results[name] = _time(fn, n, name)
        loads[name] = f"{before} -> {_load_avg()}"


def vars_of(res: Any) -> tuple[Any, ...]:
    return (res.metric, res.granularity, res.by, res.frame, res.coverage)


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
        wm_ms = now_ms - 12 * HOUR_MS + 23 * MINUTE_MS
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
        loads: dict[str, str] = {}

        def case(name: str, fn: Any, n: int) -> None:
            before = _load_avg()
            results[name] = _time(fn, n, name)
            loads[name] = f"{before} -> {_load_avg()}"

        def speed_moved() -> None:
            engine.cache.clear()  # as if a micro-batch moved the offsets
            engine.query(*q)

        case("in-process uncached", lambda: engine.query(*q, use_cache=False), args.repeat)

        def cold_copy() -> None:
            engine.batch_copy.clear()  # what a new batch token does
            engine.batch_state.forget()  # and the watermark is read again
            engine.query(*q, use_cache=False)

        case("in-process batch copy cold", cold_copy, max(10, args.repeat // 3))
        case("in-process cached", lambda: engine.query(*q), args.repeat * 5)
        case("in-process speed moved", speed_moved, args.repeat)
        url_c, srv_c = _serve(EngineBackend(engine))
        url_u, srv_u = _serve(EngineBackend(nocache))
        http_c, http_u = HttpClient(url_c), HttpClient(url_u)
        case("HTTP uncached", lambda: http_u.query_result(*q), args.repeat)
        case("HTTP cached", lambda: http_c.query_result(*q), args.repeat * 2)
        for s in (srv_c, srv_u):
            s.should_exit = True
        _components(nocache, q, args.repeat, results, loads)
        # last: recomputes leave background merges and Dask threads behind
        before = _load_avg()
        results["in-process after recompute"] = _after_recompute(settings, client, engine, q, wm_ms, 5)
        loads["in-process after recompute"] = f"{before} -> {_load_avg()}"
        # cpu: CPU time of this process per call; wall - cpu is mostly waiting for a core
        print(
            f"{'case':<30} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8} {'n':>6}  "
            "load 1/5/15 (before -> after)"
        )
        for name, xs in results.items():
            cpu = statistics.median(CPU[name])
            print(
                f"{name:<30} {statistics.median(xs):8.3f} {_pct(xs, 0.99):8.3f} {cpu:8.3f} "
                f"{_pct(CPU[name], 0.99):8.3f} {len(xs):6d}  "
                f"{loads[name]}"
            )
        base_p50 = statistics.median(results["in-process uncached"])
        print(f"machine: {os.cpu_count()} cores, load average now {_load_avg()}")
        print(
            f"targets: p99 uncached in-process {_pct(results['in-process uncached'], 0.99):.2f} ms (<= 20), "
            f"p99 cached in-process {_pct(results['in-process cached'], 0.99):.3f} ms (<= 1)"
        )
        for name, xs in results.items():
            if name != "in-process uncached" and not name.startswith(" "):
                print(f"ratio p50 {name} / in-process uncached: {statistics.median(xs) / base_p50:.3f}")
        engine.close()
        nocache.close()


if __name__ == "__main__":
    main()
