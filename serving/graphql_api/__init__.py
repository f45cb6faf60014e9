"""The GraphQL API at ``/graphql`` (strawberry): queries, subscriptions, limits, auth.

:func:`mount_graphql` adds it to the daemon's FastAPI app; the schema is in
:mod:`serving.graphql_api.schema`, its object types in
:mod:`serving.graphql_api.types`. ``python -m serving.graphql_api`` prints the
schema (SDL).
"""

from __future__ import annotations

from serving.graphql_api.router import GRAPHQL_PATH, mount_graphql
from serving.graphql_api.schema import GraphQLLimits, build_schema

__all__ = ["GRAPHQL_PATH", "GraphQLLimits", "build_schema", "mount_graphql"]
