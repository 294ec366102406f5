"""Atlas benchmarks: run with ``python -m benchmarks.<name>`` (see README.md); never collected by pytest."""
