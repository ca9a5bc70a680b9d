"""AdaDelta's scaling: the step's own running RMS over the gradient's."""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    map_leaves,
    tree_zeros_like,
)
from .._core.traits import elementwise


class ScaleByAdaDeltaState(NamedTuple):
    """Running averages of squared gradients (``e_g``) and squared steps (``e_x``)."""

    e_g: Updates
    e_x: Updates


def scale_by_adadelta(
    rho: chex.Numeric = 0.9, eps: chex.Numeric = 1e-6
) -> GradientTransformation:
    """AdaDelta scaling: ``u = sqrt(E[Δx²] + ε) / sqrt(E[g²] + ε) · g``.

    Both averages decay with ``rho``; ``E[Δx²]`` uses the steps up to the
    previous one. See :func:`gradtx.adadelta`.

    Args:
      rho: decay of both running averages, in [0, 1].
      eps: ε > 0 inside both square roots. Unlike Optax, 0 is rejected: the
        average of the steps starts at 0, so with ``eps = 0`` every step is 0
        (and ``0/0 = NaN`` where a gradient is 0).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdaDeltaState`.
    """
    owner = "scale_by_adadelta"
    _validate.decay(owner, "rho", rho, allow_one=True)
    _validate.positive(owner, "eps", eps)

    def init_fn(params):
        return ScaleByAdaDeltaState(
            e_g=tree_zeros_like(params), e_x=tree_zeros_like(params)
        )

    def leaf(g, e_g, e_x):
        e_g = _maths.ema_sq(g, e_g, rho)
        u = jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps) * g
        return u, e_g, _maths.ema_sq(u, e_x, rho)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdaDeltaState)
        updates, e_g, e_x = map_leaves(
            leaf,
            updates,
            state.e_g,
            state.e_x,
            names=["e_g", "e_x"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return elementwise(GradientTransformation(init_fn, update_fn))
