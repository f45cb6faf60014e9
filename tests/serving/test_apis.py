"""GraphQL and gRPC against a running daemon: same answers as HTTP, the engine and the oracle.

One daemon (``tests.serving.api_fixtures.py``) with a bearer token serves the
module: every metric over GraphQL and gRPC equals the HTTP answer, the
oracle, and (after the daemon stops) the in-process engine on the daemon's
data; a call built only from gRPC reflection works; live feeds push within
2 s of the speed layer applying new events; calls without the token are
refused; bad queries get one clean message.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pandas as pd
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import serving
from lambda_rt.config import Settings
from lambda_rt.testing import oracle_metrics
from lambda_rt.vocabulary import METRICS
from serving.grpc_api.v1 import analytics_pb2 as pb
from serving.grpc_api.v1 import analytics_pb2_grpc as pb_grpc
from tests.serving.api_fixtures import TOKEN, ApiDaemon, run_speed_once, start_api_daemon
from tests.serving.fixtures import generate, produce

ROWS = "rows { bucket storeId eventType productId value }"
COVERAGE = "coverage { batchThrough exact complete document }"


@pytest.fixture(scope="module")
def daemon(
    stack_settings: Settings, chdb_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiDaemon]:
    d = start_api_daemon(stack_settings, chdb_settings, tmp_path_factory.mktemp("apis"))
    try:
        yield d
    finally:
        d.stop()


def _by(metric: str) -> list[str]:
    return ["store_id", "product_id"] if metric == "inventory_delta" else ["store_id"]


def _gql(d: ApiDaemon, query: str, **variables: Any) -> dict[str, Any]:
    r = d.http.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _snake_rows(rows: list[dict[str, Any]], by: list[str]) -> list[dict[str, Any]]:
    names = {"store_id": "storeId", "event_type": "eventType", "product_id": "productId"}
    return [{"bucket": r["bucket"], **{d: r[names[d]] for d in by}, "value": r["value"]} for r in rows]


def _strip(cov: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cov.items() if k not in ("cached", "speed")}


def _check_oracle(d: ApiDaemon, metric: str, by: list[str], got: pd.DataFrame) -> None:
    exp = oracle_metrics(d.oracle(), metric, tuple(by), "hour")
    merged = got.merge(exp, on=["bucket", *by], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    diff = (merged["value_x"] - merged["value_y"]).abs()
    limit = (merged["value_y"] * 0.02).clip(lower=1) if metric == "unique_customers" else 0
    assert (diff <= limit).all(), merged[diff > limit].head()


@pytest.mark.parametrize("metric", METRICS)
def test_metric_over_graphql_and_grpc_equals_http_and_oracle(daemon: ApiDaemon, metric: str) -> None:
    d, by = daemon, _by(metric)
    http = d.http.get("/query", params={"metric": metric, "by": ",".join(by), "start": d.start, "end": d.end})
    assert http.status_code == 200, http.text
    expected = http.json()
    assert expected["rows"], f"no rows for {metric}"

    q = (
        "query($m: String!, $by: [String!], $s: String, $e: String) "
        f"{{ metric(name: $m, by: $by, start: $s, end: $e) {{ metric granularity {ROWS} {COVERAGE} }} }}"
    )
    doc = _gql(d, q, m=metric, by=by, s=d.start, e=d.end)
    assert "errors" not in doc, doc
    got = doc["data"]["metric"]
    assert (got["metric"], got["granularity"]) == (metric, "hour")
    assert _snake_rows(got["rows"], by) == expected["rows"]
    assert _strip(got["coverage"]["document"]) == _strip(expected["coverage"])
    assert got["coverage"]["batchThrough"] == expected["coverage"]["batch_through"]
    assert got["coverage"]["exact"] == expected["coverage"]["exact"]

    with serving.connect(d.settings, transport="grpc", token=TOKEN) as client:
        frame = client.query(metric, by, d.start, d.end)
    assert _strip(frame.attrs["coverage"]) == _strip(expected["coverage"])
    with serving.connect(d.settings, token=TOKEN) as http_client:
        assert isinstance(http_client, serving.HttpClient)
        via_http = http_client.query(metric, by, d.start, d.end)
    pd.testing.assert_frame_equal(frame, via_http)
    _check_oracle(d, metric, by, frame)


def test_store_filter_keeps_one_store(daemon: ApiDaemon) -> None:
    d = daemon
    full = d.http.get(
        "/query", params={"metric": "revenue", "by": "store_id", "start": d.start, "end": d.end}
    )
    store = full.json()["rows"][0]["store_id"]
    expected = [r for r in full.json()["rows"] if r["store_id"] == store]
    q = (
        "query($s: String, $e: String, $id: Int) "
        '{ metric(name: "revenue", start: $s, end: $e, storeId: $id) { rows { bucket storeId value } } }'
    )
    got = _gql(d, q, s=d.start, e=d.end, id=store)["data"]["metric"]["rows"]
    assert _snake_rows(got, ["store_id"]) == expected
    with serving.connect(d.settings, transport="grpc", token=TOKEN) as client:
        res = client.query_result("revenue", None, d.start, d.end, store_id=store)
        watch = client.watch("revenue", "store_id")
        live = next(watch)  # the current answer at once (the last 24 h ending now)
        watch.close()
        now = client.query_result("revenue", "store_id")
    assert res.frame["store_id"].eq(store).all() and len(res.frame) == len(expected)
    pd.testing.assert_frame_equal(live.frame, now.frame)


def test_status_and_alerts(daemon: ApiDaemon) -> None:
    d = daemon
    data = _gql(
        d,
        "{ status { watermark tiers { name rows } jobs { job status } } "
        "alerts { alerts { alertId } available note } }",
    )["data"]
    assert data["status"]["watermark"] == d.http.get("/status").json()["watermark"]
    assert any(t["name"] == "events_hot" and t["rows"] == len(d.pairs) for t in data["status"]["tiers"])
    assert data["alerts"] == {"alerts": [], "available": False, "note": data["alerts"]["note"]}
    assert "not deployed" in data["alerts"]["note"]
    channel = grpc.insecure_channel(d.grpc_target)
    stub = pb_grpc.AnalyticsStub(channel)
    md = (("authorization", f"Bearer {TOKEN}"),)
    status = stub.Status(pb.StatusRequest(), metadata=md, timeout=30)
    assert status.watermark == data["status"]["watermark"]
    assert json.loads(status.json)["tiers"]["events_hot"]["rows"] == len(d.pairs)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(stub.StreamAlerts(pb.StreamAlertsRequest(), metadata=md, timeout=30)))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "not deployed" in (err.value.details() or "")
    channel.close()


def test_query_through_grpc_reflection_and_health(daemon: ApiDaemon) -> None:
    """A client that knows nothing but the address: descriptors from reflection, a dynamic call."""
    from google.protobuf import descriptor_pool, message_factory
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    d = daemon
    channel = grpc.insecure_channel(d.grpc_target)
    # health needs no token (load balancers and orchestrators probe it)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="lambda_rt.v1.Analytics"), timeout=10
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    md = (("authorization", f"Bearer {TOKEN}"),)
    authed = grpc.intercept_channel(channel, _Metadata(md))
    db = ProtoReflectionDescriptorDatabase(authed)
    assert "lambda_rt.v1.Analytics" in db.get_services()
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("lambda_rt.v1.Analytics")
    method = service.methods_by_name["Query"]
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        "/lambda_rt.v1.Analytics/Query",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    req = request_cls(metric="revenue", by=["store_id"], start=d.start, end=d.end, granularity="hour")
    resp = call(req, metadata=md, timeout=30)
    expected = d.http.get(
        "/query", params={"metric": "revenue", "by": "store_id", "start": d.start, "end": d.end}
    ).json()
    rows = [{"bucket": r.bucket, "store_id": r.store_id, "value": r.value} for r in resp.rows]
    assert rows == expected["rows"]
    assert resp.coverage.batch_through == expected["coverage"]["batch_through"]
    channel.close()


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Adds the token to reflection's calls (reflection is behind the token like the API)."""

    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self._md = md

    def _with(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self._md)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with(details), requests)


