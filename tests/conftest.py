"""Session fixtures: the real embedded stack on free ports, chDB, isolation helpers.

One S3 server, one broker (stored in that S3) and one Redis are started for the
whole session in a temporary state dir, exactly as ``lambda-rt up`` starts them,
and stopped at the end. Tests isolate themselves with per-test topics, Redis key
prefixes, consumer groups and ClickHouse databases (``isolated`` fixture). If a
server cannot start, the session fails with the server's log file named: no test
skips silently because a service is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_rt.clients.clickhouse import Client, open_clickhouse
from lambda_rt.clients.kafka import ensure_topics, open_producers
from lambda_rt.config import Settings, load_settings
from lambda_rt.stack import free_stack_ports, launcher
from tests.fixtures import stack_env


@pytest.fixture(autouse=True)
def _no_producer_left_open() -> Iterator[None]:
    """Fail a test that leaves a Kafka producer open (close it, or use ``with KafkaProducer(...)``).

    An open producer keeps reconnecting after the stack is stopped and fills
    the end of the run with librdkafka "Connection refused" lines.
    """
    before = set(open_producers())
    yield
    leaked = [p for p in open_producers() if p not in before]
    for p in leaked:
        p.close(0)
    if leaked:
        pytest.fail("Kafka producers left open, created at: " + ", ".join(p.created_at for p in leaked))


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The real embedded stack, started once per session on free ports."""
    state_dir = tmp_path_factory.mktemp("stack")
    # CLI subprocesses started with --state-dir find the ports up recorded there.
    with launcher.running_stack(state_dir, **free_stack_ports()) as settings:
        yield settings


@dataclass(frozen=True)
class Isolated:
    """One test's slice of the shared stack: its own topics, keys and groups."""

    settings: Settings
    env: dict[str, str]  # for CLI subprocesses: same slice through LAMBDA_RT_* variables
    tag: str


@pytest.fixture
def isolated(
    stack_settings: Settings, chdb_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Isolated:
    """Settings with a unique topic, DLQ, consumer groups, Redis prefix and CH database.

    In this process ClickHouse is the session's chDB engine (one per process);
    CLI subprocesses get their own chDB directory under ``tmp_path`` through
    ``env``, since a second process cannot open the session's.
    """
    tag = f"t{uuid.uuid4().hex[:10]}"
    partitions = getattr(request, "param", None) or stack_settings.kafka.partitions
    s = stack_settings
    settings = s.model_copy(
        update={
            "kafka": s.kafka.model_copy(
                update={"topic": f"events-{tag}", "dlq_topic": f"events-{tag}.dlq", "partitions": partitions}
            ),
            "redis": s.redis.model_copy(update={"key_prefix": tag}),
            "speed": s.speed.model_copy(update={"group": f"speed-{tag}"}),
            "batch": s.batch.model_copy(update={"ingest_group": f"ingest-{tag}"}),
            "clickhouse": s.clickhouse.model_copy(
                update={"database": tag, "dsn": chdb_settings.clickhouse_dsn}
            ),
            "s3": s.s3.model_copy(update={"bucket": f"lrt-{tag}"}),
        }
    )
    ensure_topics(settings.kafka)
    env = stack_env(s.state_dir)
    env.update(
        {
            "LAMBDA_RT_KAFKA__TOPIC": settings.kafka.topic,
            "LAMBDA_RT_KAFKA__DLQ_TOPIC": settings.kafka.dlq_topic,
            "LAMBDA_RT_KAFKA__PARTITIONS": str(partitions),
            "LAMBDA_RT_REDIS__KEY_PREFIX": tag,
            "LAMBDA_RT_SPEED__GROUP": settings.speed.group,
            "LAMBDA_RT_BATCH__INGEST_GROUP": settings.batch.ingest_group,
            "LAMBDA_RT_CLICKHOUSE__DATABASE": tag,
            "LAMBDA_RT_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'clickhouse'}",
            "LAMBDA_RT_S3__BUCKET": settings.s3.bucket,
        }
    )
    return Isolated(settings=settings, env=env, tag=tag)


@pytest.fixture(scope="module")
def dask_threads() -> Iterator[Any]:
    """One in-process Dask cluster (2 worker threads) per test module.

    ``processes=False``: workers are threads of this process, so the cluster
    starts in about a second and the batch jobs push partitions down to this
    process's chDB engine (the default embedded mode).
    """
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        DaskClient(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def chdb_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose embedded ClickHouse lives in one session-wide directory.

    chDB allows one data directory per process: every test in this process
    shares it and isolates itself with its own database (``clickhouse``).
    """
    state_dir = tmp_path_factory.mktemp("chdb-state")
    return load_settings(state_dir=state_dir)


@pytest.fixture
def clickhouse(chdb_settings: Settings) -> Iterator[Client]:
    """A client on the session's chDB engine, using a fresh database."""
    db = f"t{uuid.uuid4().hex[:10]}"
    client = open_clickhouse(chdb_settings, database=db)
    try:
        yield client
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{db}`")
