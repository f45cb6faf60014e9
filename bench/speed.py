"""Speed-layer benchmark: raw consume vs the speed layer vs Quix Streams, + latency.

``python -m bench.speed [--events N]`` starts a throw-away embedded stack
(tansu in memory mode, Redis, SeaweedFS) on free ports, produces N generated
events (realistic mix, 1% malformed) once, then on that same topic measures:

1. raw consume: confluent-kafka ``consume(10000)`` touching only the values,
   the physical limit of a Python consumer here;
2. the lambda-rt speed layer, full path (validation, DLQ, exactly-once Lua
   write, HLL), in this process;
3. Quix Streams 3.28.1 (own virtualenv ``.bench-venv``, installed on first
   run) computing per-store 1-minute count + revenue;
4. event-to-visible latency at an offered load (default 100K events/s):
   Kafka message timestamp (set at produce) -> the Redis write returned.

Rates are timed from the first message received to the last one handled (the
consumer-group join is excluded for everyone). The last lines are the ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._stack import bench_stack
from lambda_rt.clients.kafka import KafkaProducer, ensure_topics, make_consumer
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import paced, produce_all

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".bench-venv"
QUIX_VERSION = "3.28.1"


def _slice(settings: Settings, topic: str, tag: str, batch_size: int) -> Settings:
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic": topic, "dlq_topic": f"{topic}.dlq"}),
            "redis": settings.redis.model_copy(update={"key_prefix": tag}),
            "speed": settings.speed.model_copy(update={"group": f"speed-{tag}", "batch_size": batch_size}),
        }
    )


def produce_events(
    settings: Settings, n: int, bad_fraction: float, seed: int, schema_version: str = "1"
) -> float:
    """Produce ``n`` generated events (schema ``1``, ``2`` or ``mixed``) to the topic; returns msgs/s."""
    ensure_topics(settings.kafka)
    gen = EventGenerator(GeneratorConfig(seed=seed, bad_fraction=bad_fraction, schema_version=schema_version))
    report = produce_all(settings.kafka, gen.iter_batches(n))
    return report.rate


def raw_consume(settings: Settings, n: int, timeout_s: float = 120.0) -> float:
    """Messages/s of a bare confluent-kafka consumer touching only the values."""
    consumer = make_consumer(settings.kafka, f"raw-{time.time_ns()}")
    consumer.subscribe([settings.kafka.topic])
    seen = 0
    nbytes = 0
    first = 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < n and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=10_000, timeout=0.1)
            if not msgs:
                continue
            if not seen:
                first = time.perf_counter()
            seen += len(msgs)
            nbytes += sum(len(m.value() or b"") for m in msgs)
        elapsed = time.perf_counter() - first
    finally:
        consumer.close()
    if seen < n:
        raise RuntimeError(f"raw consume read {seen} of {n} messages")
    return seen / elapsed


def speed_layer(settings: Settings, n: int) -> tuple[float, dict[str, float]]:
    """Messages/s of the full speed layer; returns it with its run report figures."""
    from speed_layer.microbatch import AppliedBatch
    from speed_layer.pipeline import run_speed

    marks: dict[str, float] = {}
    write_s = 0.0
    increments = 0

    def on_applied(b: AppliedBatch) -> None:
        nonlocal write_s, increments
        marks.setdefault("first", b.checked.raw.consumed_at)
        write_s += b.write_seconds
        increments += b.delta.increments
        marks["last"] = time.monotonic()

    report = run_speed(settings, until_idle_s=2.0, handle_signals=False, on_applied=on_applied)
    if report.messages != n:
        raise RuntimeError(f"speed layer handled {report.messages} of {n} messages")
    elapsed = marks["last"] - marks["first"]
    figures: dict[str, float] = {
        "events": report.events,
        "dlq": report.dead_letters,
        "batches": report.batches,
        "elapsed": elapsed,
        "write_s": write_s,
        "increments": increments,
    }
    return n / elapsed, figures


def _ensure_quix() -> Path:
    python = BENCH_VENV / "bin" / "python"
    installed = BENCH_VENV.glob(f"lib/python*/site-packages/quixstreams-{QUIX_VERSION}.dist-info")
    if python.exists() and any(installed):
        return python
    print(f"installing quixstreams=={QUIX_VERSION} into {BENCH_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], check=True)
    return python


def quix(settings: Settings, n: int) -> float:
    """Messages/s of the Quix Streams peer (separate virtualenv and process)."""
    python = _ensure_quix()
    with tempfile.TemporaryDirectory(prefix="lrt-quix-") as state:
        out = subprocess.run(
            [
                str(python),
                str(Path(__file__).with_name("_quix_peer.py")),
                settings.kafka.bootstrap,
                settings.kafka.topic,
                str(n),
                f"quix-{time.time_ns()}",
                state,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"quix peer failed: {out.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if result["messages"] < n:
        raise RuntimeError(f"quix peer handled {result['messages']} of {n} messages")
    return float(result["rate"])


def _latency_producer(
    kafka_json: str, topic: str, rate: float, seconds: float, ready: object, go: object
) -> None:
    """The offered load, in its own process and as lean as it can be.

    It shares the 2 cores with the broker, Redis and the speed layer under
    test, so it must not eat them: delivery reports only for failures (no
    Python callback per message) and no per-message Python beyond the
    producer's loop. Every message is still checked: ``flush`` raises on a
    failed or unacknowledged one.
    """
    from lambda_rt.config import KafkaSettings

    kafka = KafkaSettings.model_validate_json(kafka_json)
    total = int(rate * seconds)
    gen = EventGenerator(GeneratorConfig(seed=7, span_ms=1000))
    batches = [gen.batch(min(1000, total - i)) for i in range(0, total, 1000)]
    with KafkaProducer(kafka, **{"linger.ms": 5, "delivery.report.only.error": True}) as producer:
        producer.connect()  # else the first messages' latency includes the connection
        ready.set()  # type: ignore[attr-defined]
        go.wait()  # type: ignore[attr-defined]
        for batch in paced(batches, rate):
            producer.produce_many(topic, batch)
        producer.flush(60)


def _aof_rewrites(settings: Settings) -> int:
    """Redis AOF rewrites so far (a fork and a rewrite compete for the 2 cores)."""
    client = make_redis(settings.redis)
    try:
        return int(client.info("persistence").get("aof_rewrites", 0))
    finally:
        client.close()


def latency(settings: Settings, rate: float, seconds: float) -> tuple[float, float, int, float, int]:
    """p50/p99 ms from produce (message timestamp) to the Redis write returning.

    Also returns the load really offered (messages measured over the span of
    their produce timestamps: the producer process may fall short of
    ``rate``) and the number of micro-batches that carried them.
    """
    from speed_layer.microbatch import AppliedBatch
    from speed_layer.pipeline import run_speed

    ensure_topics(settings.kafka)
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    child = ctx.Process(
        target=_latency_producer,
        args=(settings.kafka.model_dump_json(), settings.kafka.topic, rate, seconds, ready, go),
    )
    child.start()
    # The events are generated before the clock starts; on a loaded machine
    # that can outlast the speed layer's idle timeout, so wait for it here.
    if not ready.wait(300):
        raise RuntimeError("latency producer did not get ready")
    warm = EventGenerator(GeneratorConfig(seed=1)).batch(10)
    produce_all(settings.kafka, [warm])
    samples: list[np.ndarray] = []
    t_go = [0.0]

    def on_applied(b: AppliedBatch) -> None:
        now_ms = b.applied_at * 1000
        if not go.is_set():
            go.set()
            t_go[0] = now_ms
            return
        ts = b.checked.raw.timestamps_ms
        ts = ts[ts > t_go[0]]
        samples.append(now_ms - ts)
        produced.append(ts)

    produced: list[np.ndarray] = []
    run_speed(settings, until_idle_s=2.0, handle_signals=False, on_applied=on_applied)
    child.join(60)
    if child.exitcode != 0:
        raise RuntimeError(f"latency producer exited with {child.exitcode}")
    lat = np.concatenate(samples) if samples else np.zeros(1)
    stamps = np.concatenate(produced) if produced else np.zeros(2)
    offered = len(stamps) / max(1e-3, float(stamps.max() - stamps.min()) / 1000)
    p50, p99 = (float(x) for x in np.percentile(lat, [50, 99]))
    return p50, p99, len(lat), offered, len(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bad-fraction", type=float, default=0.01)
    parser.add_argument("--latency-rate", type=float, default=100_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=50_000, help="speed.batch_size (max per consume)")
    parser.add_argument("--skip-quix", action="store_true", help="Skip the Quix Streams peer.")
    parser.add_argument("--skip-v2", action="store_true", help="Skip the schema v2 (campaigns) case.")
    parser.add_argument("--skip-latency", action="store_true", help="Skip the latency case.")
    args = parser.parse_args(argv)
    n = args.events
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"speed-layer bench: {n:,} events, batch_size {args.batch_size:,}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, load average at start {load}"
    )
    with bench_stack() as stack:
        s = _slice(stack, "bench-events", "bench", args.batch_size)
        produced = produce_events(s, n, args.bad_fraction, seed=11)
        print(f"produced {n:,} events at {produced:,.0f}/s")
        raw = raw_consume(s, n)
        print(f"raw consume (confluent-kafka, values only): {raw:,.0f} msgs/s")
        speed, figures = speed_layer(s, n)
        client = make_redis(s.redis)
        meta = {k.decode(): v.decode() for k, v in client.hgetall(f"{s.redis.key_prefix}:meta").items()}
        client.close()
        print(
            f"lambda-rt speed layer (full path): {speed:,.0f} events/s "
            f"({figures['events']:,} valid applied, {figures['dlq']:,} to the DLQ, "
            f"{figures['batches']:.0f} batches; Redis meta messages={meta.get('messages')})"
        )
        per_batch = figures["write_s"] / max(1, figures["batches"]) * 1000
        print(
            f"  Redis Lua writes: {per_batch:.0f} ms per batch of ~{n / max(1, figures['batches']):,.0f}, "
            f"{figures['write_s']:.1f} s of {figures['elapsed']:.1f} s elapsed "
            f"(overlapped with the next batch), {figures['increments'] / max(1, figures['events']):.2f} "
            "hash increments per event"
        )
        v2 = 0.0
        if not args.skip_v2:  # the same events in schema v2: campaigns, payment signals, stock levels
            s2 = _slice(stack, "bench-events-v2", "bench2", args.batch_size)
            produce_events(s2, n, args.bad_fraction, seed=11, schema_version="2")
            v2, figures2 = speed_layer(s2, n)
            print(
                f"lambda-rt speed layer, schema v2 events with campaigns: {v2:,.0f} events/s "
                f"({figures2['increments'] / max(1, figures2['events']):.2f} hash increments per event)"
            )
        q = 0.0
        if not args.skip_quix:
            q = quix(s, n)
            print(f"Quix Streams {QUIX_VERSION} (per-store 1-min count + revenue): {q:,.0f} events/s")
        p99 = offered = 0.0
        if not args.skip_latency:
            lat_settings = _slice(stack, "bench-latency", "lat", args.batch_size)
            rewrites = _aof_rewrites(lat_settings)
            p50, p99, k, offered, nb = latency(lat_settings, args.latency_rate, args.latency_seconds)
            rewrites = _aof_rewrites(lat_settings) - rewrites
            print(
                f"event-to-visible latency at {args.latency_rate:,.0f} events/s requested "
                f"({offered:,.0f}/s really offered): p50 {p50:.0f} ms, p99 {p99:.0f} ms ({k:,} events "
                f"in {nb:,} batches, {k / max(1, nb):,.0f} per batch; "
                f"Redis AOF rewrites meanwhile: {rewrites})"
            )
    print("load average at end " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"speed layer / raw consume = {speed / raw:.2f} (target >= 0.30)")
    if q:
        print(f"speed layer / Quix Streams = {speed / q:.1f} (target >= 10)")
    if v2:
        print(f"speed layer v2 / v1 = {v2 / speed:.2f} (target >= 0.90)")
    if offered:
        print(f"p99 event-to-visible = {p99:.0f} ms at {offered:,.0f}/s offered (target <= 500 ms at 100K/s)")


if __name__ == "__main__":
    main()
