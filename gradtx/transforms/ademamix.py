"""Recent Adam variants: ADOPT, AdEMAMix and simplified AdEMAMix.

Each rule is written for one array and lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`. The full update rules, with references, are
in the aliases of :mod:`gradtx.optimizers.ademamix`.
"""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, Updates, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise


class ScaleByAdemamixState(NamedTuple):
    """Two step counts (fast moments; slow EMA and α), fast and slow EMAs, ``ν``."""

    count: chex.Array
    count_m2: chex.Array
    m1: Updates
    m2: Updates
    nu: Updates


def _value(x, count):
    return x(count) if callable(x) else x


def scale_by_ademamix(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    mu_dtype: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix scaling: ``u = (m̂₁ + α·m₂) / (sqrt(ν̂ + ε_root) + ε)``.

    ``m₁`` (rate ``b1``, bias-corrected) and ``ν`` (rate ``b2``) are Adam's
    moments; ``m₂`` is a slow EMA of the gradient (rate ``b3``, not
    bias-corrected). ``b3`` and ``alpha`` may be schedules of the step (the
    paper warms both up). See :func:`gradtx.ademamix`.

    Args:
      b1: decay of the fast EMA, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      b3: decay of the slow EMA, in [0, 1], or a schedule.
      alpha: weight α >= 0 of the slow EMA, or a schedule. The default, 6.0,
        is Optax's (the alias defaults to 5.0).
      eps, eps_root: ε >= 0 outside / inside the square root.
      mu_dtype: dtype of the three moments (default: the params'; as in Optax,
        it applies to ``ν`` too).
      nu_dtype: dtype of ``ν`` alone, overriding ``mu_dtype`` for it (with
        neither, float16 params get a float32 ``ν``: ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdemamixState`.
    """
    owner = "scale_by_ademamix"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    if not callable(b3):
        _validate.decay(owner, "b3", b3, allow_one=True)
    _validate.scalar_or_schedule(owner, "alpha", alpha)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)

    def init_fn(params):
        # A new buffer each: a jitted step may donate the state.
        m1, m2 = state_zeros_like(params, mu_dtype), state_zeros_like(params, mu_dtype)
        count, count_m2 = jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32)
        nu = square_state_like(params, nu_dtype if nu_dtype is not None else mu_dtype)
        return ScaleByAdemamixState(count, count_m2, m1, m2, nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdemamixState)
        c_b3 = _value(b3, state.count_m2)
        c_alpha = _value(alpha, state.count_m2)
        count = _maths.safe_increment(state.count)
        c1 = _maths.debias_factor(b1, count)
        c2 = _maths.debias_factor(b2, count)

        def leaf(g, m1, m2, nu):
            m1 = _maths.ema(g, m1, b1)
            m2 = _maths.ema(g, m2, c_b3)
            nu = _maths.ema_sq(g, nu, b2)
            step = (m1 / c1 + c_alpha * m2) / (jnp.sqrt(nu / c2 + eps_root) + eps)
            return step, m1, m2, nu

        updates, m1, m2, nu = map_leaves(
            leaf,
            updates,
            state.m1,
            state.m2,
            state.nu,
            names=["m1", "m2", "nu"],
            owner=owner,
            nout=4,
        )
        count_m2 = _maths.safe_increment(state.count_m2)
        return updates, ScaleByAdemamixState(count, count_m2, m1, m2, nu)

    return elementwise(GradientTransformation(init_fn, update_fn))


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """Step count ``t``, the undamped momentum sum ``m`` and the second moment."""

    t: chex.Array
    m: Updates
    n: Updates


def scale_by_simplified_ademamix(
    b1: chex.Numeric = 0.99,
    b2: chex.Numeric = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Simplified AdEMAMix scaling: ``u = (m + α·g) / (sqrt(n̂ + ε_root) + ε)``.

    ``m ← b1·m + g`` (a sum, not an average) and ``n`` is Adam's bias-corrected
    second moment (rate ``b2``). See :func:`gradtx.simplified_ademamix`.

    Args:
      b1: decay of the momentum sum, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      alpha: weight α >= 0 of the current gradient, or a schedule.
      eps, eps_root: ε >= 0 outside / inside the square root.
      mu_dtype, nu_dtype: dtypes of ``m`` and ``n`` (default: the params';
        float32 ``n`` for float16 params, ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleBySimplifiedAdEMAMixState`.
    """
    owner = "scale_by_simplified_ademamix"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2)
    _validate.scalar_or_schedule(owner, "alpha", alpha)
    _validate.non_negative(owner, "eps", eps)
    _validate.non_negative(owner, "eps_root", eps_root)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)

    def init_fn(params):
        m = state_zeros_like(params, mu_dtype)
        n = square_state_like(params, nu_dtype)
        return ScaleBySimplifiedAdEMAMixState(jnp.zeros([], jnp.int32), m, n)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleBySimplifiedAdEMAMixState)
        c_alpha = _value(alpha, state.t)
        t = _maths.safe_increment(state.t)
        c2 = _maths.debias_factor(b2, t)

        def leaf(g, m, n):
            m = g + b1 * m
            g2 = _maths.abs_sq(g)
            n = g2 + b2 * (n - g2)  # (1 − b2)·g² + b2·n, rounded as Optax does
            return (m + c_alpha * g) / (jnp.sqrt(n / c2 + eps_root) + eps), m, n

        updates, m, n = map_leaves(
            leaf, updates, state.m, state.n, names=["m", "n"], owner=owner, nout=3
        )
        return updates, ScaleBySimplifiedAdEMAMixState(t, m, n)

    return elementwise(GradientTransformation(init_fn, update_fn))
