"""Sign-based and Adam-variant scalings: sign, Lion, AdaBelief, Yogi, RAdam.

As elsewhere, each rule is written for one array and lifted to pytrees by
:func:`gradtx._core.lifting.map_leaves`; a factory validates its hyperparameters,
builds the state and computes the per-step scalars (bias corrections, RAdam's
rectification). The full update rules, with references, are in the aliases of
:mod:`gradtx.optimizers.belief`.
"""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise
from .adam import bias_corrections, check_adam_args, first_moment_hat


def check_moment_args(owner, b1, b2, eps, eps_root, nesterov=False):
    check_adam_args(owner, b1, b2, eps, eps_root)
    _validate.flag(owner, "nesterov", nesterov)


class ScaleByBeliefState(NamedTuple):
    """Step count, first moment and second moment of the prediction error."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_belief(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-16,
    eps_root: chex.Numeric = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief scaling: ``u = m̂ / (sqrt(ŝ) + ε)``.

    ``s`` averages ``(g − m)²`` (the "belief": how far the gradient is from its
    running mean) instead of Adam's ``g²``, plus ``eps_root`` each step. See
    :func:`gradtx.adabelief` for the full rule and reference.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment of the prediction error, in [0, 1).
      eps: ε >= 0 added outside the square root.
      eps_root: ε >= 0 added to ``s`` at every step (stored in the state).
      nesterov: use Nesterov's look-ahead first moment (as in NAdam).
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByBeliefState`.
    """
    owner = "scale_by_belief"
    check_moment_args(owner, b1, b2, eps, eps_root, nesterov)

    mu_dtype = _validate.float_dtype(
        "scale_by_belief", "mu_dtype", mu_dtype, complex_ok=True
    )
    nu_dtype = _validate.float_dtype("scale_by_belief", "nu_dtype", nu_dtype)

    def init_fn(params):
        return ScaleByBeliefState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            nu=square_state_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, ScaleByBeliefState)
        count = _maths.safe_increment(state.count)
        c1, c2, c1_next = bias_corrections(b1, b2, count, nesterov)

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.ema_sq(g - mu, nu, b2) + eps_root
            mu_hat = first_moment_hat(g, mu, b1, c1, c1_next)
            return mu_hat / (jnp.sqrt(nu / c2) + eps), mu, nu

        updates, mu, nu = map_leaves(
            leaf,
            updates,
            state.mu,
            state.nu,
            names=["mu", "nu"],
            owner=owner,
            nout=3,
        )
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return elementwise(GradientTransformation(init_fn, update_fn))
