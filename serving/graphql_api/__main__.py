"""Print the GraphQL schema (SDL): ``python -m serving.graphql_api > serving/graphql_api/schema.graphql``.

The checked-in ``schema.graphql`` is what other teams read and generate
clients from; ``tests/serving/test_graphql_schema.py`` fails when it is stale.
"""

from __future__ import annotations

from serving.graphql_api.schema import build_schema

print(build_schema().as_str())
