"""Per-unit figures for docs/scaling.md: speed-view memory in Redis and ingest throughput.

``python -m bench.sizing [--events N] [--stores S]`` starts a throw-away stack
(memory-mode broker), produces N generated events (default 1M, 1,000 stores,
``--span-s`` of event time (default one hour), 1% malformed), then:

1. runs the speed layer in this process until idle and reads what the speed
   view costs in Redis: ``used_memory`` before/after, keys and hash fields per
   granularity, bytes per key kind (``MEMORY USAGE`` summed), so memory per
   hour of speed view at a given store count can be derived;
2. runs the batch ingest (Kafka -> validate -> ``events_hot`` in chDB) until
   idle and reports its events/s on this machine (one Python process).

The figures are printed as one JSON object (last line).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench._stack import bench_stack


def _redis_costs(settings: Any) -> dict[str, Any]:
    from lambda_rt.clients.redis import make_redis

    r = make_redis(settings.redis)
    kinds: dict[str, dict[str, int]] = {}
    for key in r.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000):
        parts = key.decode().split(":")
        kind = ":".join(parts[1:3]) if len(parts) > 2 else parts[1]
        if parts[1] == "agg" and len(parts) > 4:
            kind += ":" + parts[4]  # the metric
        k = kinds.setdefault(kind, {"keys": 0, "bytes": 0, "fields": 0})
        k["keys"] += 1
        k["bytes"] += int(r.memory_usage(key) or 0)
        if r.type(key) == b"hash":
            k["fields"] += int(r.hlen(key))
    info = r.info("memory")
    r.close()
    return {"kinds": kinds, "used_memory": int(info["used_memory"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--span-s", type=int, default=3600, help="event-time span of the events")
    args = parser.parse_args()

    from batch_layer.ingest import Ingestor
    from lambda_rt.clients.clickhouse import open_clickhouse
    from lambda_rt.clients.kafka import ensure_topics
    from lambda_rt.clients.redis import make_redis
    from lambda_rt.events.generator import EventGenerator, GeneratorConfig
    from lambda_rt.producing import produce_all
    from speed_layer.pipeline import run_speed

    with bench_stack("lrt-bench-sizing-") as settings:
        settings = settings.model_copy(
            update={"clickhouse": settings.clickhouse.model_copy(update={"database": "sz"})}
        )
        ensure_topics(settings.kafka)
        end_ms = int(time.time() * 1000) - 60_000
        gen = EventGenerator(
            GeneratorConfig(
                seed=3, end_ms=end_ms, span_ms=args.span_s * 1000, stores=args.stores, bad_fraction=0.01
            )
        )
        produce_all(settings.kafka, gen.iter_batches(args.events, 200_000))
        r = make_redis(settings.redis)
        before = int(r.info("memory")["used_memory"])
        r.close()
        t = time.monotonic()
        speed = run_speed(settings, until_idle_s=3.0, handle_signals=False)
        speed_s = time.monotonic() - t - 3.0
        costs = _redis_costs(settings)
        client = open_clickhouse(settings)
        t = time.monotonic()
        ingest = Ingestor(settings, client).run(until_idle_s=3.0)
        ingest_s = time.monotonic() - t - 3.0
        out = {
            "events_produced": args.events,
            "stores": args.stores,
            "event_time_span_s": args.span_s,
            "speed_events_applied": speed.events,
            "speed_events_per_s": round(speed.events / max(speed_s, 1e-9)),
            "redis_used_memory_delta_bytes": costs["used_memory"] - before,
            "redis_by_kind": costs["kinds"],
            "ingest_inserted": ingest.inserted,
            "ingest_events_per_s": round(ingest.inserted / max(ingest_s, 1e-9)),
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