def test_graphiql_page_on_loopback(daemon: ApiDaemon) -> None:
    r = httpx.get(f"{daemon.url}/graphql", headers={"Accept": "text/html"}, timeout=30)
    assert r.status_code == 200 and "graphiql" in r.text.lower()
    # the page needs no token, a query over GET does
    assert httpx.get(f"{daemon.url}/graphql", params={"query": "{ status { watermark } }"}).status_code == 401


def test_without_the_token_every_door_refuses(daemon: ApiDaemon) -> None:
    d = daemon
    q = {"query": '{ metric(name: "events") { rows { value } } }'}
    assert d.http.post("/graphql", json=q, headers={"Authorization": ""}).status_code == 401
    assert d.http.post("/graphql", json=q, headers={"Authorization": "Bearer wrong"}).status_code == 401
    channel = grpc.insecure_channel(d.grpc_target)
    stub = pb_grpc.AnalyticsStub(channel)
    for md in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as err:
            stub.Query(pb.QueryRequest(metric="events"), metadata=md, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            next(
                iter(
                    stub.WatchMetric(
                        pb.WatchMetricRequest(query=pb.QueryRequest(metric="events")), metadata=md, timeout=10
                    )
                )
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    ws_url = d.url.replace("http://", "ws://") + "/graphql"
    with ws_connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('{ metric(name: "nope") { metric } }', "unknown metric 'nope'"),
        ('{ metric(name: "events", by: ["product_id"]) { metric } }', "unknown dimension 'product_id'"),
        ('{ metric(name: "events", start: "yesterday") { metric } }', "cannot parse --start 'yesterday'"),
        ('{ metric(name: "events", granularity: "week") { metric } }', "unknown granularity 'week'"),
        ('{ metric(name: "events") { nope } }', "Cannot query field 'nope'"),
        ("{ metric(", "Syntax Error"),
        (
            "{ " + " ".join(f"a{i}: status {{ watermark }}" for i in range(6)) + " }",
            "too many top-level fields (6)",
        ),
        ("{ " + " ".join(f"a{i}: alerts {{ note }}" for i in range(12)) + " }", "12 aliases found"),
    ],
)
def test_bad_graphql_gets_one_clean_error(daemon: ApiDaemon, query: str, message: str) -> None:
    r = daemon.http.post("/graphql", json={"query": query})
    assert r.status_code == 200, r.text
    errors = r.json()["errors"]
    assert message in errors[0]["message"], errors
    assert all("Traceback" not in e["message"] and "\n" not in e["message"] for e in errors)


