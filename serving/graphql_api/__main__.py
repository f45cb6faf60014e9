"""Print the GraphQL schema (SDL): ``python -m serving.graphql_api``."""

from __future__ import annotations

from serving.graphql_api.schema import build_schema

print(build_schema().as_str())
