"""RAdam: Adam with a rectified variance of the adaptive learning rate."""

from typing import Any

import chex
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state
from .._core.lifting import map_leaves, square_state_like, state_zeros_like
from .._core.traits import elementwise
from .adam import ScaleByAdamState, bias_corrections, first_moment_hat
from .belief import check_moment_args


def _radam_rho(b2, count):
    """``(ρ_t, r_t)``: the length of the approximated SMA and its rectification.

    ``ρ_∞ = 2/(1 − b2) − 1`` is computed once (in Python precision for a Python
    ``b2``), ``ρ_t = ρ_∞ − 2t·b2^t/(1 − b2^t)`` and
    ``r_t = sqrt((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t))``.
    """
    rho_inf = 2.0 / _maths.one_minus(b2) - 1.0
    b2t = b2**count
    rho = rho_inf - 2 * count * b2t / (1 - b2t)
    num = (rho - 4.0) * (rho - 2.0) * rho_inf
    r = jnp.sqrt(num / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    return rho, r


def scale_by_radam(
    b1: chex.Numeric = 0.9,
    b2: chex.Numeric = 0.999,
    eps: chex.Numeric = 1e-8,
    eps_root: chex.Numeric = 0.0,
    threshold: chex.Numeric = 5.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Rectified Adam scaling: ``u = r_t·m̂ / (sqrt(v̂ + ε_root) + ε)`` once
    ``ρ_t >= threshold``, plain momentum ``u = m̂`` before.

    ``ρ_t`` estimates how many gradients the second moment has averaged; ``r_t``
    rectifies the variance of the adaptive step while that number is small.
    See :func:`gradtx.radam` for the full rule and reference.

    Args:
      b1, b2: moment decays in [0, 1).
      eps, eps_root: ε >= 0 outside / inside the square root.
      threshold: the value of ``ρ_t`` from which the adaptive step is used,
        >= 4 (below 4, ``r_t`` would be the root of a negative number: NaN).
      nesterov: use Nesterov's look-ahead first moment (as in NAdam).
      mu_dtype: dtype of the first moment (default: the params').
      nu_dtype: dtype of the second moment (default: the params'; float32
        for float16 params, see ``docs/precision.md``).

    Returns:
      A :class:`GradientTransformation` with state :class:`ScaleByAdamState`.
    """
    owner = "scale_by_radam"
    check_moment_args(owner, b1, b2, eps, eps_root, nesterov)
    _validate.number(owner, "threshold", threshold, low=4.0)

    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
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
        count = _maths.safe_increment(state.count)
        c1, c2, c1_next = bias_corrections(b1, b2, count, nesterov)
        rho, r = _radam_rho(b2, count)
        adaptive = rho >= threshold

        def leaf(g, mu, nu):
            mu = _maths.ema(g, mu, b1)
            nu = _maths.ema_sq(g, nu, b2)
            mu_hat = first_moment_hat(g, mu, b1, c1, c1_next)
            step = r * mu_hat / (jnp.sqrt(nu / c2 + eps_root) + eps)
            return jnp.where(adaptive, step, mu_hat), mu, nu

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
