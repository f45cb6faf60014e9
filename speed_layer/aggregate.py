"""Vectorised micro-batch aggregation: valid events -> one :class:`BatchDelta`.

Pure numpy/Arrow over the whole batch (sorts, ``np.unique``, ``reduceat``):
the only Python loops run over distinct buckets and keys, never over events.
The result is everything one atomic Redis call needs: hash increments per
bucket key, HyperLogLog members per key, the partition offset ranges the
batch covers, and meta counters. It does not talk to Redis or Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from speed_layer.keys import META_BATCHES, META_EVENTS, META_MESSAGES, SpeedKeys

__all__ = ["BatchDelta", "aggregate", "offset_ranges"]

I64 = npt.NDArray[np.int64]

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_GRAN_MS = (("m", _MINUTE_MS), ("h", _HOUR_MS))


@dataclass
class BatchDelta:
    """The Redis effect of one micro-batch (see ``speed_layer/apply.lua``)."""

    offsets: list[tuple[int, int, int]]  # (partition, first offset, next offset)
    hash_keys: list[str] = field(default_factory=list)
    hash_fields: list[list[str]] = field(default_factory=list)
    hash_values: list[list[int]] = field(default_factory=list)
    hll_keys: list[str] = field(default_factory=list)
    hll_members: list[list[int]] = field(default_factory=list)
    meta: dict[str, int] = field(default_factory=dict)
    max_event_ts: int = 0
    events: int = 0

    @property
    def increments(self) -> int:
        """Number of hash increments (a cost figure for metrics and the bench)."""
        return sum(len(f) for f in self.hash_fields)


def offset_ranges(partitions: I64, offsets: I64) -> list[tuple[int, int, int]]:
    """``(partition, min offset, max offset + 1)`` for every partition present."""
    if len(partitions) == 0:
        return []
    out: list[tuple[int, int, int]] = []
    for p in np.unique(partitions).tolist():
        sel = offsets[partitions == p]
        out.append((int(p), int(sel.min()), int(sel.max()) + 1))
    return out


def _split(sorted_major: I64) -> tuple[I64, I64]:
    """Start/end indices of runs of equal values in a sorted array."""
    if len(sorted_major) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    cuts = np.flatnonzero(np.diff(sorted_major)) + 1
    starts = np.concatenate(([0], cuts)).astype(np.int64)
    ends = np.concatenate((cuts, [len(sorted_major)])).astype(np.int64)
    return starts, ends


def _col(table: pa.Table, name: str) -> I64:
    """An int column as int64 numpy (nulls -> 0; callers filter rows first)."""
    arr = table.column(name)
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


class _Builder:
    def __init__(self, keys: SpeedKeys, delta: BatchDelta) -> None:
        self.keys = keys
        self.delta = delta

    def add_hash(
        self, gran: str, metric: str, bucket: I64, labels: pa.Array, values: I64 | None
    ) -> None:
        """Group rows by (bucket, label) and add one increment per group."""
        if len(bucket) == 0:
            return
        label_codes, label_uniques = _factorize(labels)
        composite = bucket * np.int64(len(label_uniques)) + label_codes
        order = np.argsort(composite, kind="stable")
        comp_sorted = composite[order]
        starts, _ = _split(comp_sorted)
        uniq = comp_sorted[starts]
        if values is None:
            sums = np.diff(np.append(starts, len(comp_sorted)))
        else:
            sums = np.add.reduceat(values[order], starts)
        g_bucket = uniq // len(label_uniques)
        g_label = uniq % len(label_uniques)
        names: list[str] = label_uniques.take(pa.array(g_label)).to_pylist()
        sums_list: list[int] = sums.astype(np.int64).tolist()
        bstarts, bends = _split(g_bucket)
        width_s = _GRAN_MS_DICT[gran] // 1000
        for s, e in zip(bstarts.tolist(), bends.tolist(), strict=True):
            self.delta.hash_keys.append(self.keys.agg(gran, int(g_bucket[s]) * width_s, metric))
            self.delta.hash_fields.append(names[s:e])
            self.delta.hash_values.append(sums_list[s:e])

    def add_hll(self, bucket: I64, members: I64, key_of: list[str]) -> None:
        """PFADD ``members`` grouped by ``bucket`` (an index into ``key_of``)."""
        if len(bucket) == 0:
            return
        order = np.lexsort((members, bucket))
        b_sorted = bucket[order]
        m_sorted = members[order]
        keep = np.ones(len(order), dtype=bool)  # drop repeats within a key
        keep[1:] = (b_sorted[1:] != b_sorted[:-1]) | (m_sorted[1:] != m_sorted[:-1])
        b_sorted = b_sorted[keep]
        m_list: list[int] = m_sorted[keep].tolist()
        starts, ends = _split(b_sorted)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            self.delta.hll_keys.append(key_of[int(b_sorted[s])])
            self.delta.hll_members.append(m_list[s:e])


_GRAN_MS_DICT = dict(_GRAN_MS)


def _factorize(labels: pa.Array) -> tuple[I64, pa.Array]:
    encoded = pc.dictionary_encode(labels)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, encoded.dictionary


def _store_label(table: pa.Table, *others: str) -> pa.Array:
    parts = [pc.cast(table.column("store_id"), pa.string())]
    parts += [pc.cast(table.column(o), pa.string()) for o in others]
    if len(parts) == 1:
        return _chunk(parts[0])
    return _chunk(pc.binary_join_element_wise(*parts, ":"))


def _chunk(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def aggregate(
    table: pa.Table,
    keys: SpeedKeys,
    *,
    partitions: I64,
    offsets: I64,
    extra_meta: dict[str, int] | None = None,
) -> BatchDelta:
    """Aggregate the valid events of one micro-batch into a :class:`BatchDelta`.

    Args:
        table: the valid events (columns of ``EVENT_SCHEMA``), any order.
        keys: the key layout to write under.
        partitions, offsets: coordinates of *every* message of the batch
            (valid, rejected and shed), so the offset ranges cover them all.
        extra_meta: counters to add to ``P:meta`` (DLQ and shed counts).
    """
    delta = BatchDelta(offsets=offset_ranges(partitions, offsets))
    n = table.num_rows
    delta.events = n
    delta.meta = {META_MESSAGES: int(len(offsets)), META_EVENTS: n, META_BATCHES: 1}
    if extra_meta:
        for k, v in extra_meta.items():
            delta.meta[k] = delta.meta.get(k, 0) + int(v)
    if n == 0:
        return delta
    ts = _col(table, "ts")
    delta.max_event_ts = int(ts.max())
    etype = _chunk(table.column("event_type"))
    b = _Builder(keys, delta)
    is_order = _mask(pc.equal(etype, "order_placed"))
    is_refund = _mask(pc.equal(etype, "refund"))
    is_fail = _mask(pc.and_(pc.equal(etype, "payment"), pc.equal(table.column("status"), "failed")))
    is_inv = _mask(pc.equal(etype, "inventory_update"))
    store_type = _store_label(table, "event_type")
    store = _store_label(table)
    amount = _col(table, "amount_cents")
    for gran, width_ms in _GRAN_MS:
        bucket = ts // width_ms
        b.add_hash(gran, "events", bucket, store_type, None)
        b.add_hash(gran, "orders", bucket[is_order], store.filter(pa.array(is_order)), None)
        b.add_hash(gran, "revenue", bucket[is_order], store.filter(pa.array(is_order)), amount[is_order])
        b.add_hash(gran, "refunds", bucket[is_refund], store.filter(pa.array(is_refund)), amount[is_refund])
        b.add_hash(gran, "payment_failures", bucket[is_fail], store.filter(pa.array(is_fail)), None)
        if is_inv.any():
            inv = table.filter(pa.array(is_inv))
            b.add_hash(gran, "inventory_delta", bucket[is_inv], _store_label(inv, "product_id"), _col(inv, "delta"))
    _add_hlls(b, table, ts, etype, keys)
    return delta


def _mask(arr: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    filled = pc.fill_null(arr, False)
    return np.asarray(_chunk(filled).to_numpy(zero_copy_only=False), dtype=bool)


def _add_hlls(b: _Builder, table: pa.Table, ts: I64, etype: pa.Array, keys: SpeedKeys) -> None:
    """Per (minute, type), (hour, type) and (hour, store) customer HLLs.

    Keys are built only for the (bucket, label) pairs present in the batch.
    """
    customers = _col(table, "customer_id")
    type_codes, type_names = _factorize(etype)
    names: list[str] = type_names.to_pylist()
    for gran, width_ms in _GRAN_MS:
        width_s = width_ms // 1000
        _hll_by(
            b,
            ts // width_ms,
            type_codes,
            len(names),
            customers,
            lambda bk, code, g=gran, w=width_s: keys.hll_event_type(g, bk * w, names[code]),
        )
    store_codes, store_uniques = _factorize(_chunk(table.column("store_id")))
    stores: list[int] = store_uniques.to_pylist()
    _hll_by(
        b,
        ts // _HOUR_MS,
        store_codes,
        len(stores),
        customers,
        lambda bk, code: keys.hll_store(bk * 3600, stores[code]),
    )


def _hll_by(
    b: _Builder,
    bucket: I64,
    codes: I64,
    n_codes: int,
    customers: I64,
    key: Callable[[int, int], str],
) -> None:
    bmin = int(bucket.min())
    composite = (bucket - bmin) * n_codes + codes
    used, dense = np.unique(composite, return_inverse=True)
    key_of = [key(bmin + c // n_codes, c % n_codes) for c in used.tolist()]
    b.add_hll(dense.astype(np.int64).reshape(-1), customers, key_of)
