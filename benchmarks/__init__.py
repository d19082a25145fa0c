"""Benchmark suites of gsomia-sim (speed and memory; never timed tests) and the ``gsomia-sim bench`` runner.

Each ``bench_<area>.py`` module has a plain function returning a dict of figures and prints
them with ``python benchmarks/bench_<area>.py --quick``; :mod:`benchmarks.report` runs them
all, writes the JSON and Markdown report and checks the CI speed gate.
"""
