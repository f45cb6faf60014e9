"""How the daemon hosts the GraphQL and gRPC APIs beside its HTTP API (the wiring only).

``lambda-rt serve`` calls :func:`graphql_mounter` to put ``/graphql`` on its
FastAPI app and :func:`start_grpc` to run ``lambda_rt.v1.Analytics`` on its
own port, both over the daemon's engine and with the HTTP API's token, so the
three doors give the same answers under the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from lambda_rt.config import Settings
from serving.apis import ApiBackend

__all__ = ["graphql_mounter", "start_grpc"]

log = logging.getLogger(__name__)


def graphql_mounter(
    settings: Settings, backend: ApiBackend, *, token: str | None, host: str
) -> Callable[[FastAPI], Any]:
    """What ``create_app(graphql=...)`` calls: mount ``/graphql`` with the ``serve.graphql_*`` limits."""
    from serving.graphql_api import GraphQLLimits, mount_graphql
    from serving.graphql_api.router import is_loopback

    s = settings.serve
    limits = GraphQLLimits(
        max_depth=s.graphql_max_depth,
        max_tokens=s.graphql_max_tokens,
        max_aliases=s.graphql_max_aliases,
        max_request_bytes=s.graphql_max_request_bytes,
    )

    def mount(app: FastAPI) -> Any:
        return mount_graphql(app, backend, token=token, limits=limits, graphiql=is_loopback(host))

    return mount


def start_grpc(
    settings: Settings, backend: ApiBackend, *, token: str | None, host: str, port: int | None
) -> Any:
    """Start the gRPC server (``port`` None: ``serve.grpc_port``); returns it, bound."""
    from serving.graphql_api.router import is_loopback
    from serving.grpc_api.server import GrpcServer

    s = settings.serve
    server = GrpcServer(
        backend,
        host=host,
        port=s.grpc_port if port is None else port,
        token=token,
        tls_cert=s.grpc_tls_cert,
        tls_key=s.grpc_tls_key,
    )
    server.start()
    if not server.tls and not is_loopback(host):
        log.warning("gRPC on %s without TLS: set serve.grpc_tls_cert and serve.grpc_tls_key", server.address)
    return server
