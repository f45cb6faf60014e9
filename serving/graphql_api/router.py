"""Mounting the GraphQL schema on the daemon's FastAPI app at ``/graphql``.

- Auth: with a token set, HTTP requests need ``Authorization: Bearer <token>``
  (401 otherwise, as the rest of the API); a WebSocket may send it as that
  header on the upgrade or as ``connectionParams`` ``{"Authorization": "Bearer <token>"}``
  (browsers cannot set headers on a WebSocket); without it the socket is
  closed with 4403.
- GraphiQL is served only when the daemon listens on loopback and only to a
  loopback client; its page needs no token (it holds no data: the queries
  typed into it carry the token, set in its headers pane).
- Requests larger than ``max_request_bytes`` get a 413 with a GraphQL error
  body before anything is parsed.
- One :class:`~serving.live.LiveHub` per app: every ``liveMetric``
  subscriber to the same question shares one computation per tick.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http.base import BaseRequestProtocol

from serving.apis import ApiBackend, QueryArgs
from serving.graphql_api.schema import GraphQLLimits, LiveAnswer, build_schema, live_answer
from serving.live import LiveHub

__all__ = ["GRAPHQL_PATH", "is_loopback", "mount_graphql"]

GRAPHQL_PATH = "/graphql"


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _LoopbackIDE(GraphQLRouter[Any, None]):
    """GraphiQL for loopback clients only; WebSocket auth from the header or connectionParams."""

    def __init__(self, *args: Any, token: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expected = f"Bearer {token}".encode() if token else None

    def encode_json(self, data: object) -> bytes:
        # orjson: the stdlib encoder costs ~1 ms more on a day of hourly rows by store
        return orjson.dumps(data)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # strawberry passes an adapter around the Starlette request; unknown shapes mean "no IDE"
        starlette_request = getattr(request, "_request", request)
        client = getattr(starlette_request, "client", None)
        return super().should_render_graphql_ide(request) and is_loopback(getattr(client, "host", None))

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        if self._expected is not None:
            params = context.get("connection_params") or {}
            request = context.get("request")
            given = request.headers.get("authorization", "") if request is not None else ""
            if not given and isinstance(params, dict):
                given = str(params.get("Authorization") or params.get("authorization") or "")
            if not hmac.compare_digest(given.encode(), self._expected):
                raise ConnectionRejectionError({"message": "missing or wrong bearer token"})
        return await super().on_ws_connect(context)


def _ide_page_request(conn: HTTPConnection) -> bool:
    """A browser on this machine asking for the GraphiQL page (GET, no query, HTML accepted)."""
    return (
        conn.scope.get("method") == "GET"
        and "query" not in conn.query_params
        and "text/html" in conn.headers.get("accept", "")
        and is_loopback(conn.client.host if conn.client else None)
    )


class _BodyLimit:
    """413 with a GraphQL error body when a ``/graphql`` request is larger than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(GRAPHQL_PATH):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            {"errors": [{"message": f"request body larger than {self.limit} bytes: send a smaller query"}]}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def mount_graphql(
    app: FastAPI,
    backend: ApiBackend,
    *,
    token: str | None = None,
    limits: GraphQLLimits | None = None,
    graphiql: bool = False,
) -> LiveHub[QueryArgs, LiveAnswer]:
    """Add ``/graphql`` (queries over HTTP, subscriptions over WebSocket) to ``app``.

    Args:
        backend: what the resolvers answer from.
        token: the bearer token (None: open), the same as the HTTP API's.
        limits: depth, tokens, aliases, top-level fields, body size.
        graphiql: serve GraphiQL (only pass True when the daemon listens on loopback).

    Returns:
        The live hub (its ``computations`` count is what the tests check).
    """
    limits = limits or GraphQLLimits()
    hub: LiveHub[QueryArgs, LiveAnswer] = LiveHub(
        lambda args: live_answer(backend, args), backend.live_interval_s
    )

    def auth(conn: HTTPConnection) -> None:
        if token is None or conn.scope["type"] != "http":  # WebSockets: checked in on_ws_connect
            return
        if graphiql and _ide_page_request(conn):  # the page holds no data; its queries carry the token
            return
        given = conn.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    def context() -> dict[str, Any]:
        return {"backend": backend, "hub": hub}

    router = _LoopbackIDE(
        build_schema(limits),
        token=token,
        graphql_ide="graphiql" if graphiql else None,
        context_getter=context,
        dependencies=[Depends(auth)],
        # each distinct live question costs one engine query per tick
        max_subscriptions_per_connection=limits.max_subscriptions_per_connection,
    )
    app.include_router(router, prefix=GRAPHQL_PATH, include_in_schema=False)
    app.add_middleware(_BodyLimit, limit=limits.max_request_bytes)
    return hub