def test_oversized_graphql_request_is_refused_before_parsing(daemon: ApiDaemon) -> None:
    r = daemon.http.post("/graphql", json={"query": "{ status { watermark } }", "pad": "x" * 40_000})
    assert r.status_code == 413
    assert "larger than" in r.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.QueryRequest(metric="nope"), "unknown metric 'nope'"),
        (pb.QueryRequest(metric="events", granularity="week"), "unknown granularity 'week'"),
        (pb.QueryRequest(metric="events", by=["product_id"]), "unknown dimension 'product_id'"),
        (
            pb.QueryRequest(metric="events", start="2026-01-02T00:00:00Z", end="2026-01-01T00:00:00Z"),
            "is not after",
        ),
        (pb.QueryRequest(metric="events", store_id=0), "storeId must be >= 1"),
    ],
)
def test_bad_grpc_arguments_are_invalid_argument(
    daemon: ApiDaemon, request_: pb.QueryRequest, message: str
) -> None:
    channel = grpc.insecure_channel(daemon.grpc_target)
    stub = pb_grpc.AnalyticsStub(channel)
    md = (("authorization", f"Bearer {TOKEN}"),)
    for call in (
        lambda: stub.Query(request_, metadata=md, timeout=10),
        lambda: next(iter(stub.WatchMetric(pb.WatchMetricRequest(query=request_), metadata=md, timeout=10))),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = err.value.details() or ""
        assert message in details and "\n" not in details and "Traceback" not in details
    channel.close()
    with (
        serving.connect(daemon.settings, transport="grpc", token=TOKEN) as client,
        pytest.raises(serving.InvalidQueryError),
    ):
        client.query("nope")


def _total(rows: list[Any], key: str = "value") -> int:
    return sum(int(r[key]) if isinstance(r, dict) else int(getattr(r, key)) for r in rows)


def test_live_feeds_push_within_2s_of_the_speed_layer_applying(daemon: ApiDaemon) -> None:
    """GraphQL liveMetric and gRPC WatchMetric: first answer at once, the update < 2 s after apply."""
    d = daemon
    got: queue.Queue[tuple[str, float, int]] = queue.Queue()
    stop = threading.Event()
    ws_url = d.url.replace("http://", "ws://") + "/graphql"

    def graphql_watch() -> None:
        with ws_connect(ws_url, subprotocols=["graphql-transport-ws"], additional_headers=d.headers) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            sub = 'subscription { liveMetric(name: "events", granularity: "hour") { rows { value } } }'
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": sub}}))
            while not stop.is_set():
                try:
                    msg = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                assert msg["type"] == "next", msg
                got.put(("graphql", time.monotonic(), _total(msg["payload"]["data"]["liveMetric"]["rows"])))

    channel = grpc.insecure_channel(d.grpc_target)
    stream = pb_grpc.AnalyticsStub(channel).WatchMetric(
        pb.WatchMetricRequest(query=pb.QueryRequest(metric="events", granularity="hour")),
        metadata=(("authorization", f"Bearer {TOKEN}"),),
    )

    def grpc_watch() -> None:
        try:
            for msg in stream:
                got.put(("grpc", time.monotonic(), _total(list(msg.rows))))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED, exc

    threads = [threading.Thread(target=graphql_watch), threading.Thread(target=grpc_watch)]
    for t in threads:
        t.start()
    try:
        first: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(first) < 2 and time.monotonic() < deadline:
            source, _, total = got.get(timeout=max(0.1, deadline - time.monotonic()))
            first.setdefault(source, total)
        assert set(first) == {"graphql", "grpc"} and first["graphql"] == first["grpc"] > 0, first

        now_ms = int(time.time() * 1000)
        extra = generate(500, now_ms - 5_000, 60_000, seed=99)
        produce(d.settings, extra)
        speed = run_speed_once(d.settings, idle_s=3.0)
        # when the speed layer has applied them: the HTTP answer (the engine) shows more events
        params = {"metric": "events", "granularity": "hour"}
        applied_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            total = _total(d.http.get("/query", params=params).json()["rows"])
            if total > first["grpc"]:
                applied_at = time.monotonic()
                break
            time.sleep(0.05)
        assert applied_at is not None, "the speed layer did not apply the new events in 60 s"
        updated: dict[str, float] = {}
        deadline = applied_at + 5
        while len(updated) < 2 and time.monotonic() < deadline:
            try:
                source, at, total = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if total > first[source]:
                updated.setdefault(source, at)
        assert set(updated) == {"graphql", "grpc"}, updated
        for source, at in updated.items():
            assert at - applied_at <= 2.0, f"{source} pushed {at - applied_at:.2f} s after the apply"
        speed.join()
    finally:
        stop.set()
        stream.cancel()
        for t in threads:
            t.join(10)
        channel.close()


def test_in_process_engine_on_the_daemons_data_gives_the_same_answers(daemon: ApiDaemon) -> None:
    """Last: ask GraphQL, stop the daemon (live feeds open), then the CLI opens its data in-process."""
    d = daemon
    q = (
        "query($m: String!, $by: [String!], $s: String, $e: String) "
        f"{{ metric(name: $m, by: $by, start: $s, end: $e) {{ {ROWS} {COVERAGE} }} }}"
    )
    answers = {m: _gql(d, q, m=m, by=_by(m), s=d.start, e=d.end)["data"]["metric"] for m in METRICS}
    # a subscriber on each door must not hold the daemon up at SIGTERM
    ws_url = d.url.replace("http://", "ws://") + "/graphql"
    with ws_connect(ws_url, subprotocols=["graphql-transport-ws"], additional_headers=d.headers) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ws.recv(timeout=10)
        sub = 'subscription { liveMetric(name: "orders") { rows { value } } }'
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": sub}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "next"
        channel = grpc.insecure_channel(d.grpc_target)
        stream = pb_grpc.AnalyticsStub(channel).WatchMetric(
            pb.WatchMetricRequest(query=pb.QueryRequest(metric="orders")),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
        next(iter(stream))
        t0 = time.monotonic()
        assert d.stop() == 0, d.proc.stderr.read() if d.proc.stderr else ""
        stopped_in = time.monotonic() - t0
        assert stopped_in < 20, f"the daemon took {stopped_in:.1f} s to stop"
        with pytest.raises(grpc.RpcError):
            next(iter(stream))
        channel.close()
    for metric, got in answers.items():
        args = [metric, "--by", ",".join(_by(metric)), "--start", d.start, "--end", d.end, "--format", "json"]
        out = subprocess.run(
            [sys.executable, "-m", "lambda_rt", "query", *args],
            env=d.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        local = json.loads(out.stdout)
        assert _snake_rows(got["rows"], _by(metric)) == local["rows"], metric
        assert _strip(got["coverage"]["document"]) == _strip(local["coverage"]), metric


def test_generated_grpc_stubs_match_the_proto() -> None:
    """CI check: regenerate into a temporary directory and compare with the committed stubs."""
    from serving.grpc_api.codegen import stale_files

    assert stale_files() == [], "run: python -m serving.grpc_api.codegen"
