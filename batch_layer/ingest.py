"""Master-dataset ingest: Kafka group ``ingest`` -> ClickHouse ``events_hot``.

Per consumed batch, in this order (each step safe to redo after a crash):

1. Split messages into blocks, one per partition and contiguous offset range.
2. Record each new block's intent ``(topic, partition, first, last, token)`` in
   ``ingest_log``. After a restart the consumer re-forms exactly the blocks
   logged past the committed offset, so a replay builds the same blocks with the
   same tokens (the dedup token alone is not enough: a replay could batch
   differently).
3. Validate each block (``lambda_rt.events.validate``); rejects go to the DLQ
   through the shared :class:`lambda_rt.dlq.DeadLetterWriter`.
4. Insert the valid rows, every field kept (known ones as columns, the rest
   as JSON in ``extra``, see :mod:`lambda_rt.events.extra`), with
   ``insert_deduplication_token = topic:partition:first-last``: a block
   inserted before a crash inserts nothing when replayed.
5. Ledger late events (``ts`` older than now - allowed lateness: their window
   may already be in the batch views) so the next recompute revises them.
6. Flush the DLQ, then commit the offsets (after the insert: nothing is lost).

:class:`Ingestor` runs in the foreground (``lambda-rt ingest``) or in a thread of
the platform daemon (``stop`` event). It does not aggregate anything.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, Message, TopicPartition

from batch_layer import state
from batch_layer.migrations import ensure_tables
from batch_layer.runtime import crash_point
from batch_layer.tables import EVENT_COLUMNS, EVENTS_HOT, INGEST_LOG
from lambda_rt.clients.clickhouse import Client
from lambda_rt.clients.kafka import ConsumerErrorPolicy, KafkaProducer, make_consumer
from lambda_rt.config import Settings
from lambda_rt.dlq import DeadLetterWriter
from lambda_rt.events.extra import extra_json
from lambda_rt.events.validate import TimeWindow, validate_batch
from lambda_rt.idle import idle_wait_s, topic_partition_count

__all__ = ["IngestReport", "Ingestor", "to_hot_table"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "event_id": pa.string(),
    "event_type": pa.string(),
    "ts": pa.timestamp("ms", tz="UTC"),
    "store_id": pa.uint64(),
    "customer_id": pa.uint64(),
    "session_id": pa.string(),
    "schema_version": pa.uint16(),
    "product_id": pa.int64(),
    "quantity": pa.int64(),
    "order_id": pa.string(),
    "amount_cents": pa.int64(),
    "items": pa.int64(),
    "status": pa.string(),
    "method": pa.string(),
    "delta": pa.int64(),
    "kafka_partition": pa.uint16(),
    "kafka_offset": pa.uint64(),
    "campaign_id": pa.string(),
    "card_fingerprint": pa.string(),
    "ip": pa.string(),
    "device_id": pa.string(),
    "stock_on_hand": pa.int64(),
    "extra": pa.string(),
}
_KEEP_NULL = frozenset({"stock_on_hand"})  # Nullable in the tables: 0 is a real stock level


def to_hot_table(
    events: pa.Table, partitions: np.ndarray, offsets: np.ndarray, extra: pa.Array | None = None
) -> pa.Table:
    """Validated events (``EVENT_SCHEMA``) -> the ``events_hot`` column layout.

    Absent optional fields become the type's default (0 or ''), except
    ``stock_on_hand`` (stays NULL), see :mod:`batch_layer.tables`. ``extra`` is
    the JSON of each event's fields no column holds (``lambda_rt.events.extra``).
    """
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in EVENT_COLUMNS:
        typ = _ARROW_TYPES[name]
        if name == "kafka_partition":
            cols[name] = pa.array(partitions, typ)
            continue
        if name == "kafka_offset":
            cols[name] = pa.array(offsets, typ)
            continue
        if name == "extra" and extra is not None:
            cols[name] = extra
            continue
        col = events.column(name) if name in events.column_names else pa.nulls(events.num_rows, typ)
        if name in _KEEP_NULL:
            cols[name] = col.cast(typ)
            continue
        if name == "ts":
            cols[name] = col.cast(pa.int64()).cast(typ)
            continue
        default: Any = "" if pa.types.is_string(typ) else 0
        if name == "schema_version":
            default = 1
        cols[name] = pc.fill_null(col.cast(typ), pa.scalar(default, typ))
    return pa.table(cols)


@dataclass
class IngestReport:
    """Counters of one ingest run."""

    consumed: int = 0
    inserted: int = 0
    rejected: int = 0
    late: int = 0
    blocks: int = 0
    replayed_blocks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"ingest: consumed {self.consumed:,}, inserted {self.inserted:,}, "
            f"rejected to DLQ {self.rejected:,}, late {self.late:,}, blocks {self.blocks:,} "
            f"(replayed {self.replayed_blocks}), {self.seconds:.1f} s"
        )


@dataclass
class _Block:
    partition: int
    first: int
    last: int
    token: str
    messages: list[Message] = field(default_factory=list)
    replay: bool = False


class Ingestor:
    """The ingest loop; host it in a thread with a ``stop`` event, or run it alone."""

    def __init__(self, settings: Settings, client: Client, *, producer: KafkaProducer | None = None) -> None:
        self._settings = settings
        self._client = client
        self._producer = producer
        self._topic = settings.kafka.topic
        self._intents: dict[int, deque[tuple[int, int, str]]] = {}
        self._buffers: dict[int, list[Message]] = {}
        self._fresh: set[int] = set()
        self._owned: set[int] = set()  # partitions assigned to this member now
        self._partitions_total: int | None = None
        self._assigned_at: float | None = None
        self.report = IngestReport()

    def run(self, stop: threading.Event | None = None, until_idle_s: float | None = None) -> IngestReport:
        """Consume until ``stop`` is set or no message arrived for ``until_idle_s``."""
        t0 = time.monotonic()
        ensure_tables(self._client)
        # a producer passed in belongs to the caller; the one made here is closed here
        owned = self._producer is None
        producer = KafkaProducer(self._settings.kafka) if self._producer is None else self._producer
        dlq = DeadLetterWriter(producer, self._settings.kafka.dlq_topic)
        errors = ConsumerErrorPolicy()
        consumer = make_consumer(self._settings.kafka, self._settings.batch.ingest_group)
        last_msg = time.monotonic()
        try:
            consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._partitions_total = topic_partition_count(consumer, self._topic)
            while not (stop is not None and stop.is_set()):
                msgs = consumer.consume(num_messages=self._settings.batch.ingest_batch_size, timeout=0.5)
                good = errors.good(msgs)
                if good:
                    last_msg = time.monotonic()
                    self._handle(consumer, dlq, good)
                elif until_idle_s is not None and self._idle(last_msg, t0, until_idle_s):
                    break
        finally:
            consumer.close()
            if owned:
                producer.close()
            self.report.seconds = time.monotonic() - t0
        return self.report

    def _idle(self, last_msg: float, t0: float, until_idle_s: float) -> bool:
        """Idle counts from the later of the last message and the partition assignment.

        Joining the group takes seconds on this broker; before the first
        assignment only a generous join timeout ends the run.
        """
        now = time.monotonic()
        if self._assigned_at is None:
            return now - t0 >= until_idle_s + 30.0
        wait = idle_wait_s(
            until_idle_s,
            self._settings.kafka.session_timeout_ms / 1000,
            len(self._fresh),
            self._partitions_total,
        )
        return now - max(last_msg, self._assigned_at) >= wait

    # -- rebalance -------------------------------------------------------------
    def _on_assign(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._assigned_at = time.monotonic()
        self._owned.update(tp.partition for tp in parts)
        for tp in parts:
            self._fresh.add(tp.partition)
            self._intents.pop(tp.partition, None)
            self._buffers.pop(tp.partition, None)

    def _on_revoke(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._assigned_at = time.monotonic()
        self._owned.difference_update(tp.partition for tp in parts)
        for tp in parts:
            self._fresh.discard(tp.partition)
            self._intents.pop(tp.partition, None)
            self._buffers.pop(tp.partition, None)

    def _load_intents(self, partition: int, first_offset: int) -> None:
        rows = self._client.query(
            f"SELECT first, last, token FROM {INGEST_LOG} WHERE topic = %(t)s AND partition = %(p)s "
            f"AND last >= %(o)s ORDER BY first",
            parameters={"t": self._topic, "p": partition, "o": first_offset},
        ).result_rows
        self._intents[partition] = deque((int(f), int(la), str(tok)) for f, la, tok in rows)

    # -- one batch -------------------------------------------------------------
    def _blocks(self, msgs: list[Message]) -> list[_Block]:
        by_part: dict[int, list[Message]] = {}
        for m in msgs:
            by_part.setdefault(_part(m), []).append(m)
        blocks: list[_Block] = []
        for p, part_msgs in by_part.items():
            buf = self._buffers.pop(p, []) + sorted(part_msgs, key=lambda m: _off(m))
            if p in self._fresh:
                self._fresh.discard(p)
                self._load_intents(p, _off(buf[0]))
            intents = self._intents.get(p) or deque()
            while intents and buf:
                first, last, token = intents[0]
                if _off(buf[-1]) < last:
                    break  # wait for the rest of the logged block
                intents.popleft()
                take = [m for m in buf if first <= _off(m) <= last]
                buf = [m for m in buf if _off(m) > last]
                blocks.append(_Block(p, first, last, token, take, replay=True))
            if intents:
                self._buffers[p] = buf
                continue
            if buf:
                first, last = _off(buf[0]), _off(buf[-1])
                token = f"{self._topic}:{p}:{first}-{last}"
                blocks.append(_Block(p, first, last, token, buf))
        return blocks

    def _handle(self, consumer: Consumer, dlq: DeadLetterWriter, msgs: list[Message]) -> None:
        self.report.consumed += len(msgs)
        blocks = self._blocks(msgs)
        if not blocks:
            return
        new = [b for b in blocks if not b.replay]
        if new:
            now = datetime.now(UTC)
            self._client.insert(
                INGEST_LOG,
                [[self._topic, b.partition, b.first, b.last, b.token, now] for b in new],
                column_names=["topic", "partition", "first", "last", "token", "recorded_at"],
            )
        crash_point(self._settings, "ingest:logged")
        window = TimeWindow(
            max_age_ms=self._settings.speed.max_event_age_ms,
            max_future_ms=self._settings.speed.max_event_future_ms,
        )
        late_ts: list[np.ndarray] = []
        now_ms = int(time.time() * 1000)
        for b in blocks:
            values = [m.value() or b"" for m in b.messages]
            offsets = np.array([_off(m) for m in b.messages], dtype=np.int64)
            parts = np.full(len(values), b.partition, dtype=np.int64)
            vb = validate_batch(values, now_ms=now_ms, window=window)
            if vb.rejects:
                dlq.send(vb.rejects, values, parts, offsets, self._topic)
                self.report.rejected += len(vb.rejects)
            if vb.n_valid:
                extra = extra_json(values, vb.table, vb.indices)
                table = to_hot_table(vb.table, parts[vb.indices], offsets[vb.indices], extra)
                self._client.insert_arrow(EVENTS_HOT, table, settings={"insert_deduplication_token": b.token})
                self.report.inserted += vb.n_valid
                ts = vb.table.column("ts").to_numpy()
                late_ts.append(ts[ts < now_ms - self._settings.batch.allowed_lateness_s * 1000])
            self.report.blocks += 1
            self.report.replayed_blocks += int(b.replay)
        crash_point(self._settings, "ingest:inserted")
        if late_ts:
            self.report.late += state.record_late(self._client, np.concatenate(late_ts), now_ms)
        dlq.flush()
        ends: dict[int, int] = {}
        for b in blocks:
            ends[b.partition] = max(ends.get(b.partition, -1), b.last)
        consumer.commit(
            offsets=[TopicPartition(self._topic, p, last + 1) for p, last in ends.items()],
            asynchronous=False,
        )
        crash_point(self._settings, "ingest:committed")


def _off(m: Message) -> int:
    return int(m.offset() or 0)


def _part(m: Message) -> int:
    return int(m.partition() or 0)
