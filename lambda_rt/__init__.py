"""lambda-rt: real-time analytics for e-commerce events as a lambda architecture.

This package is the shared core (config, event schema, generator, clients,
embedded stack, CLI). It never imports ``speed_layer``, ``batch_layer`` or
``serving``; the CLI reaches them lazily.
"""

from lambda_rt.config import Settings, load_settings
from lambda_rt.errors import LambdaRTError

__all__ = ["LambdaRTError", "Settings", "__version__", "load_settings"]

__version__ = "0.1.0"
