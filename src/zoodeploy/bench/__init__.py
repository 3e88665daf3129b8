"""Latency and throughput of variants against the PyTorch eager baseline; reports and plots."""

from zoodeploy.bench.latency import BenchConfig, measure, measure_many
from zoodeploy.bench.variants import BenchOptions, BenchResult, available_cores, bench_variants

__all__ = ["BenchConfig", "BenchOptions", "BenchResult", "available_cores", "bench_variants", "measure",
           "measure_many"]
