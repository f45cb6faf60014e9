"""The GraphQL schema: ``metric``, ``status``, ``alerts`` and the ``liveMetric`` subscription.

Resolvers get the :class:`~serving.apis.ApiBackend` and the live hub from the
request context (see :mod:`serving.graphql_api.router`); engine calls run in
a worker thread so a slow query never stalls the daemon's event loop.

Abuse limits, all checked before anything runs: the operation's depth
(``QueryDepthLimiter``), its token count (``MaxTokensLimiter``, which also
bounds its size), its aliases (``MaxAliasesLimiter``) and, as the cost limit,
the number of top-level fields (each one is a query on the engine). A
refused or failed request gets a GraphQL error with one line of text: a
lambda-rt error keeps its message (it says what to fix), anything else is
masked as "internal error" and logged with its traceback here, never sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from lambda_rt.errors import LambdaRTError
from serving.apis import ApiBackend, EncodedCache, QueryArgs, fingerprint, run_query
from serving.errors import ServingError
from serving.graphql_api.executor import FlatListExecutor
from serving.graphql_api.types import (
    LONG_SCALAR,
    AlertList,
    Long,
    MetricResult,
    Status,
    alert_of,
    metric_result_of,
    status_of,
)
from serving.live import LiveHub

__all__ = ["ENCODED", "GraphQLLimits", "LiveAnswer", "Query", "Subscription", "build_schema", "live_answer"]

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error: see the daemon's log"


@dataclass(frozen=True)
class GraphQLLimits:
    """What one GraphQL request may cost (``serve.graphql_*`` settings)."""

    max_depth: int = 6
    max_tokens: int = 2_000
    max_aliases: int = 10
    max_root_fields: int = 5
    max_request_bytes: int = 16_384
    max_subscriptions_per_connection: int = 10


@dataclass(frozen=True)
class LiveAnswer:
    """One tick's answer to a live question, shared by all its subscribers."""

    digest: bytes
    result: MetricResult


ENCODED: EncodedCache[MetricResult] = EncodedCache()
"""GraphQL objects of cached engine results (read-only once built, shared by requests)."""


def live_answer(backend: ApiBackend, args: QueryArgs) -> LiveAnswer:
    """The hub's compute function: one engine query and one GraphQL object per tick."""
    result = run_query(backend.query, args)
    return LiveAnswer(fingerprint(result), ENCODED.get(result, metric_result_of))


def _metric(backend: ApiBackend, args: QueryArgs) -> MetricResult:
    return ENCODED.get(run_query(backend.query, args), metric_result_of)


def _backend(info: Info) -> ApiBackend:
    backend: ApiBackend = info.context["backend"]
    return backend


@strawberry.type
class Query:
    @strawberry.field(description="One merged metric, as GET /query answers it.")
    async def metric(
        self,
        info: Info,
        name: str,
        by: list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        granularity: str = "hour",
        store_id: int | None = None,
        strict: bool = False,
    ) -> MetricResult:
        args = QueryArgs.build(name, by, start, end, granularity, strict, store_id)
        return await asyncio.to_thread(_metric, _backend(info), args)

    @strawberry.field(description="Watermark, tier sizes and recent batch jobs.")
    async def status(self, info: Info) -> Status:
        return status_of(await asyncio.to_thread(_backend(info).status))

    @strawberry.field(description="Alerts raised by the detection stage (see AlertList.note).")
    def alerts(
        self, info: Info, since: str | None = None, rule: str | None = None, status: str | None = None
    ) -> AlertList:
        source = _backend(info).alerts
        return AlertList(
            alerts=[alert_of(a) for a in source.recent(since, rule, status)],
            available=source.available,
            note=source.note,
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The metric now, then again each time its rows change (checked about once a second)."
    )
    async def live_metric(
        self,
        info: Info,
        name: str,
        by: list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        granularity: str = "hour",
        store_id: int | None = None,
    ) -> AsyncGenerator[MetricResult, None]:
        args = QueryArgs.build(name, by, start, end, granularity, False, store_id)
        args.validate()
        hub: LiveHub[QueryArgs, LiveAnswer] = info.context["hub"]
        last: bytes | None = None
        async for snap in hub.subscribe(args):
            if snap.value is None:
                raise ServingError(snap.error or "the live query failed")
            if snap.value.digest != last:
                last = snap.value.digest
                yield snap.value.result

    @strawberry.subscription(description="New alerts as they are raised (an error until detection exists).")
    async def alerts(
        self, info: Info, rule: str | None = None, status: str | None = None
    ) -> AsyncGenerator[AlertList, None]:
        source = _backend(info).alerts
        if not source.available:
            raise ServingError(source.note)
        yield AlertList(
            alerts=[alert_of(a) for a in source.recent(None, rule, status)],
            available=True,
            note=source.note,
        )


def _root_field_limit(limit: int) -> type[ValidationRule]:
    class RootFieldLimit(ValidationRule):
        """At most ``limit`` top-level fields per operation: each is an engine query."""

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            n = len(node.selection_set.selections)
            if n > limit:
                self.report_error(
                    GraphQLError(f"too many top-level fields ({n}): at most {limit} per request", node)
                )

    return RootFieldLimit


def _expected(error: GraphQLError) -> bool:
    """A client's mistake (validation, or a lambda-rt error with a useful message), not a bug."""
    return error.original_error is None or isinstance(error.original_error, LambdaRTError)


class _Schema(strawberry.Schema):
    """Logs unexpected resolver errors with their traceback; clients' mistakes at debug level."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if _expected(error):
                log.debug("GraphQL request refused: %s", error.message)
            else:
                original = error.original_error
                log.error("GraphQL resolver failed: %s", error.message, exc_info=original)


def build_schema(limits: GraphQLLimits | None = None) -> strawberry.Schema:
    """The schema with its limits (same limits for queries and subscriptions)."""
    limits = limits or GraphQLLimits()
    # the rule classes are built once: the validation cache is keyed on them, and a
    # limiter made per request would bring new classes (and a cache miss) each time
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        _root_field_limit(limits.max_root_fields),
    ]
    return _Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={Long: LONG_SCALAR}),
        execution_context_class=FlatListExecutor,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            lambda: MaskErrors(should_mask_error=lambda e: not _expected(e), error_message=INTERNAL_ERROR),
        ],
    )
