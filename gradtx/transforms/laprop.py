"""LaProp: momentum of the RMS-normalised gradient.

The alias, with the full rule and references, is :func:`gradtx.laprop`.
"""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    Updates,
    check_state,
)
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise

_REAL_ONLY = "LaProp's second moment is real-only here"


class ScaleByLaPropState(NamedTuple):
    """Step count (int32, saturating), momentum of the normalised gradient,
    second moment, and (``centered``) the mean of the gradient, else ``()``."""

    count: chex.Array
    mu: Updates
    nu: Updates
    mean: Any


def laprop_leaf(g, mu, nu, mean, s):
    """One leaf: ``(u, m', v', mean')`` with ``s = (b1, b2, c1, c2, eps,
    eps_root, centred_now)``; ``mean`` is ``None`` when not centred."""
    b1, b2, c1, c2, eps, eps_root, centred_now = s
    nu = _maths.ema_sq(g, nu, b2)
    second = nu
    if mean is not None:
        mean = _maths.ema(g, mean, b2)
        second = jnp.where(centred_now, jnp.maximum(nu - mean**2, 0.0), nu)
    denom = (jnp.sqrt(second + eps_root) + eps) / jnp.sqrt(c2)
    mu = _maths.ema(g / denom, mu, b1)
    return mu / c1, mu, nu, mean


def scale_by_laprop(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-15,
    *,
    eps_root: chex.Numeric = 1e-15,
    centered: bool = False,
    steps_before_using_centered: int = 10,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """LaProp scaling: ``u = m / (1 − b1^t)``, ``m`` the EMA of ``g / d``.

    ``d = (sqrt(v + ε_root) + ε) / sqrt(1 − b2^t)`` with ``v`` the EMA of
    ``g²`` (centred: minus the squared EMA of ``g``, once ``t >
    steps_before_using_centered``). See :func:`gradtx.laprop`.

    Args:
      b1: decay of the momentum, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: ε >= 0 added to the root.
      eps_root: ε >= 0 inside the root.
      centered: subtract the squared mean of the gradient from ``v``.
      steps_before_using_centered: steps (>= 0) before the centring starts.
      mu_dtype: dtype of the momentum (default: the params').

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByLaPropState`.
    """
    owner = "scale_by_laprop"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)
    _validate.flag(owner, "centered", centered)
    _validate.integer(
        owner, "steps_before_using_centered", steps_before_using_centered, array_ok=True
    )
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype)

    def init_fn(params):
        return ScaleByLaPropState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params),
            mean=state_zeros_like(params) if centered else (),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByLaPropState)
        count = _maths.safe_increment(state.count)
        c1, c2 = _maths.debias_factor(b1, count), _maths.debias_factor(b2, count)
        now = count > steps_before_using_centered
        s = (b1, b2, c1, c2, eps, eps_root, now)
        trees = (state.mu, state.nu) + ((state.mean,) if centered else ())

        def leaf(g, m, v, *c):
            u, m, v, mean = laprop_leaf(g, m, v, c[0] if c else None, s)
            return (u, m, v, mean) if centered else (u, m, v)

        out = map_leaves(
            leaf,
            updates,
            *trees,
            names=["mu", "nu", "mean"][: len(trees)],
            owner=owner,
            nout=1 + len(trees),
            complex_ok=_REAL_ONLY,
        )
        mean = out[3] if centered else ()
        return out[0], ScaleByLaPropState(count, out[1], out[2], mean)

    return elementwise(GradientTransformation(init_fn, update_fn))
