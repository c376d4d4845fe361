"""Shipped benchmarks: ``python -m lootlab.benchmarks.<name>``.  Each prints one table measured in
one run; targets are stated as ratios or absolute goals beside the figures, never asserted
in the test suite (the machines are shared and noisy).
"""
