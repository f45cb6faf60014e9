"""Events: the schema registry, vectorised validation and the synthetic generator.

Re-exports the public API of :mod:`~lambda_rt.events.schema`,
:mod:`~lambda_rt.events.validate` and :mod:`~lambda_rt.events.generator`.
Nothing here does I/O except :func:`write_jsonl`.
"""

from __future__ import annotations

from lambda_rt.events.generator import BAD_KINDS, EventGenerator, GeneratorConfig, write_jsonl
from lambda_rt.events.schema import (
    EVENT_SCHEMA,
    EVENT_TYPES,
    REGISTRY,
    FieldSpec,
    Reason,
    SchemaRegistry,
    SchemaVersion,
)
from lambda_rt.events.validate import (
    Reject,
    TimeWindow,
    ValidatedBatch,
    validate_batch,
    validate_batch_slow,
)

__all__ = [
    "BAD_KINDS",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "REGISTRY",
    "EventGenerator",
    "FieldSpec",
    "GeneratorConfig",
    "Reason",
    "Reject",
    "SchemaRegistry",
    "SchemaVersion",
    "TimeWindow",
    "ValidatedBatch",
    "validate_batch",
    "validate_batch_slow",
    "write_jsonl",
]
