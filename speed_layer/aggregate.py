"""Vectorised micro-batch aggregation: valid events -> one :class:`BatchDelta`.

Pure numpy over integer codes: event types, stores and products are factorised
once, every group-by is one sort of an int64 composite key (bucket, label) and
``reduceat``; strings (hash fields, key names) are built only for the distinct
groups, never per event. The result is everything one atomic Redis call needs:
hash increments per bucket key, HyperLogLog members per key, the partition
offset ranges the batch covers, and meta counters. It does not talk to Redis
or Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lambda_rt.vocabulary import HOUR_MS, MINUTE_MS
from speed_layer.keys import (
    BUCKET_SUFFIXES,
    CAMPAIGN_EVENTS,
    CAMPAIGN_ORDERS,
    CAMPAIGN_REVENUE,
    META_BATCHES,
    META_EVENTS,
    META_MESSAGES,
    SHED,
    SpeedKeys,
    bucket_width_s,
)

__all__ = ["BatchDelta", "aggregate", "offset_ranges"]

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_GRAN_MS = tuple((suffix, bucket_width_s(suffix) * 1000) for suffix in BUCKET_SUFFIXES)
_PACK_LIMIT = 1 << 62  # composite int64 keys must stay below this


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


def _starts(sorted_keys: I64) -> I64:
    """Start index of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.empty(0, dtype=np.int64)
    cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate(([0], cuts)).astype(np.int64)


def _dense(values: I64) -> tuple[I64, I64]:
    """Distinct values (sorted) and each value's index among them (``np.unique``).

    Small non-negative ids (stores, key ids) take an O(n) bitmap instead of a sort.
    """
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi < 4 * len(values) + 65_536:
        present = np.zeros(hi + 1, dtype=bool)
        present[values] = True
        uniq = np.flatnonzero(present).astype(np.int64)
        rank = np.cumsum(present, dtype=np.int64) - 1
        return uniq, rank[values]
    uniq, codes = np.unique(values, return_inverse=True)
    return uniq.astype(np.int64), codes.astype(np.int64).reshape(-1)


def _col(table: pa.Table, name: str) -> I64:
    """An int column as int64 numpy (nulls -> 0; callers filter rows first)."""
    arr = table.column(name)
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(), dtype=np.int64)


def _factorize(arr: pa.ChunkedArray | pa.Array) -> tuple[I64, list[str]]:
    """Codes and distinct values of a string column."""
    encoded = pc.dictionary_encode(arr)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, [str(v) for v in encoded.dictionary.to_pylist()]


