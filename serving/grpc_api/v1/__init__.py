"""Generated protobuf and gRPC code for ``lambda_rt.v1`` (do not edit; see ``serving.grpc_api.codegen``)."""
