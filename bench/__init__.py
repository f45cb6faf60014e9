"""Benchmarks: ``python -m bench`` runs every ``bench/<area>.py`` present, in order."""