def _mask(arr: pa.ChunkedArray | pa.Array) -> Mask:
    filled = pc.fill_null(arr, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


class _Builder:
    """Turns grouped integer keys into the delta's key/field/value lists."""

    def __init__(self, keys: SpeedKeys, delta: BatchDelta) -> None:
        self.keys = keys
        self.delta = delta

    def add_hash(
        self,
        gran: str,
        metrics: Sequence[tuple[str, I64 | None]],
        bucket: I64,
        label: I64,
        n_labels: int,
        name_of: Callable[[list[int]], list[str]],
    ) -> None:
        """One increment per (bucket, label) group for each ``(metric, values)``.

        ``values`` None counts rows; ``name_of`` maps label codes to field names.
        """
        if len(bucket) == 0:
            return
        bmin = int(bucket.min())
        composite = (bucket - bmin) * n_labels + label
        order = np.argsort(composite)
        keys_sorted = composite[order]
        starts = _starts(keys_sorted)
        uniq = keys_sorted[starts]
        g_bucket = uniq // n_labels + bmin
        names = name_of((uniq % n_labels).tolist())
        cuts = _starts(g_bucket)
        spans = list(zip(cuts.tolist(), [*cuts[1:].tolist(), len(uniq)], strict=True))
        width_s = _WIDTH_S[gran]
        buckets_s = (g_bucket[cuts] * width_s).tolist()
        for metric, values in metrics:
            if values is None:
                sums = np.diff(np.append(starts, len(keys_sorted)))
            else:
                sums = np.add.reduceat(values[order], starts)
            sums_list: list[int] = sums.astype(np.int64).tolist()
            for b, (s, e) in zip(buckets_s, spans, strict=True):
                self.delta.hash_keys.append(self.keys.agg(gran, b, metric))
                self.delta.hash_fields.append(names[s:e])
                self.delta.hash_values.append(sums_list[s:e])

    def add_hll(self, key_ids: I64, members: I64, key_name: Callable[[list[int]], list[str]]) -> None:
        """PFADD the distinct ``members`` of each key id (names from ``key_name``)."""
        if len(key_ids) == 0:
            return
        kid, dense = _dense(key_ids)
        mmin, mmax = int(members.min()), int(members.max())
        span = mmax - mmin + 1
        if mmin >= 0 and len(kid) * span < _PACK_LIMIT:
            pairs = np.sort(dense * span + (members - mmin))
            pairs = pairs[_starts(pairs)]
            k_sorted, m_sorted = pairs // span, pairs % span + mmin
        else:  # huge ids: a two-key sort instead of one packed key
            order = np.lexsort((members, dense))
            k_sorted, m_sorted = dense[order], members[order]
            keep = np.ones(len(order), dtype=bool)
            keep[1:] = (k_sorted[1:] != k_sorted[:-1]) | (m_sorted[1:] != m_sorted[:-1])
            k_sorted, m_sorted = k_sorted[keep], m_sorted[keep]
        starts = _starts(k_sorted)
        ends = [*starts[1:].tolist(), len(k_sorted)]
        names = key_name(kid[k_sorted[starts]].tolist())
        m_list: list[int] = m_sorted.tolist()
        for name, s, e in zip(names, starts.tolist(), ends, strict=True):
            self.delta.hll_keys.append(name)
            self.delta.hll_members.append(m_list[s:e])


_WIDTH_S = {g: ms // 1000 for g, ms in _GRAN_MS}


def aggregate(
    table: pa.Table,
    keys: SpeedKeys,
    *,
    partitions: I64,
    offsets: I64,
    extra_meta: dict[str, int] | None = None,
    shed: pa.Table | None = None,
) -> BatchDelta:
    """Aggregate the valid events of one micro-batch into a :class:`BatchDelta`.

    Args:
        table: the valid events (columns of ``EVENT_SCHEMA``), any order.
        keys: the key layout to write under.
        partitions, offsets: coordinates of *every* message of the batch
            (valid, rejected and shed), so the offset ranges cover them all.
        extra_meta: counters to add to ``P:meta`` (DLQ and shed counts).
        shed: valid events shed from the speed path (not in ``table``):
            counted per bucket, store and type in the ``SHED`` hashes.
    """
    delta = BatchDelta(offsets=offset_ranges(partitions, offsets))
    n = table.num_rows
    delta.events = n
    delta.meta = {META_MESSAGES: len(offsets), META_EVENTS: n, META_BATCHES: 1}
    if extra_meta:
        for k, v in extra_meta.items():
            delta.meta[k] = delta.meta.get(k, 0) + int(v)
    b = _Builder(keys, delta)
    if shed is not None and shed.num_rows:
        _add_shed(b, shed)
    if n == 0:
        return delta
    ts = _col(table, "ts")
    delta.max_event_ts = int(ts.max())
    tcode, tnames = _factorize(table.column("event_type"))
    n_types = len(tnames)
    s_uniq, s_code = _dense(_col(table, "store_id"))
    s_names = [str(s) for s in s_uniq.tolist()]
    n_stores = len(s_names)

    def is_type(name: str) -> Mask:
        return tcode == tnames.index(name) if name in tnames else np.zeros(n, dtype=bool)

    is_order, is_refund, is_inv = is_type("order_placed"), is_type("refund"), is_type("inventory_update")
    is_fail = is_type("payment")
    if is_fail.any():
        is_fail &= _mask(pc.equal(table.column("status"), "failed"))
    amount = _col(table, "amount_cents")
    stores = lambda codes: [s_names[c] for c in codes]  # noqa: E731
    store_types = lambda codes: [  # noqa: E731
        f"{s_names[c // n_types]}:{tnames[c % n_types]}" for c in codes
    ]
    inv_label: I64 | None = None
    if is_inv.any():
        p_uniq, p_code = _dense(_col(table, "product_id")[is_inv])
        n_products = len(p_uniq)
        p_names = [str(p) for p in p_uniq.tolist()]
        inv_label = s_code[is_inv] * n_products + p_code
        inv_delta = _col(table, "delta")[is_inv]
        store_products = lambda codes: [  # noqa: E731
            f"{s_names[c // n_products]}:{p_names[c % n_products]}" for c in codes
        ]
    c_code, c_names = _campaigns(table)
    n_camps = len(c_names)
    campaigns = lambda codes: [c_names[c] for c in codes]  # noqa: E731
    type_campaigns = lambda codes: [  # noqa: E731
        f"{tnames[c % n_types]}:{c_names[c // n_types]}" for c in codes
    ]
    for gran, width_ms in _GRAN_MS:
        bucket = ts // width_ms
        b.add_hash(
            gran, [("events", None)], bucket, s_code * n_types + tcode, n_stores * n_types, store_types
        )
        b.add_hash(
            gran,
            [("orders", None), ("revenue", amount[is_order])],
            bucket[is_order],
            s_code[is_order],
            n_stores,
            stores,
        )
        b.add_hash(
            gran, [("refunds", amount[is_refund])], bucket[is_refund], s_code[is_refund], n_stores, stores
        )
        b.add_hash(gran, [("payment_failures", None)], bucket[is_fail], s_code[is_fail], n_stores, stores)
        b.add_hash(
            gran,
            [(CAMPAIGN_EVENTS, None)],
            bucket,
            c_code * n_types + tcode,
            n_camps * n_types,
            type_campaigns,
        )
        b.add_hash(
            gran,
            [(CAMPAIGN_ORDERS, None), (CAMPAIGN_REVENUE, amount[is_order])],
            bucket[is_order],
            c_code[is_order],
            n_camps,
            campaigns,
        )
        if inv_label is not None:
            b.add_hash(
                gran,
                [("inventory_delta", inv_delta)],
                bucket[is_inv],
                inv_label,
                n_stores * n_products,
                store_products,
            )
    _add_hlls(b, keys, ts, tcode, tnames, s_code, s_uniq, _col(table, "customer_id"), c_code, c_names)
    return delta


def _campaigns(table: pa.Table) -> tuple[I64, list[str]]:
    """Campaign codes and names; events without a campaign (v1 included) are campaign ``""``."""
    if "campaign_id" not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64), [""]
    column = table.column("campaign_id")
    if column.null_count:
        column = pc.fill_null(column, "")
    return _factorize(column)


def _add_shed(b: _Builder, shed: pa.Table) -> None:
    """Count the shed events per (bucket, store, type): the ``events`` field layout."""
    ts = _col(shed, "ts")
    tcode, tnames = _factorize(shed.column("event_type"))
    s_uniq, s_code = _dense(_col(shed, "store_id"))
    n_types, s_names = len(tnames), [str(s) for s in s_uniq.tolist()]

    def names(codes: list[int]) -> list[str]:
        return [f"{s_names[c // n_types]}:{tnames[c % n_types]}" for c in codes]

    for gran, width_ms in _GRAN_MS:
        label = s_code * n_types + tcode
        b.add_hash(gran, [(SHED, None)], ts // width_ms, label, len(s_names) * n_types, names)


def _add_hlls(
    b: _Builder,
    keys: SpeedKeys,
    ts: I64,
    tcode: I64,
    tnames: list[str],
    s_code: I64,
    s_uniq: I64,
    customers: I64,
    c_code: I64,
    c_names: list[str],
) -> None:
    """Per (minute, type), (hour, type), (hour, store), (hour, campaign) customer HLLs, in one pass.

    The three families share one key-id space (family, bucket, label), so one
    sort deduplicates members and groups them by key; key names are built only
    for the keys present in the batch.
    """
    n_types, n_stores = len(tnames), len(s_uniq)
    minute, hour = ts // MINUTE_MS, ts // HOUR_MS
    mmin, hmin = int(minute.min()), int(hour.min())
    n_min = int(minute.max()) - mmin + 1
    n_hour = int(hour.max()) - hmin + 1
    base_h = n_min * n_types
    base_s = base_h + n_hour * n_types
    base_c = base_s + n_hour * n_stores
    n_camps = len(c_names)
    ids = np.concatenate(
        [
            (minute - mmin) * n_types + tcode,
            base_h + (hour - hmin) * n_types + tcode,
            base_s + (hour - hmin) * n_stores + s_code,
            base_c + (hour - hmin) * n_camps + c_code,
        ]
    )
    stores = s_uniq.tolist()

    def name(key_ids: list[int]) -> list[str]:
        out: list[str] = []
        for k in key_ids:
            if k < base_h:
                bk, t = divmod(k, n_types)
                out.append(keys.hll_event_type("m", (mmin + bk) * 60, tnames[t]))
            elif k < base_s:
                bk, t = divmod(k - base_h, n_types)
                out.append(keys.hll_event_type("h", (hmin + bk) * 3600, tnames[t]))
            elif k < base_c:
                bk, s = divmod(k - base_s, n_stores)
                out.append(keys.hll_store((hmin + bk) * 3600, int(stores[s])))
            else:
                bk, c = divmod(k - base_c, n_camps)
                out.append(keys.hll_campaign((hmin + bk) * 3600, c_names[c]))
        return out

    b.add_hll(ids, np.concatenate([customers, customers, customers, customers]), name)
