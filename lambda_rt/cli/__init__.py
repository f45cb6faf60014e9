"""The ``lambda-rt`` command line; layer commands import their layer lazily."""

from lambda_rt.cli.main import app, main

__all__ = ["app", "main"]
