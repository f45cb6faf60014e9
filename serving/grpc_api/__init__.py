"""The gRPC API ``lambda_rt.v1.Analytics``: server, client and the generated stubs.

The ``.proto`` is ``serving/grpc_api/proto/lambda_rt/v1/analytics.proto``; the
stubs in ``serving/grpc_api/v1/`` are generated from it by
``python -m serving.grpc_api.codegen`` and committed. Import the server
(:mod:`serving.grpc_api.server`) or the client (:mod:`serving.grpc_api.client`)
module directly: this package imports neither, so importing one does not
load the other.
"""

from __future__ import annotations

__all__: list[str] = []
