"""Chaos harness: scenario sizes, real processes, the merged-query check, the summary line.

Every scenario ends with :func:`check_merged`: each metric read through the
serving layer (the merged batch + speed answer a user gets) is compared with
the pandas oracle of :mod:`lambda_rt.testing` over *everything that was
produced*; and :func:`check_dlq`: the DLQ holds exactly the bad messages.
:func:`record` prints one machine-readable ``CHAOS-SUMMARY {json}`` line and
appends it to ``$LAMBDA_RT_CHAOS_REPORT`` (``make chaos`` collects them for
docs/reliability.md).

Sizes: ``LAMBDA_RT_CHAOS=full`` (``make chaos``) or the reduced default (CI).
Nothing here is mocked: processes are ``python -m lambda_rt ...`` subprocesses
against real servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.dlq import read_dead_letters
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_batches
from lambda_rt.stack import launcher
from lambda_rt.testing import oracle_frame, oracle_metrics, oracle_rejects
from lambda_rt.vocabulary import METRICS
from speed_layer.keys import SpeedKeys

__all__ = [
    "FULL",
    "Daemon",
    "MergedCheck",
    "applied_total",
    "batch_catch_up",
    "check_dlq",
    "check_merged",
    "check_served",
    "chunked",
    "generate",
    "handles_sigterm",
    "private_stack",
    "produce_in_background",
    "record",
    "record_check",
    "size",
    "speed_process",
    "terminate_cleanly",
    "wait_until",
]

FULL = os.environ.get("LAMBDA_RT_CHAOS", "reduced") == "full"
_BY = {"inventory_delta": "store_id,product_id", "unique_customers": ""}
HLL_TOLERANCE = 0.03  # speed-layer distinct counts are HyperLogLog (~0.8% standard error)


def size(reduced: int, full: int) -> int:
    """The scenario parameter for the current form."""
    return full if FULL else reduced


def generate(
    n: int, *, seed: int, bad_fraction: float = 0.02, end_ms: int | None = None, span_ms: int = 10 * 60_000
) -> list[bytes]:
    """``n`` generated values (a few percent malformed) ending now (or at ``end_ms``)."""
    gen = EventGenerator(
        GeneratorConfig(
            seed=seed,
            bad_fraction=bad_fraction,
            stores=40,
            customers=4000,
            products=60,
            end_ms=end_ms,
            span_ms=span_ms,
        )
    )
    return [v for _, v in gen.batch(n)]


def record(scenario: str, **figures: Any) -> dict[str, Any]:
    """Print the scenario's summary line and append it to ``$LAMBDA_RT_CHAOS_REPORT``."""
    line = {"scenario": scenario, "form": "full" if FULL else "reduced", **figures}
    text = "CHAOS-SUMMARY " + json.dumps(line, sort_keys=True)
    print(text, flush=True)
    out = os.environ.get("LAMBDA_RT_CHAOS_REPORT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return line


def record_check(
    scenario: str, check: MergedCheck, dlq: tuple[int, int] | None = None, **figures: Any
) -> dict[str, Any]:
    """:func:`record` with the figures every scenario reports from its merged check and DLQ."""
    if dlq is not None:
        figures = {"dlq_expected": dlq[0], "dlq_found": dlq[1], **figures}
    return record(
        scenario,
        produced=check.produced,
        valid=check.valid,
        lost=check.lost,
        double_counted=check.doubled,
        mismatched_metrics=sorted(check.mismatches),
        **figures,
    )


def chunked(values: list[bytes], n: int) -> list[list[bytes]]:
    """``values`` in consecutive chunks of ``n``."""
    return [values[i : i + n] for i in range(0, len(values), n)]


def produce_in_background(
    settings: Settings, chunks: Sequence[list[bytes]], pause_s: float
) -> threading.Thread:
    """Produce each chunk to the events topic, ``pause_s`` apart, in a daemon thread (started)."""

    def run() -> None:
        with KafkaProducer(settings.kafka) as producer:
            for chunk in chunks:
                produce_batches(producer, settings.kafka.topic, [[(b"k", v) for v in chunk]])
                time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> float:
    """Poll ``check``; return the seconds it took, fail naming ``what`` otherwise."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if check():
            return time.monotonic() - t0
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def applied_total(settings: Settings) -> int:
    """Messages the speed layer has applied: the sum of Redis' next offsets."""
    client = make_redis(settings.redis)
    try:
        return sum(int(v) for v in client.hvals(SpeedKeys(settings.redis.key_prefix).offsets))
    finally:
        client.close()


def speed_process(env: dict[str, str], idle_s: float | None = None, **extra: str) -> subprocess.Popen[bytes]:
    """``lambda-rt speed`` as a subprocess (stderr kept for the report line)."""
    cmd = [sys.executable, "-m", "lambda_rt", "speed"]
    if idle_s is not None:
        cmd += ["--until-idle", str(idle_s)]
    return subprocess.Popen(
        cmd, env={**env, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def handles_sigterm(pid: int) -> bool:
    """Whether ``pid`` has installed a SIGTERM handler (Linux: ``SigCgt`` of /proc/PID/status).

    ``lambda-rt speed`` installs it right before its loop; a SIGTERM sent
    earlier (during imports) kills it with -15 instead of a clean stop. The
    one /proc read left in the project: psutil does not expose the
    caught-signal mask.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        return False
    return False


def terminate_cleanly(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> bytes:
    """SIGTERM once the process handles it; assert a clean exit (0); return its stderr.

    A process still running ``timeout_s`` later is asked for its thread stacks
    (``lambda-rt`` dumps them on SIGUSR1), killed, and the failure shows them.
    """
    wait_until(lambda: proc.poll() is not None or handles_sigterm(proc.pid), timeout_s, "a SIGTERM handler")
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(
            f"no exit {timeout_s:.0f} s after SIGTERM; its stacks:\n{err.decode(errors='replace')[-6000:]}"
        ) from None
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return err


def kill9(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL one process we started, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


# -- the checks ---------------------------------------------------------------------
@dataclass
class MergedCheck:
    """How the merged answers compare with the oracle."""

    produced: int
    valid: int
    lost: int = 0  # events the merged answer misses (oracle - answer, summed where positive)
    doubled: int = 0  # events counted more than once (answer - oracle, summed where positive)
    mismatches: dict[str, int] = field(default_factory=dict)  # metric -> differing rows
    holes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.lost and not self.doubled and not self.mismatches

    def __add__(self, other: MergedCheck) -> MergedCheck:
        """Two checks over disjoint traffic (e.g. two time ranges) as one."""
        mismatches = dict(self.mismatches)
        for metric, rows in other.mismatches.items():
            mismatches[metric] = mismatches.get(metric, 0) + rows
        return MergedCheck(
            produced=self.produced + other.produced,
            valid=self.valid + other.valid,
            lost=self.lost + other.lost,
            doubled=self.doubled + other.doubled,
            mismatches=mismatches,
            holes=self.holes + other.holes,
        )


def _compare(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    g = got[[*keys, "value"]].copy()
    w = want[[*keys, "value"]].copy()
    for frame in (g, w):
        frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
        for k in keys[1:]:
            frame[k] = frame[k].astype("int64") if k != "event_type" else frame[k].astype(str)
    merged = g.merge(w, on=keys, how="outer", suffixes=("_got", "_want")).fillna(0)
    merged["diff"] = merged["value_got"].astype("int64") - merged["value_want"].astype("int64")
    if metric == "unique_customers":
        limit = (merged["value_want"] * HLL_TOLERANCE).clip(lower=2)
        return merged[merged["diff"].abs() > limit]
    return merged[merged["diff"] != 0]


def check_merged(
    query: Callable[[str, str | None, str, str, str], pd.DataFrame],
    values: list[bytes],
    now_ms: int,
    *,
    start: str,
    end: str,
    granularity: str = "minute",
    coverage: Callable[[], list[dict[str, Any]]] | None = None,
) -> MergedCheck:
    """Compare every metric of the merged query with the oracle over ``values``.

    ``query(metric, by, start, end, granularity)`` is a serving client's
    ``query``. ``lost``/``doubled`` are counted on ``events`` by store and
    event type; every other metric must match row for row (distinct counts
    within the HyperLogLog tolerance when served by the speed layer).
    """
    frame = oracle_frame(values, now_ms=now_ms)
    out = MergedCheck(produced=len(values), valid=len(frame))
    for metric in METRICS:
        by = _BY.get(metric, "store_id")
        if metric == "events":
            by = "store_id,event_type"
        dims = [d for d in by.split(",") if d]
        got = query(metric, by or None, start, end, granularity)
        want = oracle_metrics(frame, metric, tuple(dims), granularity)
        if metric != "unique_customers":
            got = got[got["value"] != 0]
        bad = _compare(got, want, ["bucket", *dims], metric)
        if metric == "events":
            out.lost = int((-bad["diff"]).clip(lower=0).sum())
            out.doubled = int(bad["diff"].clip(lower=0).sum())
        if len(bad):
            out.mismatches[metric] = len(bad)
            print(f"{metric}: {len(bad)} rows differ, e.g.\n{bad.head(5)}", file=sys.stderr)
        if coverage is not None:
            out.holes = coverage()
    return out


def check_served(
    settings: Settings, values: list[bytes], now_ms: int, *, start: str, end: str, granularity: str = "minute"
) -> MergedCheck:
    """:func:`check_merged` through an in-process serving client on ``settings``."""
    import serving

    with serving.LocalClient(settings) as client:
        return check_merged(client.query, values, now_ms, start=start, end=end, granularity=granularity)


def batch_catch_up(settings: Settings, now_ms: int) -> Settings:
    """Ingest everything, then recompute an hour past ``now_ms`` with no lateness allowance.

    Returns the settings the recompute ran with (serving must read the same views).
    """
    from datetime import UTC, datetime

    from batch_layer.ingest import Ingestor
    from batch_layer.recompute import run_recompute
    from lambda_rt.clients.clickhouse import open_clickhouse

    client = open_clickhouse(settings)
    Ingestor(settings, client).run(until_idle_s=3.0)
    settings = settings.model_copy(
        update={
            "batch": settings.batch.model_copy(update={"allowed_lateness_s": 0}),
            "dask": settings.dask.model_copy(update={"processes": False}),
        }
    )
    run_recompute(settings, client, now=datetime.fromtimestamp(now_ms / 1000 + 3600, tz=UTC))
    return settings


def check_dlq(
    settings: Settings, values: list[bytes], now_ms: int, *, idle_s: float = 2.0
) -> tuple[int, int]:
    """(expected, found) dead letters; asserts the DLQ holds exactly the bad messages.

    The DLQ is read until no message came for ``idle_s``: a DLQ written in
    hundreds of small batches is served slowly by the S3-backed broker.
    """
    want = sorted((values[i], r) for i, r in oracle_rejects(values, now_ms=now_ms))
    got = sorted((d.value, d.reason) for d in read_dead_letters(settings.kafka, idle_s=idle_s, dedupe=True))
    missing = len(set(want) - set(got))
    extra = len(set(got) - set(want))
    assert got == want, f"DLQ differs: {missing} bad messages missing, {extra} unexpected"
    return len(want), len(got)


# -- the platform daemon as a subprocess -----------------------------------------------
class Daemon:
    """``lambda-rt serve --port 0`` in a subprocess, found through its serve.json."""

    def __init__(self, env: dict[str, str], state_dir: Path, **extra: str) -> None:
        self.path = state_dir / "serve.json"
        self.path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lambda_rt", "serve", "--port", "0", "--no-schedule"],
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.url = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"daemon exited {self.proc.returncode}: {err[-2000:]}")
            try:
                info = json.loads(self.path.read_text())
                if info.get("pid") == self.proc.pid:
                    self.url = str(info["url"])
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("daemon did not publish serve.json in 90 s")
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def hot_rows(self) -> int:
        tiers = self.http.get("/status").json()["tiers"]
        return int(tiers.get("events_hot", {}).get("rows", 0))

    def query(self, metric: str, by: str | None, start: str, end: str, granularity: str) -> pd.DataFrame:
        params = {"metric": metric, "start": start, "end": end, "granularity": granularity}
        if by:
            params["by"] = by
        r = self.http.get("/query", params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        self.last_coverage = doc["coverage"]
        rows = pd.DataFrame(doc["rows"])
        if rows.empty:
            dims = [d for d in (by or "").split(",") if d]
            return pd.DataFrame(columns=["bucket", *dims, "value"])
        return rows

    def kill9(self) -> None:
        self.http.close()
        kill9(self.proc)

    def stop(self) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                kill9(self.proc)
        return int(self.proc.returncode)


# -- a private stack (restart scenarios must not touch the session one) ----------------
@contextmanager
def private_stack(state_dir: Path) -> Iterator[Settings]:
    """S3 + durable broker + Redis of our own, on free ports, stopped at the end."""
    from lambda_rt.stack import free_stack_ports

    with launcher.running_stack(state_dir, **free_stack_ports()) as settings:
        yield settings
