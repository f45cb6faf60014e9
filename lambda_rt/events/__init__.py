"""Events: the schema registry, vectorised validation and the synthetic generator.

Re-exports the public API of :mod:`~lambda_rt.events.schema`,
:mod:`~lambda_rt.events.validate`, :mod:`~lambda_rt.events.extra` and
:mod:`~lambda_rt.events.generator`.
Nothing here does I/O except :func:`write_jsonl`.
"""

from __future__ import annotations

from lambda_rt.events.extra import extra_json
from lambda_rt.events.generator import BAD_KINDS, SCHEMA_CHOICES, EventGenerator, GeneratorConfig, write_jsonl
from lambda_rt.events.schema import (
    EVENT_SCHEMA,
    EVENT_TYPES,
    REGISTRY,
    SCHEMA_V1,
    SCHEMA_V2,
    V2_FIELDS,
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
    "SCHEMA_CHOICES",
    "SCHEMA_V1",
    "SCHEMA_V2",
    "V2_FIELDS",
    "EventGenerator",
    "FieldSpec",
    "GeneratorConfig",
    "Reason",
    "Reject",
    "SchemaRegistry",
    "SchemaVersion",
    "TimeWindow",
    "ValidatedBatch",
    "extra_json",
    "validate_batch",
    "validate_batch_slow",
    "write_jsonl",
]
