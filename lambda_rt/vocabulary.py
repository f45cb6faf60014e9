"""The domain vocabulary every layer shares: metrics, dimensions, granularities, job kinds.

ARCHITECTURE.md (Metrics) is the contract each layer computes identically; the
names it uses are defined here once, so the speed layer, the batch layer,
serving, the command line and the test oracle cannot drift apart. A layer that
stores a name differently (the speed view's ``m``/``h`` key suffixes) keeps its
own spelling and maps it to these names.

Plain constants, no I/O, no imports from any layer.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "ADDITIVE_METRICS",
    "ALL_JOBS",
    "DAY_MS",
    "DIMENSIONS",
    "DISTINCT_METRICS",
    "GRANULARITIES",
    "GRANULARITY_MS",
    "HOUR_MS",
    "JOB_KINDS",
    "METRICS",
    "MINUTE_MS",
    "RUNNABLE_JOBS",
    "Granularity",
    "JobKind",
]

METRICS: Final[tuple[str, ...]] = (
    "events",
    "orders",
    "revenue",
    "refunds",
    "unique_customers",
    "payment_failures",
    "inventory_delta",
)
"""Every metric, in the order ARCHITECTURE.md lists them."""

DISTINCT_METRICS: Final[tuple[str, ...]] = ("unique_customers",)
"""Distinct counts: they do not merge by summing buckets (speed: HyperLogLog; batch: exact)."""

ADDITIVE_METRICS: Final[tuple[str, ...]] = tuple(m for m in METRICS if m not in DISTINCT_METRICS)
"""Metrics whose buckets merge by summing (counts and sums)."""

DIMENSIONS: Final[tuple[str, ...]] = ("store_id", "event_type", "campaign_id")
"""Query dimensions of every metric but ``inventory_delta`` (``store_id``, ``product_id``);
``campaign_id`` (schema v2) is ``""`` for events without one."""

Granularity = Literal["minute", "hour", "day"]

GRANULARITIES: Final[tuple[Granularity, ...]] = ("minute", "hour", "day")
"""Time bucket sizes, finest first (UTC, by event time)."""

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

GRANULARITY_MS: Final = MappingProxyType({"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS})
"""The width of a bucket of each granularity, in milliseconds."""

JobKind = Literal["recompute", "tier"]

JOB_KINDS: Final[tuple[JobKind, ...]] = ("recompute", "tier")
"""The batch jobs, in the order ``all`` runs them (a recompute, then a tier move)."""

ALL_JOBS: Final = "all"
"""The name that runs every job of :data:`JOB_KINDS` once, in order."""

RUNNABLE_JOBS: Final[tuple[str, ...]] = (*JOB_KINDS, ALL_JOBS)
"""What ``lambda-rt batch run`` and ``POST /jobs/{kind}`` accept."""
