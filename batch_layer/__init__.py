"""The batch layer: master-dataset ingest, exact Dask recompute, tiering, schedule.

Submodules are imported on demand (the CLI and the daemon import what they run):

- :mod:`batch_layer.tables` - ClickHouse DDL of every table this layer owns;
- :mod:`batch_layer.views` - the read side serving imports (names, ``read_batch_view``);
- :mod:`batch_layer.ingest` - Kafka ``ingest`` group -> ``events_hot`` (dedup tokens, DLQ);
- :mod:`batch_layer.recompute` - closed windows -> exact batch views -> watermark;
- :mod:`batch_layer.tiering` - hot -> warm -> cold moves (crash-safe state machine);
- :mod:`batch_layer.jobs` / :mod:`batch_layer.schedule` - job objects, history, APScheduler.
"""

from __future__ import annotations

__all__: list[str] = []
