"""The embedded stack launcher against the real servers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from lambda_rt.clients.kafka import KafkaProducer, make_consumer
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings, load_settings
from lambda_rt.consuming import read_topic
from lambda_rt.errors import PortInUseError
from lambda_rt.stack import free_stack_ports, launcher
from tests.fixtures import stack_env


def test_status_reports_every_endpoint_up(stack_settings: Settings) -> None:
    report = launcher.status(stack_settings)
    assert report["kafka"]["up"] and report["redis"]["up"] and report["s3"]["up"]
    assert report["kafka"]["topic"] == "events"
    assert report["clickhouse"]["dsn"].startswith("chdb://")
    text = json.dumps(report)
    assert stack_settings.redis.password is not None
    assert stack_settings.redis.password.get_secret_value() not in text


def test_up_is_idempotent(stack_settings: Settings) -> None:
    states = launcher.up(stack_settings)
    assert [s.name for s in states] == ["s3", "kafka", "redis"]
    assert not any(s.started for s in states)


def test_anonymous_s3_is_refused(stack_settings: Settings) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{stack_settings.s3.endpoint}/", timeout=5)
    assert err.value.code == 403


def test_redis_without_password_is_refused(stack_settings: Settings) -> None:
    anonymous = redis.Redis.from_url(stack_settings.redis.url, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert make_redis(stack_settings.redis).ping()


def test_credentials_file_is_private(stack_settings: Settings) -> None:
    mode = (stack_settings.state_dir / "credentials.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_taken_port_gets_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = load_settings(state_dir=tmp_path, stack={"s3_port": port})
        with pytest.raises(PortInUseError, match=f"port {port}"):
            launcher.up(settings)


def test_status_json_from_the_cli(stack_settings: Settings) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "status", "--json"],
        env=stack_env(stack_settings.state_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout)
    assert {"kafka", "redis", "s3", "clickhouse"} <= report.keys()
    assert report["kafka"]["bootstrap"] == stack_settings.kafka.bootstrap
    assert report["redis"]["up"] is True


def test_restart_keeps_events_and_redis_keys(tmp_path: Path) -> None:
    """A stopped stack restarted with up still holds produced events and Redis keys."""
    ports = free_stack_ports()
    launcher.up(load_settings(state_dir=tmp_path, stack=ports))
    settings = load_settings(state_dir=tmp_path)
    try:
        with KafkaProducer(settings.kafka) as producer:
            producer.produce_many(settings.kafka.topic, ((b"k", b"m%d" % i) for i in range(500)))
            producer.flush(30)
        make_redis(settings.redis).set("survivor", "yes")
        time.sleep(1.5)  # the AOF is fsynced every second
        assert sorted(launcher.down(settings)) == ["kafka", "redis", "s3"]
        assert not launcher.status(settings)["kafka"]["up"]

        launcher.up(settings)
        assert make_redis(settings.redis).get("survivor") == b"yes"
        values = read_topic(settings.kafka, settings.kafka.topic, idle_s=3).values
        assert sorted(values) == sorted(b"m%d" % i for i in range(500))
    finally:
        launcher.down(settings)


def test_group_resumes_from_committed_offsets(stack_settings: Settings, tmp_path: Path) -> None:
    """Produce, consume half with commits, restart the consumer: it gets exactly the rest."""
    import uuid

    from lambda_rt.clients.kafka import ensure_topics

    topic = f"rt-{uuid.uuid4().hex[:8]}"
    kafka = stack_settings.kafka.model_copy(update={"topic": topic, "dlq_topic": topic + ".dlq"})
    ensure_topics(kafka)
    sent = [b"v%d" % i for i in range(2000)]
    with KafkaProducer(kafka) as producer:
        producer.produce_many(topic, ((v[-1:], v) for v in sent))
        producer.flush(30)

    def consume(at_least: int | None) -> list[bytes]:
        """Consume (committing after each batch) until ``at_least`` or 3 s idle."""
        consumer = make_consumer(kafka, group_id=f"g-{topic}")
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        last = time.monotonic()
        while time.monotonic() < deadline:
            msgs = [m for m in consumer.consume(500, 0.5) if m.error() is None]
            for m in msgs:
                got.append(m.value())
                consumer.store_offsets(message=m)
            if msgs:
                consumer.commit(asynchronous=False)
                last = time.monotonic()
            if at_least is not None and len(got) >= at_least:
                break
            if at_least is None and got and time.monotonic() - last > 3:
                break
        consumer.close()
        return got

    first = consume(1000)
    rest = consume(None)
    assert 1000 <= len(first) < len(sent)
    assert sorted(first + rest) == sorted(sent)  # nothing lost, nothing read twice
