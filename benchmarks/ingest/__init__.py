"""Ingest benchmark: Atlas's Explore load against the physical floor and pandas.

Run with ``python -m benchmarks.ingest`` (see ``benchmarks/README.md``).
"""
