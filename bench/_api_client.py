"""The load generator of ``bench/api.py``, run as its own process (so clients do not share the servers' GIL).

``python -m bench._api_client TRANSPORT ADDRESS CONCURRENCY N QUERY_JSON`` sends
``N`` requests in total from ``CONCURRENCY`` concurrent asyncio clients on one
connection each, and prints ``{"ms": [...], "wall_s": ...}``. Each request
decodes its answer to the transport's native form (JSON to dicts, Arrow IPC
to a table, protobuf to a message), not to a DataFrame.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

GRAPHQL = (
    "query($m: String!, $by: [String!], $s: String, $e: String, $g: String!) "
    "{ metric(name: $m, by: $by, start: $s, end: $e, granularity: $g) "
    "{ metric granularity rows { bucket storeId value } "
    "coverage { batchThrough exact complete ranges { layer start end } holes { start end reason } } } }"
)


async def _client(
    transport: str, address: str, q: dict[str, Any]
) -> tuple[Callable[[], Awaitable[Any]], Any]:
    """One client: a call that sends the query and decodes the answer, and what to close."""
    if transport == "grpc":
        import grpc

        from serving.grpc_api.v1 import analytics_pb2 as pb
        from serving.grpc_api.v1 import analytics_pb2_grpc as pb_grpc

        channel = grpc.aio.insecure_channel(address)
        stub = pb_grpc.AnalyticsStub(channel)
        req = pb.QueryRequest(
            metric=q["metric"], by=[q["by"]], start=q["start"], end=q["end"], granularity=q["granularity"]
        )

        async def call_grpc() -> Any:
            return await stub.Query(req)

        return call_grpc, channel
    import httpx
    import orjson

    http = httpx.AsyncClient(base_url=address, timeout=60)
    if transport == "graphql":
        variables = {"m": q["metric"], "by": [q["by"]], "s": q["start"], "e": q["end"], "g": q["granularity"]}
        body = orjson.dumps({"query": GRAPHQL, "variables": variables})
        headers = {"content-type": "application/json"}

        async def call_graphql() -> Any:
            r = await http.post("/graphql", content=body, headers=headers)
            doc = orjson.loads(r.content)
            if r.status_code != 200 or doc.get("errors"):
                raise RuntimeError(r.text[:300])
            return doc

        return call_graphql, http
    if transport == "http-json":

        async def call_json() -> Any:
            r = await http.get("/query", params=q)
            r.raise_for_status()
            return orjson.loads(r.content)

        return call_json, http
    import pyarrow as pa

    params = {**q, "format": "arrow"}

    async def call_arrow() -> Any:
        r = await http.get("/query", params=params)
        r.raise_for_status()
        return pa.ipc.open_stream(r.content).read_all()

    return call_arrow, http


async def _run(transport: str, address: str, concurrency: int, n: int, q: dict[str, Any]) -> dict[str, Any]:
    clients = [await _client(transport, address, q) for _ in range(concurrency)]
    for call, _ in clients:  # connect and warm each client once, outside the timing
        await call()
    lat: list[float] = []
    remaining = n

    async def worker(call: Callable[[], Awaitable[Any]]) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            await call()
            lat.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(call) for call, _ in clients))
    wall = time.perf_counter() - t0
    for _, closable in clients:
        await (closable.aclose() if hasattr(closable, "aclose") else closable.close())
    return {"ms": lat, "wall_s": wall}


def main(argv: list[str] | None = None) -> None:
    transport, address, concurrency, n, query = (argv or sys.argv[1:])[:5]
    out = asyncio.run(_run(transport, address, int(concurrency), int(n), json.loads(query)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
