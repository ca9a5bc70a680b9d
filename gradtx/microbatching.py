"""Microbatching: evaluate a function on slices of a batch and accumulate.

The same names as ``optax.microbatching``; see :func:`gradtx.microbatch`.
"""

from ._microbatch import AccumulationType as AccumulationType
from ._microbatch import Accumulator as Accumulator
from ._microbatch import microbatch as microbatch

__all__ = ["AccumulationType", "Accumulator", "microbatch"]
