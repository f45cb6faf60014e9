"""Prometheus metrics of the serving layer (one registry per engine).

Counters for cache hits and misses, query latency by outcome, holes
reported. The daemon serves :func:`render` at ``GET /metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServingMetrics"]


class ServingMetrics:
    """The serving layer's counters, on their own registry (no global state)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cache_hits = Counter(
            "lambda_rt_serving_cache_hits", "Queries answered from the cache", registry=r
        )
        self.cache_misses = Counter(
            "lambda_rt_serving_cache_misses", "Queries computed from the views", registry=r
        )
        self.holes = Counter(
            "lambda_rt_serving_holes", "Queries whose range had a hole in both layers", registry=r
        )
        self.errors = Counter("lambda_rt_serving_errors", "Queries that failed", ["kind"], registry=r)
        self.latency = Histogram(
            "lambda_rt_serving_query_seconds",
            "Query latency",
            ["cached"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r,
        )
        self.watermark = Gauge(
            "lambda_rt_serving_batch_watermark_seconds",
            "Batch watermark seen by serving (epoch s)",
            registry=r,
        )
        self.speed_last_applied = Gauge(
            "lambda_rt_serving_speed_last_applied_seconds",
            "Last speed-layer write seen by serving (epoch s)",
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
