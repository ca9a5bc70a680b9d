"""Microbatching: the ``optax.microbatching`` namespace.

Evaluate a function on slices of a batch and accumulate (:func:`microbatch`),
map it over a batch a microbatch at a time (:func:`micro_vmap`), take
transformed per-example gradients (:func:`micro_grad`), and split a batch axis
the way they do (:func:`reshape_batch_axis`), with Optax's names, arguments
and numbers.
"""

from .wrappers.microbatch import (
    AccumulationType,
    Accumulator,
    microbatch,
    reshape_batch_axis,
)
from .wrappers.per_example import micro_grad, micro_vmap

__all__ = [
    "AccumulationType",
    "Accumulator",
    "micro_grad",
    "micro_vmap",
    "microbatch",
    "reshape_batch_axis",
]
