"""ADOPT: Adam with the second moment taken before the current gradient."""

from collections.abc import Callable
from typing import Any

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise
from .adam import ScaleByAdamState


def quarter_power(count):
    return count**0.25


def scale_by_adopt(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.9999,
    eps: chex.Numeric = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[chex.Array], chex.Array] = quarter_power,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """ADOPT scaling: normalise ``g`` by the *previous* second moment, then average.

    ``x = clip(g / max(sqrt(v_{t-1}), ε), ±c(t))``, ``m ← b1·m + (1 − b1)·x``,
    ``v ← b2·v + (1 − b2)·g²`` and ``u = m`` (Nesterov: ``b1·m + (1 − b1)·x``).
    The first step only sets ``v = g²`` and returns zeros. See
    :func:`gradtx.adopt` for the full rule and reference.

    Differences from Optax (same numbers otherwise): the first step keeps the
    moments with ``where`` instead of multiplying by zero, so a gradient above
    ``ε·3e38`` there cannot turn them into NaN (``0·inf``); and ``eps`` must be
    > 0 (with ``eps = 0`` a zero gradient gives ``0/0``).

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1].
      eps: floor ε > 0 of the denominator ``sqrt(v)``.
      mu_dtype: dtype of the first moment (default: the params').
      nesterov: return the look-ahead ``b1·m + (1 − b1)·x`` instead of ``m``.
      use_clipping: clip the normalised gradient to ``[−c(t), c(t)]``.
      clip_value_fn: ``c``, a function of the 0-based step (default ``t^¼``).
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    owner = "scale_by_adopt"
    _validate.decay(owner, "b1", b1)
    _validate.decay(owner, "b2", b2, allow_one=True)
    _validate.positive(owner, "eps", eps)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    _validate.flag(owner, "nesterov", nesterov)
    _validate.flag(owner, "use_clipping", use_clipping)
    if not callable(clip_value_fn):
        raise TypeError(
            f"{owner}: `clip_value_fn` must be a function of the step, got "
            f"{clip_value_fn!r}."
        )

    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)

    def init_fn(params):
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByAdamState)
        started = state.count > 0
        clip_value = clip_value_fn(state.count) if use_clipping else None
        # The decays as float32 arrays, so 1 − b rounds as in Optax.
        b1_ = jnp.where(started, b1, 1.0)
        b2_ = jnp.where(started, b2, 0.0)

        def leaf(g, mu, nu):
            x = g / jnp.maximum(jnp.sqrt(nu), eps)
            if use_clipping:
                x = jnp.clip(x, -clip_value, clip_value)
            new_mu = jnp.where(started, _maths.ema(x, mu, b1_), mu)
            new_nu = _maths.ema_sq(g, nu, b2_)
            step = new_mu
            if nesterov:
                step = jnp.where(started, _maths.ema(x, new_mu, b1_), new_mu)
            return step, new_mu, new_nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
            complex_ok=not use_clipping or "its clipping by value needs an order",
        )
        count = _maths.safe_increment(state.count)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))
