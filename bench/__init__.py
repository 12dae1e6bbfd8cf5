"""Reproducible speed comparisons of the builder's training engine (see shared PERFORMANCE.md).

``python -m bench.run`` rebuilds the PERFORMANCE.md workloads from scikit-learn data and times the
engine's ``fit`` (run the way the app runs it) against the minimal hand-written loop, each in a
fresh process, and prints s/epoch, the ratio, test metrics and peak memory.
"""
