"""Figures for the notebooks: each function takes plain data (DataFrames, result objects)
and returns a matplotlib Figure.  Nothing here measures anything.

Submodules: ``latency`` (percentile spectra, latency vs throughput, spike timelines),
``profile`` (flamegraph buckets, memory, GC), ``story`` (the step chart).
"""
