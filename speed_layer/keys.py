"""The speed view's Redis key layout: the one module serving imports to read it.

It only builds key names and bucket boundaries; it imports nothing of the
speed layer's runtime (no Kafka, no streamz, no Redis client), so
``serving`` can depend on it (ARCHITECTURE.md: serving may import the read
side of a layer, never its runtime).

Every key starts with ``settings.redis.key_prefix`` (``P`` below). Buckets are
by event time (UTC) and named by their start in epoch seconds ``B``; ``G`` is
the granularity, ``m`` (minute) or ``h`` (hour). Day is derived by summing the
24 hour buckets (additive metrics) or by ``PFCOUNT`` over the 24 hour HLL keys
(a union, which is how HyperLogLog merges).

==========================================  ======  =====================================
key                                         type    content
==========================================  ======  =====================================
``P:agg:G:B:events``                        hash    ``"{store_id}:{event_type}"`` -> count
``P:agg:G:B:orders``                        hash    ``"{store_id}"`` -> count of order_placed
``P:agg:G:B:revenue``                       hash    ``"{store_id}"`` -> sum amount_cents (order_placed)
``P:agg:G:B:refunds``                       hash    ``"{store_id}"`` -> sum amount_cents (refund)
``P:agg:G:B:payment_failures``              hash    ``"{store_id}"`` -> count payment status=failed
``P:agg:G:B:inventory_delta``               hash    ``"{store_id}:{product_id}"`` -> sum delta
``P:agg:G:B:campaign_events``               hash    ``"{event_type}:{campaign_id}"`` -> count
``P:agg:G:B:campaign_orders``               hash    ``"{campaign_id}"`` -> count of order_placed
``P:agg:G:B:campaign_revenue``              hash    ``"{campaign_id}"`` -> sum amount_cents (order_placed)
``P:agg:G:B:shed``                          hash    ``"{store_id}:{event_type}"`` -> events shed (not in
                                                    the buckets above: serving marks them inexact)
``P:hll:G:B``                               HLL     customer_id of every valid event
``P:hll:G:B:t:{event_type}``                HLL     customer_id per event type
``P:hll:h:B:s:{store_id}``                  HLL     customer_id per store (hour only)
``P:hll:h:B:c:{campaign_id}``               HLL     customer_id per campaign (hour only)
``P:offsets``                               hash    ``"{partition}"`` -> next offset to apply
``P:meta``                                  hash    counters and watermarks (``META_*``)
``P:epoch``                                 string  epoch ms when the current view's rebuild began
``P:rebuild``                               hash    ``"{partition}"`` -> replay target (internal)
==========================================  ======  =====================================

The state contract (what serving may rely on):

* ``P:epoch`` (:func:`epoch_key`, no TTL) is SET by the speed layer when it
  (re)builds the speed view from the start of the topic: at first start, or
  when it finds its state gone (keys flushed or deleted, Redis replaced),
  whether at partition assignment or while running. Its value is the epoch
  milliseconds (UTC) when that rebuild started; it changes only on a rebuild.
  No key of ``P:epoch`` means the view is not trustworthy (lost and not yet
  being rebuilt). Every batch write checks it (``apply.lua``): a batch is
  refused when the key is missing or holds another epoch.
* ``P:meta`` field ``rebuilding`` (:data:`META_REBUILDING`) is ``"1"`` from
  the moment a rebuild starts until every partition has been replayed up to
  where the lost view had got (the group's Kafka commit when the rebuild
  started), or, where that is unknown, until a ``consume()`` returned nothing
  for it after the replay started; then ``"0"``. While it is ``"1"`` the
  buckets hold only part of what was applied before the loss: read them as a
  hole. ``epoch_started_ms`` (:data:`META_EPOCH_STARTED`) repeats the epoch
  and ``rebuilt_ms`` (:data:`META_REBUILT_MS`) is when ``rebuilding`` went to
  ``"0"``.
* ``P:rebuild`` is the speed layer's own bookkeeping of the replay (partition
  -> next offset to reach, ``-1`` unknown); serving should not read it.

Campaigns (schema v2): ``campaign_id`` is ``""`` for events without one, so
the campaign hashes sum to the same totals as the store hashes. A campaign id
may hold any character, ``:`` included: in ``campaign_events`` the event type
comes first (event types hold no ``:``) and the field splits at its first
``:``. Per-campaign distinct counts exist at hour granularity only, as per
store.

Why this layout:

* One hash per (granularity, bucket, metric) with the store in the field: a
  serving read of one metric per store over 24 h is 24 ``HGETALL`` of at most
  ``stores`` fields each, pipelined in one round trip.
* HyperLogLog keys are bounded per micro-batch: a batch touches
  ``minutes x (1 + event types)`` minute keys and ``hours x (1 + event types
  + stores)`` hour keys, so a 20,000-event batch spread over 10 minutes and
  1,000 stores costs about 1,100 ``PFADD`` calls, not one per event. Per-store
  distinct counts exist at hour granularity only: a per-(minute, store) HLL
  would be ~60,000 keys an hour (hundreds of MB over the retention) for a
  figure nobody reads at that resolution. Minute uniques exist overall and
  per event type.
* Every bucket key gets ``EXPIRE retention`` at each write, so memory is
  bounded by what was written in the last ``retention_hours`` (default 48 h),
  and an event that arrives late (but inside the accepted 7-day window) still
  lands in its own bucket. ``P:offsets``, ``P:meta`` and ``P:epoch`` never
  expire: they are the exactly-once state. The retention counts from the
  *arrival* (Kafka timestamp, capped at now) of the batch's newest message and
  never shortens a key's TTL, so a replay from the start of the topic (a
  rebuild) does not resurrect buckets already past retention: their keys are
  written and expire at once (or keep the longer TTL a live write gave them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lambda_rt.vocabulary import GRANULARITY_MS, Granularity

__all__ = [
    "BUCKET_SUFFIXES",
    "CAMPAIGN_EVENTS",
    "CAMPAIGN_METRICS",
    "CAMPAIGN_ORDERS",
    "CAMPAIGN_REVENUE",
    "META_BATCHES",
    "META_EPOCH_STARTED",
    "META_EVENTS",
    "META_LAST_APPLIED_MS",
    "META_MAX_EVENT_TS",
    "META_MESSAGES",
    "META_REBUILDING",
    "META_REBUILT_MS",
    "SHED",
    "SpeedKeys",
    "bucket_start_s",
    "bucket_width_s",
    "epoch_key",
]

BUCKET_SUFFIXES: tuple[str, ...] = ("m", "h")
"""The key suffixes of the granularities kept in Redis: minute and hour (day is derived).

