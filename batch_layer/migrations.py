"""Recorded, idempotent schema migrations of the master dataset, run at startup.

:func:`migrate` brings the raw event tables (``events_hot``, ``events_warm``
and their outboxes) to the columns the code expects, and records each applied
migration in ``schema_migrations`` (id, checksum of its statements, time).
:func:`batch_layer.tables.ensure_tables` calls it, so every process that opens
the master dataset (the daemon, ingest, batch jobs) migrates it first; running
it again is a lookup.

A migration, step by step (each step safe to redo after a crash, ``kill -9``
included):

1. Skip it if ``schema_migrations`` records its id with the same checksum;
   refuse to start (:class:`MigrationError`) if the id is recorded with
   another checksum: a released migration was edited, which would leave
   databases in different shapes.
2. Run its statements in order. Each one is ``ALTER TABLE ... ADD COLUMN IF
   NOT EXISTS``: one atomic metadata change in ClickHouse, a no-op when
   redone, and instant (existing parts are not rewritten; old rows read the
   column's default). Writers of the old shape keep inserting meanwhile (they
   name their columns), so there is no downtime.
3. Check the tables' columns against what the migration declares
   (:class:`MigrationError` names a column that exists with another type: a
   bad schema change made by hand).
4. Record the migration (one insert; ``ReplacingMergeTree``, so recording it
   twice is harmless).

A crash between 2 and 4 leaves some columns added and the migration
unrecorded: the tables stay usable (inserts and reads name their columns) and
the next start redoes 2-4.

``python -m batch_layer.migrations`` runs it once against the configured
ClickHouse (the crash tests use it with ``LAMBDA_RT_BATCH__CRASH_AFTER`` set to
``migrate:<id>:<step>``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from batch_layer.errors import BatchError
from batch_layer.runtime import crash_point
from batch_layer.tables import EVENT_TABLES, V2_EVENT_COLUMNS, create_tables
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings

__all__ = [
    "MIGRATIONS",
    "SCHEMA_MIGRATIONS",
    "Migration",
    "MigrationError",
    "applied",
    "ensure_tables",
    "migrate",
]

logger = logging.getLogger(__name__)

SCHEMA_MIGRATIONS = "schema_migrations"


class MigrationError(BatchError):
    """The database's schema and the code's migrations disagree; nothing more is changed."""


@dataclass(frozen=True)
class Migration:
    """One migration: an id (never reused), its statements and the columns it guarantees."""

    id: str
    statements: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]  # (table, column, ClickHouse type) after it

    @property
    def checksum(self) -> int:
        """Identity of the statements: a recorded migration must never change."""
        digest = hashlib.sha256("\n".join(self.statements).encode()).digest()
        return int.from_bytes(digest[:8], "little")


def _schema_v2() -> Migration:
    statements: list[str] = []
    columns: list[tuple[str, str, str]] = []
    for table, warm in EVENT_TABLES:
        for name, typ, hot_codec, warm_codec in V2_EVENT_COLUMNS:
            codec = warm_codec if warm else hot_codec
            statements.append(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS `{name}` {typ} CODEC({codec})")
            columns.append((table, name, typ))
    return Migration("0001_schema_v2_columns", tuple(statements), tuple(columns))


MIGRATIONS: tuple[Migration, ...] = (_schema_v2(),)
"""Every migration, in the order they apply; append only."""

_DDL = f"""CREATE TABLE IF NOT EXISTS {SCHEMA_MIGRATIONS} (
  id String, checksum UInt64, applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(applied_at) ORDER BY id"""


def applied(client: Client) -> dict[str, int]:
    """Recorded migrations: id -> checksum."""
    client.command(_DDL)
    rows = client.query(f"SELECT id, argMax(checksum, applied_at) FROM {SCHEMA_MIGRATIONS} GROUP BY id")
    return {str(i): int(c) for i, c in rows.result_rows}


def migrate(client: Client, settings: Settings | None = None) -> list[str]:
    """Apply the pending migrations (see the module docstring); the ids applied now.

    Args:
        client: a client on the database holding the batch tables (created already).
        settings: only for the crash hook of the tests (``batch.crash_after``).

    Raises:
        MigrationError: a recorded migration differs from the code's, or a
            column exists with another type than the migration declares.
    """
    done = applied(client)
    ran: list[str] = []
    for migration in MIGRATIONS:
        recorded = done.get(migration.id)
        if recorded == migration.checksum:
            continue
        if recorded is not None:
            raise MigrationError(
                f"migration {migration.id} is recorded with checksum {recorded} but the code's is "
                f"{migration.checksum}: a released migration was edited. Restore it and add a new one."
            )
        logger.info("applying migration %s (%d statements)", migration.id, len(migration.statements))
        for step, statement in enumerate(migration.statements):
            client.command(statement)
            if settings is not None:
                crash_point(settings, f"migrate:{migration.id}:{step}")
        _check_columns(client, migration)
        client.insert(
            SCHEMA_MIGRATIONS,
            [[migration.id, migration.checksum, datetime.now(UTC)]],
            column_names=["id", "checksum", "applied_at"],
        )
        if settings is not None:
            crash_point(settings, f"migrate:{migration.id}:recorded")
        ran.append(migration.id)
    return ran


def _check_columns(client: Client, migration: Migration) -> None:
    tables = sorted({t for t, _, _ in migration.columns})
    rows = client.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND table IN %(t)s",
        parameters={"t": tables},
    ).result_rows
    have = {(t, n): typ for t, n, typ in rows}
    for table, name, typ in migration.columns:
        got = have.get((table, name))
        if got != typ:
            raise MigrationError(
                f"migration {migration.id}: {table}.{name} is {got or 'missing'}, expected {typ}; "
                "fix or drop that column by hand, then restart"
            )


def main() -> None:
    """Create the tables and run the pending migrations on the configured ClickHouse (``python -m``)."""
    from lambda_rt.clients.clickhouse import open_clickhouse

    settings = Settings()
    client = open_clickhouse(settings)
    create_tables(client)
    ran = migrate(client, settings)
    print(f"migrations applied: {', '.join(ran) or 'none pending'}")


if __name__ == "__main__":
    main()


def ensure_tables(client: Client) -> None:
    """Create every batch-layer table if missing, then apply pending migrations (idempotent).

    Every process that opens the master dataset calls this first, so a new
    column exists before any code that writes it runs.
    """
    create_tables(client)
    migrate(client)
