"""Rprop's scaling: per-element step sizes adapted by the gradient's sign."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import (
    map_leaves,
    tree_full_like,
    tree_zeros_like,
)
from .._core.traits import elementwise


class ScaleByRpropState(NamedTuple):
    """Per-coordinate step sizes and the previous step (0 after a sign change)."""

    step_sizes: Updates
    prev_updates: Updates


def scale_by_rprop(
    learning_rate: chex.Numeric,
    eta_minus: chex.Numeric = 0.5,
    eta_plus: chex.Numeric = 1.2,
    min_step_size: chex.Numeric = 1e-6,
    max_step_size: chex.Numeric = 50.0,
) -> GradientTransformation:
    """Rprop (iRprop⁻) scaling: ``u = Δ·sign(g)`` with a per-coordinate step ``Δ``.

    ``Δ`` grows by ``eta_plus`` while the gradient keeps its sign and shrinks
    by ``eta_minus`` (step skipped) when it flips, within
    ``[min_step_size, max_step_size]``. The update points *up* the gradient;
    :func:`gradtx.rprop` negates it.

    Differences from Optax 0.2.8, whose ``update`` returns the step computed at
    the *previous* call (all zeros at the first), a one-step lag (reported
    upstream as google-deepmind/optax#1725): gradtx returns the current step,
    as the paper and ``torch.optim.Rprop`` do. The step sizes and the state
    are the same as Optax's. The sign test uses ``sign(g)·sign(g_prev)``, not
    the product ``g·g_prev``, which can underflow to 0.

    Args:
      learning_rate: the initial step size ``Δ₀ > 0`` (a number).
      eta_minus: the shrink factor, in [0, 1].
      eta_plus: the growth factor, >= 1.
      min_step_size, max_step_size: the bounds of ``Δ``, ``0 <= min <= max``.

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByRpropState`.
    """
    owner = "scale_by_rprop"
    _validate.positive(owner, "learning_rate", learning_rate)
    _validate.number(owner, "eta_minus", eta_minus, low=0.0, high=1.0)
    _validate.number(owner, "eta_plus", eta_plus, low=1.0)
    _validate.non_negative(owner, "min_step_size", min_step_size)
    low = 0.0 if isinstance(min_step_size, jax.core.Tracer) else float(min_step_size)
    _validate.number(owner, "max_step_size", max_step_size, low=low)

    def init_fn(params):
        return ScaleByRpropState(
            step_sizes=tree_full_like(params, learning_rate),
            prev_updates=tree_zeros_like(params),
        )

    def leaf(g, step, prev):
        agree = jnp.sign(g) * jnp.sign(prev)  # the sign of g·prev, without underflow
        factor = jnp.where(agree > 0, eta_plus, eta_minus)
        step = jnp.where(
            agree == 0, step, jnp.clip(step * factor, min_step_size, max_step_size)
        )
        u = jnp.where(agree < 0, jnp.zeros_like(g), step * jnp.sign(g))
        return u, step, u

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByRpropState)
        updates, steps, prev = map_leaves(
            leaf,
            updates,
            state.step_sizes,
            state.prev_updates,
            names=["step_sizes", "prev_updates"],
            owner=owner,
            nout=3,
            complex_ok="it compares the signs of successive gradients",
        )
        return updates, ScaleByRpropState(step_sizes=steps, prev_updates=prev)

    return elementwise(GradientTransformation(init_fn, update_fn))
