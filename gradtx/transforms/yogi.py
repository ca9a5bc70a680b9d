"""Yogi: an additive, sign-controlled second-moment update."""

from typing import Any

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state
from .._core.lifting import (
    map_leaves,
    square_state_like,
    state_zeros_like,
    tree_full_like,
)
from .._core.traits import elementwise
from .adam import ScaleByAdamState, bias_corrections
from .belief import check_moment_args


def scale_by_yogi(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-3,
    eps_root: chex.Numeric = 0.0,
    initial_accumulator_value: chex.Numeric = 1e-6,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Yogi scaling: ``v ← v − (1 − b2)·sign(v − g²)·g²``; ``u = m̂ / (sqrt(v̂) + ε)``.

    Adam with an additive second-moment update, so that ``v`` changes by at
    most ``(1 − b2)·g²`` per step. See :func:`gradtx.yogi`.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: rate of the second moment, in [0, 1).
      eps: ε >= 0 added outside the square root.
      eps_root: ε >= 0 added inside the square root.
      initial_accumulator_value: the starting value (>= 0) of both moments.
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    owner = "scale_by_yogi"
    check_moment_args(owner, b1, b2, eps, eps_root)
    _validate.non_negative(
        owner, "initial_accumulator_value", initial_accumulator_value
    )

    mu_dtype = _validate.float_dtype(
        "scale_by_yogi", "mu_dtype", mu_dtype, complex_ok=True
    )
    nu_dtype = _validate.float_dtype("scale_by_yogi", "nu_dtype", nu_dtype)

    initial_value = initial_accumulator_value

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=tree_full_like(
                state_zeros_like(params, mu_dtype), initial_accumulator_value
            ),
            nu=square_state_like(params, nu_dtype, fill=initial_value),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdamState)
        count = _maths.safe_increment(state.count)
        c1, c2, _ = bias_corrections(b1, b2, count, False)

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            g2 = _maths.abs_sq(g)
            nu = nu - _maths.one_minus(b2) * jnp.sign(nu - g2) * g2
            return (mu / c1) / (jnp.sqrt(nu / c2 + eps_root) + eps), mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))
