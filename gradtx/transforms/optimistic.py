"""Optimistic gradient scaling: the current gradient corrected by its change."""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    map_leaves,
    tree_zeros_like,
)
from .._core.traits import elementwise


class ScaleByOptimisticGradientState(NamedTuple):
    """Whether no update was made yet (bool) and the previous gradient."""

    is_initial_step: chex.Array
    previous_gradient: Updates


def scale_by_optimistic_gradient(
    alpha: chex.Numeric = 1.0, beta: chex.Numeric = 1.0
) -> GradientTransformation:
    """Optimistic gradient: ``u = (α + β)·g_t − β·g_{t−1}`` (``g_0 := g_1``).

    See :func:`gradtx.optimistic_gradient_descent` and
    :func:`gradtx.optimistic_adam_v2`.

    Args:
      alpha: α >= 0, the weight of the current gradient.
      beta: β >= 0, the weight of the optimistic correction ``g_t − g_{t−1}``.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByOptimisticGradientState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_optimistic_gradient
      >>> tx = scale_by_optimistic_gradient()
      >>> s = tx.init(jnp.zeros(1))
      >>> u, s = tx.update(jnp.array([1.0]), s)  # the first step: g
      >>> u, s = tx.update(jnp.array([3.0]), s)  # then 2·3 − 1
      >>> u.tolist()
      [5.0]
    """
    owner = "scale_by_optimistic_gradient"
    _validate.non_negative(owner, "alpha", alpha)
    _validate.non_negative(owner, "beta", beta)

    def init_fn(params):
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.array(True), previous_gradient=tree_zeros_like(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByOptimisticGradientState)
        first = state.is_initial_step

        def leaf(g, prev):
            prev = jnp.where(first, g, prev)
            return (alpha + beta) * g - beta * prev, g

        updates, prev = map_leaves(
            leaf,
            updates,
            state.previous_gradient,
            names=["previous_gradient"],
            owner=owner,
            nout=2,
        )
        return updates, ScaleByOptimisticGradientState(jnp.array(False), prev)

    return elementwise(GradientTransformation(init_fn, update_fn))
