"""Thin, typed factories for the external systems; none connects at import."""