Additive metrics (:data:`lambda_rt.vocabulary.ADDITIVE_METRICS`) are stored as
hash increments; ``unique_customers`` lives in HLL keys.
"""

_SUFFIX_OF = {"m": "minute", "h": "hour"}
_WIDTH_S = {name: ms // 1000 for name, ms in GRANULARITY_MS.items()} | {
    suffix: GRANULARITY_MS[name] // 1000 for suffix, name in _SUFFIX_OF.items()
}

CAMPAIGN_EVENTS = "campaign_events"
CAMPAIGN_ORDERS = "campaign_orders"
CAMPAIGN_REVENUE = "campaign_revenue"
CAMPAIGN_METRICS: dict[str, str] = {
    "events": CAMPAIGN_EVENTS,
    "orders": CAMPAIGN_ORDERS,
    "revenue": CAMPAIGN_REVENUE,
}
"""Query metric -> the hash holding it by campaign (``unique_customers``: HLL keys)."""

SHED = "shed"
"""The bucket hash (``agg(G, B, SHED)``) counting events shed from the speed path.

Load shedding drops configured event types from the speed path only (the batch
path gets everything), so a bucket's metrics that count those types are short
by what this hash holds until the batch view covers the bucket. It lives with
the bucket hashes: same TTL, and wiped with them when the view is rebuilt.
"""

META_LAST_APPLIED_MS = "last_applied_ms"
META_MAX_EVENT_TS = "max_event_ts"
META_BATCHES = "batches"
META_EVENTS = "events"
META_MESSAGES = "messages"
META_REBUILDING = "rebuilding"
"""``"1"`` while the view is being rebuilt from the start of the topic, else ``"0"``."""
META_EPOCH_STARTED = "epoch_started_ms"
"""Epoch ms when the current view's rebuild started (the value of ``P:epoch``)."""
META_REBUILT_MS = "rebuilt_ms"
"""Wall clock (epoch ms) when ``rebuilding`` last went to ``"0"``."""


