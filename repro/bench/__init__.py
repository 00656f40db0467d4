"""Benchmarks (``repro bench``): training-step ratios, loader throughput, NVGesture and ModelNet40 figures."""
