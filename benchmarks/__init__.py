"""tokensweep's benchmark suite: `python -m benchmarks all|clustering|models|data|platform`.

Each section runs its comparisons in one process, with the one timing protocol of
`trials.measure.timing` (warm-up, device sync, median and spread; variants interleaved step by
step so that a busy shared machine slows them alike), writes a timm-style CSV with the
environment of every figure to `benchmarks/results/<section>.csv`, a Markdown summary beside
it, and prints every performance target with its measured ratio last. See docs/performance.md.
"""
