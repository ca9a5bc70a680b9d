"""Microbatching: evaluate a function on slices of a batch and accumulate.

The same names as ``optax.microbatching``; see :func:`gradtx.microbatch`.
"""

from .wrappers.microbatch import AccumulationType, Accumulator, microbatch

__all__ = ["AccumulationType", "Accumulator", "microbatch"]