def epoch_key(prefix: str) -> str:
    """String key (no TTL): epoch ms when the current speed view's rebuild started."""
    return f"{prefix}:epoch"


def bucket_width_s(granularity: str) -> int:
    """Width of a bucket in seconds (``m``/``minute``, ``h``/``hour``, ``day``)."""
    try:
        return _WIDTH_S[granularity]
    except KeyError as exc:
        raise ValueError(f"unknown granularity {granularity!r}: use minute, hour or day") from exc


def bucket_start_s(ts_ms: int, granularity: str) -> int:
    """Start (epoch seconds, UTC) of the bucket holding event time ``ts_ms``."""
    width = bucket_width_s(granularity)
    return (ts_ms // 1000 // width) * width


@dataclass(frozen=True)
class SpeedKeys:
    """Key names under one prefix (``settings.redis.key_prefix``)."""

    prefix: str

    @property
    def offsets(self) -> str:
        """Hash: partition -> next offset already applied (the exactly-once state)."""
        return f"{self.prefix}:offsets"

    @property
    def meta(self) -> str:
        """Hash: counters (``messages``, ``events``, ``batches``, ``dlq:{reason}``,
        ``shed:{event_type}``) and watermarks (``last_applied_ms``, ``max_event_ts``)."""
        return f"{self.prefix}:meta"

    @property
    def epoch(self) -> str:
        """String: epoch ms when the current view's rebuild started (:func:`epoch_key`)."""
        return epoch_key(self.prefix)

    @property
    def rebuild(self) -> str:
        """Hash: partition -> replay target of the rebuild in progress (internal)."""
        return f"{self.prefix}:rebuild"

    def agg(self, granularity: str, bucket_s: int, metric: str) -> str:
        """Hash of one additive metric in one bucket (fields: see module docstring)."""
        return f"{self.prefix}:agg:{_short(granularity)}:{bucket_s}:{metric}"

    def hll(self, granularity: str, bucket_s: int) -> str:
        """HyperLogLog of every customer seen in a bucket."""
        return f"{self.prefix}:hll:{_short(granularity)}:{bucket_s}"

    def hll_event_type(self, granularity: str, bucket_s: int, event_type: str) -> str:
        """HyperLogLog of the customers of one event type in a bucket."""
        return f"{self.prefix}:hll:{_short(granularity)}:{bucket_s}:t:{event_type}"

    def hll_store(self, bucket_s: int, store_id: int) -> str:
        """HyperLogLog of one store's customers in an hour bucket (hour only)."""
        return f"{self.prefix}:hll:h:{bucket_s}:s:{store_id}"

    def hll_campaign(self, bucket_s: int, campaign_id: str) -> str:
        """HyperLogLog of one campaign's customers in an hour bucket (hour only)."""
        return f"{self.prefix}:hll:h:{bucket_s}:c:{campaign_id}"

    def buckets(self, granularity: Granularity, start_s: int, end_s: int) -> list[int]:
        """Bucket starts covering ``[start_s, end_s)`` at ``granularity``.

        ``day`` returns hour buckets (days are read as their 24 hours).
        """
        g = "hour" if granularity == "day" else granularity
        width = bucket_width_s(g)
        first = (start_s // width) * width
        return list(range(first, end_s, width))

    def agg_keys(self, granularity: str, buckets: Iterable[int], metric: str) -> list[str]:
        """The hash keys of ``metric`` for ``buckets``, in order (for a pipeline)."""
        return [self.agg(granularity, b, metric) for b in buckets]


def _short(granularity: str) -> str:
    if granularity in ("m", "minute"):
        return "m"
    if granularity in ("h", "hour"):
        return "h"
    raise ValueError(f"granularity {granularity!r} is not stored in Redis: use minute or hour")
