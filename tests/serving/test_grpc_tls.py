"""gRPC with TLS (``serve.grpc_tls_cert`` / ``serve.grpc_tls_key``) over a real engine.

The server runs in this process over a :class:`QueryEngine` on the test's
own slice of the stack (no events: the answer is empty and its coverage says
the speed layer applied nothing). A client trusting the certificate gets the
answer; a plaintext client does not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import serving
from batch_layer.migrations import ensure_tables
from lambda_rt.clients.clickhouse import open_clickhouse
from serving.apis import ApiBackend
from serving.engine import QueryEngine
from serving.grpc_api.client import GrpcClient
from serving.grpc_api.server import GrpcServer
from serving.grpc_api.v1 import analytics_pb2 as pb
from serving.grpc_api.v1 import analytics_pb2_grpc as pb_grpc


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def engine(isolated) -> Iterator[QueryEngine]:  # type: ignore[no-untyped-def]
    client = open_clickhouse(isolated.settings)
    ensure_tables(client)
    with QueryEngine(isolated.settings, clickhouse=client) as e:
        yield e


def test_tls_client_gets_the_answer_and_plaintext_is_refused(
    isolated, engine: QueryEngine, tls_pair: tuple[Path, Path]
) -> None:  # type: ignore[no-untyped-def]
    cert, key = tls_pair
    server = GrpcServer(
        ApiBackend(query=engine.query, status=dict), host="127.0.0.1", port=0, tls_cert=cert, tls_key=key
    )
    port = server.start()
    try:
        assert server.tls
        settings = isolated.settings.model_copy(
            update={"serve": isolated.settings.serve.model_copy(update={"grpc_tls_cert": cert})}
        )
        with serving.connect(settings, transport="grpc", url=f"localhost:{port}") as client:
            assert isinstance(client, GrpcClient)
            result = client.query_result("events", "store_id")
        assert result.frame.empty and not result.coverage.complete
        assert "applied nothing" in result.coverage.holes[0].reason
        plain = grpc.insecure_channel(f"127.0.0.1:{port}")
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.AnalyticsStub(plain).Query(pb.QueryRequest(metric="events"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()
    finally:
        server.stop()


def test_tls_needs_both_files(tls_pair: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="both"):
        GrpcServer(ApiBackend(query=lambda *a, **k: None, status=dict), tls_cert=tls_pair[0])
