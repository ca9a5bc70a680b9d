"""The memory-bandwidth probe: how fast this machine streams memory right now.

A jitted, donated ``y <- 0.5 * y + x`` over float32 buffers the size of the
large leaf: one loop that reads two arrays and writes one (12 bytes per
element), the simplest kernel XLA emits as a single pass over memory. It runs
inside every case's round-robin, so each optimizer's *fraction of the bound*
is taken against the bandwidth measured in the same rounds:

    bound_s = bytes_per_param * n_params / probe_bytes_per_s
    fraction = bound_s / step_s

A fraction near 1 means the step moves its minimum bytes at streaming speed.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

BYTES_PER_ELEMENT = 12  # read x, read y, write y: float32


class BandwidthProbe:
    """A participant whose ``run`` streams ``n_elements`` floats per step."""

    name = "probe"

    def __init__(self, n_elements: int):
        self.n_elements = n_elements
        self._x = jnp.ones((n_elements,), jnp.float32)
        self._y = jnp.zeros((n_elements,), jnp.float32)
        self._kernel = jax.jit(lambda y, x: 0.5 * y + x, donate_argnums=0)
        jax.block_until_ready(self._kernel(jnp.zeros_like(self._x), self._x))

    @property
    def bytes_per_step(self) -> int:
        return BYTES_PER_ELEMENT * self.n_elements

    def run(self, n: int) -> None:
        y = self._y
        for _ in range(n):
            y = self._kernel(y, self._x)
        self._y = jax.block_until_ready(y)


def bound_fractions(
    step_s: Sequence[float],
    probe_s: Sequence[float],
    probe_bytes: int,
    bytes_per_step: int,
) -> list[float]:
    """Per round: time at probe bandwidth for ``bytes_per_step`` / step time."""
    return [
        bytes_per_step * (p / probe_bytes) / s
        for s, p in zip(step_s, probe_s, strict=False)
        if s > 0
    ]
