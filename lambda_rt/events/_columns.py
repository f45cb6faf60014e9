"""The parse schema both read paths of validation produce (private).

Every :data:`EVENT_SCHEMA` column, all nullable: a parsed row holds whatever
the message carried, and the rules (:mod:`lambda_rt.events.validate`) decide
afterwards. Constants only, no logic.
"""

from __future__ import annotations

import pyarrow as pa

from lambda_rt.events.schema import EVENT_SCHEMA

__all__ = ["COLUMNS", "IS_INT", "PARSE_SCHEMA", "POS"]

COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
POS: dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}
IS_INT: tuple[bool, ...] = tuple(pa.types.is_integer(f.type) for f in EVENT_SCHEMA)
PARSE_SCHEMA: pa.Schema = pa.schema([pa.field(f.name, f.type) for f in EVENT_SCHEMA])
