"""A graphql-core executor that completes lists of flat objects (result rows) in one pass.

graphql-core completes every field of every list item on its own (resolve
info, resolver call, null checks, leaf coercion): about 6 µs a field, so the
600 rows x 3 fields of one day of hourly revenue by store cost ~10 ms, ten
times the HTTP API's whole answer. :class:`FlatListExecutor` takes a shortcut
only where it cannot change the result: a list of objects whose selected
fields are all plain attributes (strawberry fields without a resolver,
arguments or field extensions) of leaf type, with no ``@defer``. Each row
becomes ``{response_key: coerce(getattr(item, attribute))}`` in a comprehension;
rows handed out as :class:`~serving.graphql_api.types.RowColumns` are
completed column by column, and for a cached result once per selection.
Anything else, and any row where a non-null field is null or coercion fails,
goes through graphql-core's own path, so errors are reported exactly as
before. The schema has no extension with a ``resolve`` hook (those would not
see the shortcut's fields; :func:`serving.graphql_api.schema.build_schema`
adds none).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    Undefined,
    is_leaf_type,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from serving.graphql_api.types import RowColumns

__all__ = ["FlatListExecutor"]

# (response key, attribute or None for __typename, coerce, nullable, type name)
_Column = tuple[str, str | None, Callable[[Any], Any], bool, str]


class _NotFlat(Exception):
    """A row needs graphql-core's full path (a null in a non-null field, a failed coercion)."""


class FlatListExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor plus the flat-list shortcut (see the module docstring)."""

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: Any,
        info: GraphQLResolveInfo,
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        columns = self._flat_columns(item_type, field_details_list)
        if columns is not None:
            try:
                if isinstance(items, RowColumns):
                    return _COMPLETED.get(items, columns)
                items = items if isinstance(items, list) else list(items)
                return [_flat_row(item, columns) for item in items]
            except _NotFlat:
                pass
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def _flat_columns(self, item_type: GraphQLOutputType, field_details_list: Any) -> list[_Column] | None:
        obj = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(obj, GraphQLObjectType) or obj.is_type_of is not None:
            return None
        collected = self.collect_subfields(obj, field_details_list)
        if collected.new_defer_usages:
            return None
        columns: list[_Column] = []
        for key, details in collected.grouped_field_set.items():
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                columns.append((key, None, str, False, obj.name))
                continue
            field = obj.fields.get(name)
            definition = field.extensions.get("strawberry-definition") if field is not None else None
            if field is None or definition is None or node.arguments or node.directives:
                return None
            if definition.base_resolver is not None or definition.extensions:
                return None
            nullable = not isinstance(field.type, GraphQLNonNull)
            leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if not is_leaf_type(leaf):
                return None
            columns.append((key, definition.python_name, leaf.coerce_output_value, nullable, obj.name))
        return columns


def _flat_row(item: Any, columns: list[_Column]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, attr, coerce, nullable, type_name in columns:
        if attr is None:
            row[key] = type_name
            continue
        value = getattr(item, attr)
        if value is None:
            if not nullable:
                raise _NotFlat
            row[key] = None
            continue
        try:
            out = coerce(value)
        except Exception as exc:
            raise _NotFlat from exc
        if out is Undefined or out is None:
            raise _NotFlat
        row[key] = out
    return row


def _from_columns(rows: RowColumns, columns: list[_Column]) -> list[dict[str, Any]]:
    """Complete column by column (a coercion per column, not per field of a row object)."""
    n = len(rows)
    keys = [c[0] for c in columns]
    cols: list[Iterable[Any]] = []
    for _, attr, coerce, nullable, type_name in columns:
        if attr is None:
            cols.append(itertools.repeat(type_name, n))
            continue
        col = rows.columns.get(attr)
        if col is None:  # a dimension the query did not group by
            if not nullable:
                raise _NotFlat
            cols.append(itertools.repeat(None, n))
            continue
        try:
            coerced = list(map(coerce, col))
        except Exception as exc:  # a null or a bad value: graphql-core reports it
            raise _NotFlat from exc
        # graphql-core's scalars and Long raise on a bad value rather than return Undefined
        if None in coerced:
            raise _NotFlat
        cols.append(coerced)
    return [dict(zip(keys, values, strict=True)) for values in zip(*cols, strict=True)]


class _CompletedRows:
    """Completed rows of shared (cached) :class:`RowColumns`, per selection.

    A cached result answers many requests with the same rows object; its
    completion for a given selection is the same list every time. An entry
    holds the rows object, so its identity cannot be reused while it lives.
    """

    def __init__(self, entries: int = 64) -> None:
        self._entries = entries
        self._items: OrderedDict[tuple[int, tuple[tuple[str, str | None], ...]], tuple[RowColumns, Any]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, rows: RowColumns, columns: list[_Column]) -> list[dict[str, Any]]:
        if not rows.shared:
            return _from_columns(rows, columns)
        key = (id(rows), tuple((c[0], c[1]) for c in columns))
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] is rows:
                self._items.move_to_end(key)
                return list(hit[1])  # a new outer list: graphql-core owns what it is given
        done = _from_columns(rows, columns)
        with self._lock:
            self._items[key] = (rows, done)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)
        return list(done)


_COMPLETED = _CompletedRows()
