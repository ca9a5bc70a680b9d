"""Side-by-side benchmarks of gradtx against Optax and torch.optim.

Run ``python -m benchmarks.run --quick`` (see ``benchmarks/README.md``). The
modules, one concept each:

- :mod:`benchmarks._timing`: round-robin timing, medians, per-round ratios;
- :mod:`benchmarks._cases`: parameter trees and the quick/full configurations;
- :mod:`benchmarks._recipes`: optimizer recipes shared by every library;
- :mod:`benchmarks._engines`: the JAX columns (gradtx, optax, extra engines);
- :mod:`benchmarks._jax_step`: a donated, AOT-compiled JAX training step;
- :mod:`benchmarks._torch_step`: the same step with ``torch.optim``;
- :mod:`benchmarks._probe`: the memory-bandwidth probe;
- :mod:`benchmarks._compile_sweep`: compile time against number of leaves;
- :mod:`benchmarks._report`: the printed tables;
- :mod:`benchmarks.run`: the command line and :func:`benchmarks.run.run_benchmarks`.
"""
