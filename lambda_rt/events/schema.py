"""The event schema registry: which fields an event has, their types and rules.

This module declares the contract of ARCHITECTURE.md (Events and Metrics) as
data: the six event types, the canonical Arrow schema of a validated event
(:data:`EVENT_SCHEMA`), the versioned field rules (:class:`SchemaVersion`,
:class:`SchemaRegistry`, :data:`REGISTRY`), the DLQ reason codes
(:class:`Reason`). The metric vocabulary (metrics, dimensions, granularities)
is :mod:`lambda_rt.vocabulary`.

It does not validate anything itself (see :mod:`lambda_rt.events.validate`)
and holds no I/O.

Rules the registry enforces, so that consumers stay forward compatible:

- versions only add *optional* fields; required fields and event types never
  change, so the latest version accepts everything an older one accepted;
- a field name has one type everywhere (``amount_cents`` is the same int in
  ``order_placed``, ``payment`` and ``refund``);
- every field is a column of :data:`EVENT_SCHEMA` (adding a field means adding
  a nullable column there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType

import pyarrow as pa

__all__ = [
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "INT64_MAX",
    "INT64_MIN",
    "REGISTRY",
    "SCHEMA_V1",
    "SCHEMA_V2",
    "V2_FIELDS",
    "FieldSpec",
    "Reason",
    "SchemaRegistry",
    "SchemaVersion",
]

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "add_to_cart",
    "order_placed",
    "payment",
    "refund",
    "inventory_update",
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

EVENT_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),  # epoch ms UTC
        pa.field("store_id", pa.int64(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("schema_version", pa.int64(), nullable=False),  # defaulted to 1
        pa.field("product_id", pa.int64()),
        pa.field("quantity", pa.int64()),
        pa.field("order_id", pa.string()),
        pa.field("amount_cents", pa.int64()),
        pa.field("items", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("method", pa.string()),
        pa.field("delta", pa.int64()),
        # schema v2 (optional, see SCHEMA_V2)
        pa.field("campaign_id", pa.string()),
        pa.field("card_fingerprint", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("stock_on_hand", pa.int64()),
    ]
)


class Reason(StrEnum):
    """Why a message was rejected; the value goes into the DLQ ``reason`` header."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_VALUE = "invalid_value"
    TS_TOO_OLD = "ts_too_old"
    TS_IN_FUTURE = "ts_in_future"


