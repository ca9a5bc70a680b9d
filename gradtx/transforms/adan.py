"""Adan's scaling: Nesterov momentum estimated from gradient differences."""

import functools
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


class ScaleByAdanState(NamedTuple):
    """Moments of the gradient (``m``), its difference (``v``), the squared
    look-ahead (``n``); the previous gradient ``g`` and the step count ``t``."""

    m: Updates
    v: Updates
    n: Updates
    g: Updates
    t: chex.Array


def scale_by_adan(
    b1: chex.Numeric = 0.98,
    b2: chex.Numeric = 0.92,
    b3: chex.Numeric = 0.99,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
) -> GradientTransformation:
    """Adan scaling: ``u = (m̂ + (1 − b2)·v̂) / (sqrt(n̂ + ε_root) + ε)``.

    ``m``, ``v`` and ``n`` average the gradient, its change since the last step
    (0 at the first step) and the square of the look-ahead gradient
    ``g + (1 − b2)·Δg``; hats are bias corrections. See :func:`gradtx.adan`.

    Args:
      b1, b2, b3: decays of ``m``, ``v``, ``n``, in [0, 1).
      eps, eps_root: ε >= 0 outside / inside the square root.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdanState`.
    """
    owner = "scale_by_adan"
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        _validate.decay(owner, name, value)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)

    def init_fn(params):
        zeros = functools.partial(tree_zeros_like, params)
        return ScaleByAdanState(
            m=zeros(), v=zeros(), n=zeros(), g=zeros(), t=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdanState)
        first = state.t == 0
        t = _maths.safe_increment(state.t)
        c1, c2, c3 = (_maths.debias_factor(b, t) for b in (b1, b2, b3))

        def leaf(g, m, v, n, g_prev):
            diff = jnp.where(first, jnp.zeros_like(g), g - g_prev)
            m = _maths.ema(g, m, b1)
            v = _maths.ema(diff, v, b2)
            mix = _maths.one_minus(b2)
            n = _maths.ema_sq(g + mix * diff, n, b3)
            step = (m / c1 + mix * (v / c2)) / (jnp.sqrt(n / c3 + eps_root) + eps)
            return step, m, v, n, g

        updates, m, v, n, g = map_leaves(
            leaf,
            updates,
            state.m,
            state.v,
            state.n,
            state.g,
            names=["m", "v", "n", "g"],
            owner=owner,
            nout=5,
        )
        return updates, ScaleByAdanState(m=m, v=v, n=n, g=g, t=t)

    return elementwise(GradientTransformation(init_fn, update_fn))
