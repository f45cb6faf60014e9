"""The speed layer's streamz operators, one per step of the micro-batch path.

Each is a ``Stream`` subclass registered with ``Stream.register_api()``; its
``update`` does the step for a whole batch with array operations and emits
the result synchronously (except the Redis write when it overlaps, see
:class:`apply_redis`):

``validate_events`` (RawBatch -> CheckedBatch) -> ``dead_letters`` (DLQ, then
pass on) -> ``shed_events`` (drop low-priority types under sustained lag) ->
``aggregate_batch`` (-> (CheckedBatch, BatchDelta)) -> ``apply_redis`` (one
atomic Lua call; on a replay, drop the rows Redis already holds and retry; on
a gap, drop the partition's rows and rewind it; on a lost or changed epoch,
drop the batch and resync; optionally in a worker thread, overlapping the
next batch, at most one write in flight) -> ``commit_offsets`` (Kafka commit,
a resume hint).

No node knows the Kafka source: ``apply_redis`` emits what its writes found
about the source's positions (:class:`~speed_layer.positioning.Corrections`)
on its ``corrections`` stream, and ``commit_offsets`` calls the commit
function it is given. The pipeline wires both to the source
(``speed_layer.graph``); the in-memory harness (``speed_layer.testing``)
collects them instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from streamz import Stream

from lambda_rt.events.validate import TimeWindow, validate_batch
from speed_layer.aggregate import BatchDelta, aggregate
from speed_layer.keys import SpeedKeys
from speed_layer.lag import LagTracker
from speed_layer.metrics import SpeedMetrics
from speed_layer.microbatch import AppliedBatch, CheckedBatch, RawBatch
from speed_layer.positioning import Corrections
from speed_layer.redis_apply import GAP, STALE, BatchApplier
from speed_layer.shedding import LoadShedder

__all__ = [
    "CommitOffsets",
    "DeadLetterSink",
    "aggregate_batch",
    "apply_redis",
    "commit_offsets",
    "dead_letters",
    "shed_events",
    "validate_events",
]


CommitOffsets = Callable[[list[tuple[int, int, int]]], None]
"""Commits ``(partition, first, next)`` ranges (the source's Kafka commit)."""


class DeadLetterSink(Protocol):
    """Where rejects go: ``lambda_rt.dlq.DeadLetterWriter``, or a list in tests."""

    def send(
        self,
        rejects: Any,
        values: Any,
        partitions: Any,
        offsets: Any,
        source_topic: str,
    ) -> int: ...

    def flush(self) -> None: ...


@Stream.register_api()
class validate_events(Stream):
    """Decode and validate a RawBatch against the schema registry (vectorised)."""

    def __init__(self, upstream: Stream, window: TimeWindow, **kwargs: Any) -> None:
        self.window = window
        super().__init__(upstream, **kwargs)

    def update(self, x: RawBatch, who: Any = None, metadata: Any = None) -> Any:
        checked = validate_batch(x.values, now_ms=int(time.time() * 1000), window=self.window)
        reasons: Counter[str] = Counter(str(r.reason) for r in checked.rejects)
        out = CheckedBatch(
            raw=x,
            table=checked.table,
            rows=np.asarray(checked.indices, dtype=np.int64),
            rejects=list(checked.rejects),
            dlq_by_reason=reasons,
        )
        return self._emit(out, metadata=metadata)


@Stream.register_api()
class dead_letters(Stream):
    """Send the batch's rejects to the DLQ and wait for the broker's ack.

    Flushed before the batch is applied to Redis, so a crash repeats a dead
    letter rather than losing it (see ``lambda_rt.dlq``). With ``defer_flush``
    the wait for the ack moves to the Redis writer thread (``before_write``),
    still ahead of that batch's write, so it overlaps the next batch's work.
    """

    def __init__(
        self, upstream: Stream, writer: DeadLetterSink, defer_flush: bool = False, **kwargs: Any
    ) -> None:
        self.writer = writer
        self.defer_flush = defer_flush
        super().__init__(upstream, **kwargs)

    def update(self, x: CheckedBatch, who: Any = None, metadata: Any = None) -> Any:
        if x.rejects:
            raw = x.raw
            self.writer.send(x.rejects, raw.values, raw.partitions, raw.offsets, raw.topic)
            if self.defer_flush:
                x.before_write = self.writer.flush
            else:
                self.writer.flush()
        return self._emit(x, metadata=metadata)


@Stream.register_api()
class shed_events(Stream):
    """Drop the shedder's event types from the batch while it is active (counted)."""

    def __init__(self, upstream: Stream, shedder: LoadShedder, **kwargs: Any) -> None:
        self.shedder = shedder
        super().__init__(upstream, **kwargs)

    def update(self, x: CheckedBatch, who: Any = None, metadata: Any = None) -> Any:
        self.shedder.lag.seconds = max(0.0, time.time() - float(x.raw.timestamps_ms.max()) / 1000)
        if self.shedder.observe() and x.table.num_rows:
            etype = x.table.column("event_type")
            drop = pc.is_in(etype, value_set=pa.array(self.shedder.event_types, pa.string()))
            drop_np = np.asarray(drop.to_numpy(), dtype=bool)
            if drop_np.any():
                counts = pc.value_counts(etype.filter(drop)).to_pylist()
                x.shed_by_type.update({c["values"]: int(c["counts"]) for c in counts})
                x.shed, x.shed_rows = x.table.filter(drop), x.rows[drop_np]
                keep = ~drop_np
                x.table = x.table.filter(pa.array(keep))
                x.rows = x.rows[keep]
        return self._emit(x, metadata=metadata)


@Stream.register_api()
class aggregate_batch(Stream):
    """Vectorised group-by of the batch into the Redis delta."""

    def __init__(self, upstream: Stream, keys: SpeedKeys, **kwargs: Any) -> None:
        self.keys = keys
        super().__init__(upstream, **kwargs)

    def update(self, x: CheckedBatch, who: Any = None, metadata: Any = None) -> Any:
        delta = aggregate(
            x.table,
            self.keys,
            partitions=x.raw.partitions,
            offsets=x.raw.offsets,
            extra_meta=x.extra_meta(),
            shed=x.shed,
        )
        return self._emit((x, delta), metadata=metadata)


def _keep_rows(x: CheckedBatch, keep_raw: np.ndarray) -> tuple[CheckedBatch, int]:
    """The batch with only the messages where ``keep_raw`` is True; and how many went."""
    raw = x.raw
    dropped = int((~keep_raw).sum())
    idx = np.flatnonzero(keep_raw)
    new_raw = RawBatch(
        topic=raw.topic,
        values=[raw.values[i] for i in idx.tolist()],
        partitions=raw.partitions[idx],
        offsets=raw.offsets[idx],
        timestamps_ms=raw.timestamps_ms[idx],
        consumed_at=raw.consumed_at,
        epoch=raw.epoch,
        allow_gaps=raw.allow_gaps,
    )
    remap = np.full(len(raw), -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    keep_rows = keep_raw[x.rows]
    kept_rejects = [r for r in x.rejects if keep_raw[int(r.index)]]  # type: ignore[attr-defined]
    checked = CheckedBatch(
        raw=new_raw,
        table=x.table.filter(pa.array(keep_rows)),
        rows=remap[x.rows[keep_rows]],
        rejects=kept_rejects,
        dlq_by_reason=Counter(str(r.reason) for r in kept_rejects),  # type: ignore[attr-defined]
    )
    if x.shed is not None:  # shed counts follow the messages this write still applies
        keep_shed = keep_raw[x.shed_rows]
        checked.shed = x.shed.filter(pa.array(keep_shed))
        checked.shed_rows = remap[x.shed_rows[keep_shed]]
        checked.shed_by_type = Counter(checked.shed.column("event_type").to_pylist())
    return checked, dropped


def _drop_applied(x: CheckedBatch, stored: dict[int, int]) -> tuple[CheckedBatch, int]:
    """The batch without the messages whose offsets Redis already holds."""
    raw = x.raw
    limit = np.full(len(raw), -1, dtype=np.int64)
    for p, off in stored.items():
        limit[raw.partitions == p] = off
    return _keep_rows(x, raw.offsets >= limit)


def _drop_partitions(x: CheckedBatch, partitions: list[int]) -> tuple[CheckedBatch, int]:
    """The batch without the messages of ``partitions`` (re-read after a rewind)."""
    return _keep_rows(x, ~np.isin(x.raw.partitions, np.asarray(partitions, dtype=np.int64)))


@Stream.register_api()
class apply_redis(Stream):
    """One atomic Redis write per batch; replays are trimmed, never double counted.

    If Redis already holds part of the batch's offset range (another member
    applied it after a rebalance, or this process restarted), the rows below
    the stored offsets are dropped, the rest is re-aggregated and written, and
    the source skips ahead on those partitions. If Redis is behind the batch
    on a partition (a gap: Redis lost writes), that partition's rows are
    dropped and the source rewinds it to Redis' offset (they are read again).
    If the epoch is missing or is not the batch's (the state was lost, or a
    rebuild started), nothing of the batch is written and the source resyncs:
    it rebuilds or adopts the epoch and repositions every partition.

    The node does not seek anything itself: what a write found goes out as one
    :class:`~speed_layer.positioning.Corrections` on :attr:`corrections` (only
    when there is something to correct), emitted on the caller's thread (the
    consuming thread: consumer calls must stay there) before the applied
    batch is passed on.

    With ``overlap`` the write runs in one worker thread while the caller
    consumes, validates and aggregates the next batch (Redis runs on another
    core). At most one write is in flight: a new batch first waits for the
    previous write (:meth:`drain`), which then flows on to the Kafka commit, so
    offsets are still committed only after their Redis write succeeded. The
    source drains before a rebalance, when idle, and before closing.
    """

    def __init__(
        self,
        upstream: Stream,
        applier: BatchApplier,
        keys: SpeedKeys,
        overlap: bool = False,
        **kwargs: Any,
    ) -> None:
        self.applier = applier
        self.keys = keys
        self.corrections = Stream()
        """Emits the :class:`Corrections` each write found (wired to the source's positioning)."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="speed-redis") if overlap else None
        self._inflight: Future[tuple[AppliedBatch | None, Corrections]] | None = None
        super().__init__(upstream, **kwargs)

    def update(self, x: tuple[CheckedBatch, BatchDelta], who: Any = None, metadata: Any = None) -> Any:
        if self._pool is None:
            return self._finish(self._write(*x), metadata)
        out = self.drain()
        self._inflight = self._pool.submit(self._write, *x)
        return out

    def drain(self) -> Any:
        """Wait for the write in flight (if any) and pass it on to the commit.

        Raises what the write raised (e.g. Redis unavailable): nothing of that
        batch was committed to Kafka, so a restart replays it.
        """
        future, self._inflight = self._inflight, None
        if future is None:
            return None
        return self._finish(future.result())

    def close(self) -> None:
        """Stop the worker thread (after :meth:`drain`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _finish(self, done: tuple[AppliedBatch | None, Corrections], metadata: Any = None) -> Any:
        applied, found = done
        if found:
            self.corrections.emit(found)
        if applied is None:
            return None
        return self._emit(applied, metadata=metadata)

    def _write(self, checked: CheckedBatch, delta: BatchDelta) -> tuple[AppliedBatch | None, Corrections]:
        """Write the batch, trimming and retrying on a replay or a gap; runs in the worker thread."""
        if checked.before_write is not None:
            checked.before_write()  # e.g. the DLQ ack: raises, and nothing is written, if it fails
        replayed = 0
        write_s = 0.0
        stale: list[dict[int, int]] = []
        gaps: list[dict[int, int]] = []
        raw = checked.raw
        arrival = int(raw.timestamps_ms.max()) if len(raw) else None
        for _ in range(100):
            if not delta.offsets:
                return None, Corrections(tuple(stale), tuple(gaps))  # nothing left to write
            result = self.applier.apply(delta, epoch=raw.epoch, arrival_ms=arrival, allow_gaps=raw.allow_gaps)
            write_s += result.seconds
            if result.applied:
                break
            if result.code == STALE:
                stale.append(result.stale)
                checked, dropped = _drop_applied(checked, result.stale)
                replayed += dropped
            elif result.code == GAP:
                gaps.append(result.gaps)
                checked, _ = _drop_partitions(checked, list(result.gaps))
            else:  # LOST or EPOCH_CHANGED: these positions belong to no current epoch
                return None, Corrections(tuple(stale), tuple(gaps), resync=True)
            delta = aggregate(
                checked.table,
                self.keys,
                partitions=checked.raw.partitions,
                offsets=checked.raw.offsets,
                extra_meta=checked.extra_meta(),
                shed=checked.shed,
            )
        else:  # pragma: no cover - would need 100 concurrent appliers racing
            raise RuntimeError("Redis kept rejecting the batch as stale")
        out = AppliedBatch(
            checked=checked,
            delta=delta,
            applied_at=time.time(),
            replayed_rows=replayed,
            write_seconds=write_s,
        )
        return out, Corrections(tuple(stale), tuple(gaps))


@Stream.register_api()
class commit_offsets(Stream):
    """Commit the applied batch's offsets (to Kafka, through ``commit``) and record metrics.

    Args:
        commit: commits ``(partition, first, next)`` ranges; the source's
            :meth:`~speed_layer.source.from_speed_kafka.commit` in a pipeline.
        lag: the source's lag, recorded with each batch in ``metrics``.
        metrics: the process metrics, or None.
    """

    def __init__(
        self,
        upstream: Stream,
        commit: CommitOffsets,
        lag: LagTracker,
        metrics: SpeedMetrics | None = None,
        **kwargs: Any,
    ) -> None:
        self.commit = commit
        self.lag = lag
        self.metrics = metrics
        super().__init__(upstream, **kwargs)

    def update(self, x: AppliedBatch, who: Any = None, metadata: Any = None) -> Any:
        self.commit(x.delta.offsets)
        if self.metrics is not None:
            self.metrics.record(x, self.lag)
        return self._emit(x, metadata=metadata)