@dataclass(frozen=True)
class FieldSpec:
    """One field: its Python type (``int`` or ``str``) and its value constraints.

    ``int`` means a JSON integer that fits in int64 (``true`` and ``17.0`` are
    not ints). JSON ``null`` is treated exactly like an absent field.
    """

    name: str
    type: type
    min_value: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.type not in (int, str):
            raise ValueError(f"field {self.name}: type must be int or str, not {self.type!r}")
        if self.type is int and (self.min_length, self.max_length, self.choices) != (None,) * 3:
            raise ValueError(f"field {self.name}: length/choices constraints need type str")
        if self.type is str and self.min_value is not None:
            raise ValueError(f"field {self.name}: min_value needs type int")

    @property
    def constrained(self) -> bool:
        """True if the value (not only the type) is checked."""
        return (self.min_value, self.min_length, self.max_length, self.choices) != (None,) * 4

    def describe(self) -> str:
        """What a valid value looks like, for reject details (e.g. ``an int >= 0``)."""
        if self.type is int:
            return "an int" if self.min_value is None else f"an int >= {self.min_value}"
        if self.choices is not None:
            return "one of " + ", ".join(sorted(self.choices))
        text = "a non-empty string" if self.min_length else "a string"
        if self.max_length is not None:
            text += f" of at most {self.max_length} chars"
        return text


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """The field rules of one schema version.

    Attributes:
        version: the ``schema_version`` number (>= 1).
        common: required fields of every event, in check order.
        common_optional: optional fields of every event.
        required: per event type, its required extra fields.
        optional: per event type, optional extra fields added by later versions.
    """

    version: int
    common: tuple[FieldSpec, ...]
    common_optional: tuple[FieldSpec, ...]
    required: Mapping[str, tuple[FieldSpec, ...]]
    optional: Mapping[str, tuple[FieldSpec, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", MappingProxyType(dict(self.required)))
        object.__setattr__(self, "optional", MappingProxyType(dict(self.optional)))
        unknown = set(self.optional) - set(self.required)
        if unknown:
            raise ValueError(f"schema v{self.version}: optional fields for unknown types {unknown}")
        seen: dict[str, FieldSpec] = {}
        for spec in self.all_fields_with_repeats():
            if seen.setdefault(spec.name, spec) != spec:
                raise ValueError(f"schema v{self.version}: field {spec.name} defined twice")

    @property
    def event_types(self) -> tuple[str, ...]:
        """The known event types, in declaration order."""
        return tuple(self.required)

    def all_fields_with_repeats(self) -> Iterable[FieldSpec]:
        """Every spec as declared (a shared field appears once per event type)."""
        yield from self.common
        yield from self.common_optional
        for specs in self.required.values():
            yield from specs
        for specs in self.optional.values():
            yield from specs

    def fields(self) -> dict[str, FieldSpec]:
        """Every field of this version by name (a name has one spec everywhere)."""
        return {spec.name: spec for spec in self.all_fields_with_repeats()}

    def required_fields(self, event_type: str) -> tuple[FieldSpec, ...]:
        """The fields an event of ``event_type`` must carry (common first)."""
        return self.common + self.required[event_type]

    def type_fields(self, event_type: str) -> tuple[FieldSpec, ...]:
        """The type-specific fields (required and optional) ``event_type`` may carry."""
        return self.required[event_type] + self.optional.get(event_type, ())


class SchemaRegistry:
    """The known schema versions; checks that each one only adds optional fields."""

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        ordered = tuple(versions)
        if not ordered:
            raise ValueError("a schema registry needs at least one version")
        numbers = [v.version for v in ordered]
        if numbers[0] < 1 or any(b <= a for a, b in pairwise(numbers)):
            raise ValueError(f"schema versions must be >= 1 and increasing, got {numbers}")
        for version in ordered:
            _check_columns(version)
        for old, new in pairwise(ordered):
            _check_evolution(old, new)
        self._versions = ordered

    @property
    def latest(self) -> SchemaVersion:
        """The newest version: validators check every event against it."""
        return self._versions[-1]

    @property
    def versions(self) -> tuple[int, ...]:
        """The known version numbers, ascending."""
        return tuple(v.version for v in self._versions)

    def get(self, version: int) -> SchemaVersion:
        """The rules for an event declaring ``version``.

        A version newer than any known one gets the latest known (forward
        compatibility: newer producers only add optional fields); an unknown
        version between known ones gets the closest older one.

        Raises:
            ValueError: ``version`` is below the first known version.
        """
        best = None
        for known in self._versions:
            if known.version <= version:
                best = known
        if best is None:
            raise ValueError(f"schema_version {version} is older than any known {self.versions}")
        return best


def _check_columns(version: SchemaVersion) -> None:
    """Every field must be an EVENT_SCHEMA column of the matching Arrow type."""
    arrow = {int: pa.int64(), str: pa.string()}
    for spec in version.fields().values():
        index = EVENT_SCHEMA.get_field_index(spec.name)
        if index < 0 or EVENT_SCHEMA.field(index).type != arrow[spec.type]:
            raise ValueError(
                f"schema v{version.version}: field {spec.name} is not an EVENT_SCHEMA column "
                f"of type {arrow[spec.type]}; add a nullable column first"
            )


def _check_evolution(old: SchemaVersion, new: SchemaVersion) -> None:
    """A newer version may only add optional fields (forward compatibility)."""
    where = f"schema v{new.version}"
    if new.common != old.common or dict(new.required) != dict(old.required):
        raise ValueError(f"{where}: required fields and event types cannot change")
    old_fields, new_fields = old.fields(), new.fields()
    for name, spec in old_fields.items():
        if new_fields.get(name) != spec:
            raise ValueError(f"{where}: field {name} was removed or changed")
    if not set(old.common_optional) <= set(new.common_optional):
        raise ValueError(f"{where}: optional common fields cannot be removed")
    for event_type, specs in old.optional.items():
        if not set(specs) <= set(new.optional.get(event_type, ())):
            raise ValueError(f"{where}: optional fields of {event_type} cannot be removed")


def _int(name: str, min_value: int | None = None) -> FieldSpec:
    return FieldSpec(name, int, min_value=min_value)


def _str(name: str) -> FieldSpec:
    return FieldSpec(name, str)


_AMOUNT = _int("amount_cents", 0)
_ORDER_ID = _str("order_id")
_PRODUCT_ID = _int("product_id")

SCHEMA_V1 = SchemaVersion(
    version=1,
    common=(
        FieldSpec("event_id", str, min_length=1, max_length=64),
        FieldSpec("event_type", str, choices=frozenset(EVENT_TYPES)),
        _int("ts"),
        _int("store_id", 1),
        _int("customer_id", 0),
    ),
    common_optional=(_str("session_id"), _int("schema_version", 1)),
    required={
        "page_view": (_PRODUCT_ID,),
        "add_to_cart": (_PRODUCT_ID, _int("quantity", 1)),
        "order_placed": (_ORDER_ID, _AMOUNT, _int("items", 1)),
        "payment": (
            _ORDER_ID,
            _AMOUNT,
            FieldSpec("status", str, choices=frozenset({"succeeded", "failed"})),
            _str("method"),
        ),
        "refund": (_ORDER_ID, _AMOUNT),
        "inventory_update": (_PRODUCT_ID, _int("delta")),
    },
)


def _short_str(name: str) -> FieldSpec:
    return FieldSpec(name, str, max_length=64)


_CAMPAIGN = _short_str("campaign_id")
_SIGNALS = (_short_str("card_fingerprint"), _short_str("ip"), _short_str("device_id"))

SCHEMA_V2 = SchemaVersion(
    version=2,
    common=SCHEMA_V1.common,
    common_optional=SCHEMA_V1.common_optional,
    required=SCHEMA_V1.required,
    # optional only: a v1 consumer ignores these, a v2 consumer reads v1 events as "absent"
    optional={
        "page_view": (_CAMPAIGN,),
        "add_to_cart": (_CAMPAIGN,),
        "order_placed": (_CAMPAIGN, *_SIGNALS),
        "payment": _SIGNALS,
        "inventory_update": (_int("stock_on_hand", 0),),
    },
)

V2_FIELDS: tuple[str, ...] = ("campaign_id", "card_fingerprint", "ip", "device_id", "stock_on_hand")
"""The fields schema v2 adds, in :data:`EVENT_SCHEMA` order."""

REGISTRY = SchemaRegistry([SCHEMA_V1, SCHEMA_V2])
