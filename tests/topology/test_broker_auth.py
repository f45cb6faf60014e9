"""The embedded broker requiring a SCRAM user: blocked by tansu 0.6.0 (known bug, excluded by default).

What was tried (issue 17, item 5), reproduced here against the real binary:

1. ``tansu user create`` against a broker started with ``--authentication``
   fails with ``Client(Io(Custom { kind: UnexpectedEof, error: "early eof" }))``
   and the broker logs ``KafkaProtocol(NotAuthenticated)``: the CLI does not
   authenticate and there is no bootstrap user, so no first user can be made.
2. A user created while the broker runs *without* ``--authentication`` (the CLI
   exits 0; ``AlterUserScramCredentials`` from confluent-kafka succeeds too),
   stored in S3 mode, is unknown once the broker restarts with it: librdkafka
   reports ``SASL SCRAM authentication failed: broker responded with
   unknown-user`` (the broker offers only SCRAM-SHA-512).

The client side is ready: ``kafka.username`` / ``password`` / ``mechanism``
(read from ``credentials.json`` under ``"kafka"``) go into every client through
``lambda_rt.clients.kafka_auth``. Run with ``-m known_bug``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from lambda_rt.stack import free_stack_ports, launcher, process
from lambda_rt.stack.binaries import tansu_binary
from lambda_rt.stack.services import KafkaServer
from lambda_rt.stack.state import StateLayout, ensure_credentials


def _answers(port: int, **sasl: str) -> bool:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0, **sasl})
    try:
        admin.list_topics(timeout=5)
    except Exception:
        return False
    return True


@pytest.mark.known_bug
def test_broker_requires_scram_user_and_refuses_anonymous(tmp_path: Path) -> None:
    with launcher.running_stack(tmp_path / "stack", **free_stack_ports()) as s:
        layout = StateLayout(s.state_dir)
        broker = KafkaServer(s, layout, ensure_credentials(layout.root))
        port = s.stack.kafka_port
        assert process.stop(layout.pid("kafka"), tansu_binary())
        with open(tmp_path / "broker.log", "ab") as log:
            proc = subprocess.Popen(broker.command(), env=broker.env(), stdout=log, stderr=subprocess.STDOUT)
            time.sleep(1.0)
            created = subprocess.run(
                [tansu_binary(), "user", "create", "--broker", f"tcp://127.0.0.1:{port}", "lrt", "pw-123456"],
                env=broker.env(),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            proc.terminate()
            proc.wait(30)
            proc = subprocess.Popen(
                [*broker.command(), "--authentication"],
                env=broker.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            time.sleep(1.0)
            scram = {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "lrt",
                "sasl.password": "pw-123456",
            }
            assert created.returncode == 0, created.stderr
            assert not _answers(port), "an unauthenticated client was served"
            assert _answers(port, **scram), "the SCRAM user was refused (tansu 0.6.0: unknown-user)"
        finally:
            proc.terminate()
            proc.wait(30)
            launcher.up(s)  # the stack's own broker again, so `down` stops it
